//! WAL segment files: names, and reading WAL bytes by LSN from `pg_wal/`.
//!
//! A segment holds `wal_segment_size` bytes (16 MiB by default) of one timeline's
//! WAL stream; the segment `segno` of timeline `tli` holds LSNs
//! `[segno × size, (segno + 1) × size)` and is named `TTTTTTTTXXXXXXXXYYYYYYYY`
//! (hex: timeline, then `segno / (2³² / size)` and `segno % (2³² / size)`), as
//! PostgreSQL's `XLogFileName`. Timeline `tli`'s history file is `TTTTTTTT.history`.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::{PgError, Result};

/// The segment holding `lsn`.
pub fn segno(lsn: u64, seg_size: u64) -> u64 {
    lsn / seg_size.max(1)
}

/// The first LSN of the segment holding `lsn`.
pub fn segment_start(lsn: u64, seg_size: u64) -> u64 {
    segno(lsn, seg_size) * seg_size.max(1)
}

/// `XLogFileName(tli, segno, seg_size)`.
pub fn file_name(tli: u32, segno: u64, seg_size: u64) -> String {
    let per = (0x1_0000_0000u64 / seg_size.max(1)).max(1);
    format!("{tli:08X}{:08X}{:08X}", segno / per, segno % per)
}

/// `TLHistoryFileName(tli)`.
pub fn history_file_name(tli: u32) -> String {
    format!("{tli:08X}.history")
}

/// Where a timeline began: the last entry of its history file
/// (`TTTTTTTT.history`: lines `parentTLI<TAB>switchpoint<TAB>reason`, the
/// switchpoint an LSN written `X/Y`; PostgreSQL's `readTimeLineHistory`). Returns
/// `(parent timeline, switchpoint LSN)`; `None` when the text has no valid entry
/// (timeline 1 has no history).
pub fn fork_point(history: &str) -> Option<(u32, u64)> {
    history
        .lines()
        .rev()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let tli = f.next()?.parse::<u32>().ok()?;
            let lsn = crate::Lsn::parse(f.next()?).ok()?;
            Some((tli, lsn.0))
        })
        .next()
}

/// Parses a segment file name into `(timeline, segno)`.
pub fn parse_file_name(name: &str, seg_size: u64) -> Option<(u32, u64)> {
    if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let tli = u32::from_str_radix(&name[..8], 16).ok()?;
    let hi = u64::from_str_radix(&name[8..16], 16).ok()?;
    let lo = u64::from_str_radix(&name[16..], 16).ok()?;
    let per = (0x1_0000_0000u64 / seg_size.max(1)).max(1);
    Some((tli, hi * per + lo))
}

/// Reads WAL `[from, min(until, from + max))` of timeline `tli` from the segment
/// files in `pg_wal`. `until` is a position known durable on the server (its flush
/// LSN): bytes past it may be stale contents of a recycled segment.
///
/// Errors: [`PgError::WalLost`] naming the segment when a file that must hold
/// `from` is gone (removed or recycled: the slot did not hold it);
/// [`PgError::Query`] for other I/O errors.
pub fn read(
    pg_wal: &Path,
    tli: u32,
    seg_size: u64,
    from: u64,
    until: u64,
    max: usize,
) -> Result<Vec<u8>> {
    let end = until.min(from.saturating_add(max as u64));
    let mut out = Vec::with_capacity(end.saturating_sub(from) as usize);
    let mut pos = from;
    while pos < end {
        let seg = segno(pos, seg_size);
        let name = file_name(tli, seg, seg_size);
        let path = pg_wal.join(&name);
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PgError::WalLost(format!(
                    "WAL segment {name} (LSN {}) is gone from {} before it was archived",
                    crate::Lsn(pos),
                    pg_wal.display()
                )));
            }
            Err(e) => return Err(PgError::Query(format!("open {}: {e}", path.display()))),
        };
        let in_seg = pos - seg * seg_size;
        let want = (end - pos).min(seg_size - in_seg) as usize;
        f.seek(SeekFrom::Start(in_seg))
            .map_err(|e| PgError::Query(format!("seek {}: {e}", path.display())))?;
        let start = out.len();
        out.resize(start + want, 0);
        f.read_exact(&mut out[start..])
            .map_err(|e| PgError::Query(format!("read {}: {e}", path.display())))?;
        pos += want as u64;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB16: u64 = 16 * 1024 * 1024;

    #[test]
    fn names_follow_xlogfilename() {
        assert_eq!(file_name(1, 1, MB16), "000000010000000000000001");
        assert_eq!(file_name(2, 0x100 + 5, MB16), "000000020000000100000005");
        assert_eq!(
            parse_file_name("000000020000000100000005", MB16),
            Some((2, 0x105))
        );
        assert_eq!(parse_file_name("00000002.history", MB16), None);
        assert_eq!(history_file_name(2), "00000002.history");
        let h = "1\t0/3000158\tno recovery target specified\n\n2\t0/5000000\tat restore point\n";
        assert_eq!(fork_point(h), Some((2, 0x500_0000)));
        assert_eq!(
            fork_point("1\t0/30001A0\tbefore 2026\n"),
            Some((1, 0x300_01A0))
        );
        assert_eq!(fork_point(""), None);
        assert_eq!(fork_point("garbage"), None);
        assert_eq!(segment_start(MB16 + 7, MB16), MB16);
    }

    #[test]
    fn reads_across_segments_and_names_a_lost_one() {
        let seg = 16u64;
        let dir = std::env::temp_dir().join(format!("backstop-wal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file_name(1, 1, seg)), [1u8; 16]).unwrap();
        std::fs::write(dir.join(file_name(1, 2, seg)), [2u8; 16]).unwrap();
        let got = read(&dir, 1, seg, 30, 40, 100).unwrap();
        assert_eq!(got, vec![1, 1, 2, 2, 2, 2, 2, 2, 2, 2]);
        assert_eq!(read(&dir, 1, seg, 30, 40, 3).unwrap(), vec![1, 1, 2]);
        let err = read(&dir, 1, seg, 8, 20, 100).unwrap_err();
        assert!(matches!(err, PgError::WalLost(_)), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
