//! Just enough of PostgreSQL's WAL record format to find where a time target ends:
//! the first transaction commit or abort record whose timestamp is past it.
//!
//! The layout read here (PostgreSQL 15, `access/xlogrecord.h`, `access/xlog_internal.h`,
//! `access/xact.h`):
//! - WAL pages of [`XLOG_BLCKSZ`] bytes each start with a header: 40 bytes on a
//!   segment's first page (`XLogLongPageHeaderData`, MAXALIGNed), 24 on the others.
//!   Record bytes continue across pages after the header.
//! - A record starts on an 8-byte boundary with `XLogRecord` (24 bytes): `xl_tot_len`
//!   (u32, the whole record), `xl_xid`, `xl_prev`, `xl_info` (u8), `xl_rmid` (u8),
//!   padding, `xl_crc`. Then block headers, then block data, then the main data, which is
//!   the record's last bytes; its length is in the `XLR_BLOCK_ID_DATA_SHORT` (255, u8
//!   length) or `XLR_BLOCK_ID_DATA_LONG` (254, u32 length) header.
//! - `xl_rmid` 1 is the transaction manager: `xl_info & 0x70` 0x00 commit, 0x20 abort,
//!   0x30 commit prepared, 0x40 abort prepared; their main data begins with `xact_time`,
//!   microseconds since 2000-01-01 UTC. `xl_rmid` 0 with `xl_info & 0xF0` 0x40 is
//!   `XLOG_SWITCH`: the rest of the segment is unused.
//!
//! All reads are bounded by the range given; a malformed record ends the scan (it is
//! where recovery would find the end of the WAL too).

use std::path::Path;

use crate::{PgError, Result, wal};

/// WAL page size (`XLOG_BLCKSZ`), bytes.
pub const XLOG_BLCKSZ: u64 = 8192;
const SHORT_HEADER: u64 = 24;
const LONG_HEADER: u64 = 40;
const RECORD_HEADER: u64 = 24;
/// Milliseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_MS: i64 = 946_684_800_000;

/// Which timeline's segment files in `pg_wal` hold the WAL at each LSN: `tli`'s, or,
/// for WAL staged across a fork, `tli`'s below a segment start and the later
/// timeline's from there on (that segment, on the later timeline, begins with the
/// earlier timeline's WAL up to the switchpoint, as PostgreSQL writes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StagedTimelines {
    /// The timeline of the first segments.
    pub tli: u32,
    /// `(segment start LSN, timeline)`: segments from this LSN on are this timeline's.
    pub later: Option<(u64, u32)>,
}

impl StagedTimelines {
    fn at(&self, segment_start: u64) -> u32 {
        match self.later {
            Some((from, tli)) if segment_start >= from => tli,
            _ => self.tli,
        }
    }
}

impl From<u32> for StagedTimelines {
    fn from(tli: u32) -> Self {
        StagedTimelines { tli, later: None }
    }
}

/// Reads WAL bytes by LSN from segment files, one segment in memory at a time.
struct Segments<'a> {
    dir: &'a Path,
    tli: StagedTimelines,
    seg: u64,
    cur: Option<(u64, Vec<u8>)>,
}

impl Segments<'_> {
    fn byte_range(&mut self, pos: u64, n: u64) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(n as usize);
        let mut p = pos;
        while (out.len() as u64) < n {
            let segno = wal::segno(p, self.seg);
            if self.cur.as_ref().map(|c| c.0) != Some(segno) {
                let tli = self.tli.at(segno * self.seg);
                let path = self.dir.join(wal::file_name(tli, segno, self.seg));
                let data = std::fs::read(&path)
                    .map_err(|e| PgError::Query(format!("read {}: {e}", path.display())))?;
                self.cur = Some((segno, data));
            }
            let Some((_, data)) = self.cur.as_ref() else {
                return Err(PgError::Invalid("no WAL segment".into()));
            };
            let off = (p - segno * self.seg) as usize;
            let take = ((n - out.len() as u64) as usize).min(data.len().saturating_sub(off));
            if take == 0 {
                return Err(PgError::Invalid(format!(
                    "WAL segment {segno} ends before LSN {}",
                    crate::Lsn(p)
                )));
            }
            out.extend_from_slice(&data[off..off + take]);
            p += take as u64;
        }
        Ok(out)
    }
}

fn header_len(pos: u64, seg: u64) -> u64 {
    if pos.is_multiple_of(seg) {
        LONG_HEADER
    } else {
        SHORT_HEADER
    }
}

/// Skips a page header when `pos` is at a page start.
fn skip_header(pos: u64, seg: u64) -> u64 {
    if pos.is_multiple_of(XLOG_BLCKSZ) {
        pos + header_len(pos, seg)
    } else {
        pos
    }
}

/// Reads `n` record bytes from `pos` (a position inside a page's data), skipping the
/// page headers it crosses; returns the bytes and the position after them.
fn read_record_bytes(r: &mut Segments<'_>, mut pos: u64, n: u64) -> Result<(Vec<u8>, u64)> {
    let mut out = Vec::with_capacity(n as usize);
    while (out.len() as u64) < n {
        pos = skip_header(pos, r.seg);
        let page_end = (pos / XLOG_BLCKSZ + 1) * XLOG_BLCKSZ;
        let take = (n - out.len() as u64).min(page_end - pos);
        out.extend(r.byte_range(pos, take)?);
        pos += take;
    }
    Ok((out, pos))
}

/// The length of a record's main data, from its block headers (after the 24-byte
/// record header); `None` when malformed.
fn main_data_len(rec: &[u8]) -> Option<usize> {
    let mut i = RECORD_HEADER as usize;
    let u16_at = |i: usize| -> Option<usize> {
        Some(u16::from_le_bytes(rec.get(i..i + 2)?.try_into().ok()?) as usize)
    };
    // At most 32 block references plus the special headers.
    for _ in 0..40 {
        let id = *rec.get(i)?;
        match id {
            255 => return rec.get(i + 1).map(|b| *b as usize),
            254 => {
                return Some(u32::from_le_bytes(rec.get(i + 1..i + 5)?.try_into().ok()?) as usize);
            }
            253 => i += 3,
            252 => i += 5,
            0..=32 => {
                let fork_flags = *rec.get(i + 1)?;
                i += 4;
                if fork_flags & 0x10 != 0 {
                    // XLogRecordBlockImageHeader: length, hole_offset, bimg_info.
                    let bimg_info = *rec.get(i + 4)?;
                    i += 5;
                    let compressed = bimg_info & (0x04 | 0x08 | 0x10) != 0;
                    if bimg_info & 0x01 != 0 && compressed {
                        u16_at(i)?;
                        i += 2;
                    }
                }
                if fork_flags & 0x80 == 0 {
                    i += 12;
                }
                i += 4;
            }
            _ => return None,
        }
    }
    None
}

/// A transaction record's time, ms since the Unix epoch (`None` for other records).
fn xact_time_ms(rec: &[u8]) -> Option<i64> {
    let rmid = *rec.get(17)?;
    let info = *rec.get(16)?;
    if rmid != 1 || !matches!(info & 0x70, 0x00 | 0x20 | 0x30 | 0x40) {
        return None;
    }
    let main = main_data_len(rec)?;
    let start = rec.len().checked_sub(main)?;
    let t = i64::from_le_bytes(rec.get(start..start + 8)?.try_into().ok()?);
    Some(t / 1000 + PG_EPOCH_MS)
}

/// Scans the WAL in `pg_wal` (timeline `tli`, or two across a fork) from the record starting at `from` up to
/// `end`, and returns the start LSN of the first transaction commit or abort record at
/// or after `not_before` whose time is later than `after_ms` (ms since the Unix
/// epoch): recovering to just before it replays exactly the transactions that ended
/// at or before that time. `None` when there is none before `end`.
///
/// Errors: [`PgError::Query`] when a segment file cannot be read.
pub fn first_xact_after(
    pg_wal: &Path,
    tli: impl Into<StagedTimelines>,
    seg_size: u64,
    from: u64,
    end: u64,
    not_before: u64,
    after_ms: u64,
) -> Result<Option<u64>> {
    let mut r = Segments {
        dir: pg_wal,
        tli: tli.into(),
        seg: seg_size,
        cur: None,
    };
    let mut pos = skip_header(from, seg_size);
    while pos + RECORD_HEADER <= end {
        let (len, _) = read_record_bytes(&mut r, pos, 4)?;
        let tot = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as u64;
        if !(RECORD_HEADER..=(1 << 30)).contains(&tot) {
            // Zeros or garbage: the end of the valid WAL.
            return Ok(None);
        }
        let (rec, after) = read_record_bytes(&mut r, pos, tot)?;
        if after > end {
            return Ok(None);
        }
        if pos >= not_before
            && let Some(t) = xact_time_ms(&rec)
            && t > after_ms as i64
        {
            return Ok(Some(pos));
        }
        let (rmid, info) = (rec[17], rec[16]);
        pos = if rmid == 0 && info & 0xF0 == 0x40 {
            // XLOG_SWITCH: the next record is at the next segment's start.
            skip_header(wal::segment_start(pos, seg_size) + seg_size, seg_size)
        } else {
            skip_header(after.div_ceil(8) * 8, seg_size)
        };
    }
    Ok(None)
}

/// What the staged WAL holds at an LSN target (recovery stops before the first record
/// that starts at or after it, and must read that record whole to know it is there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtTarget {
    /// A whole record starts at or after the target: recovery stops before it.
    Whole,
    /// Every record before the target is whole, and none at or after it is (the WAL
    /// ends first): recovering to the end of the WAL replays exactly the records
    /// before the target.
    EndsThere,
    /// A record that starts before the target is not whole: the WAL does not reach the
    /// target yet.
    Short,
}

/// Where the records around `target` are in the WAL in `pg_wal` (timeline `tli`, or two
/// across a fork) that
/// ends at `end`: found from the header of the page `target` is in
/// (`xlp_rem_len` says where that page's first record starts), so only the pages from
/// there to the first record at or after `target` are read.
///
/// Errors: none for missing or zeroed WAL (that is `EndsThere` or `Short`).
pub fn at_target(
    pg_wal: &Path,
    tli: impl Into<StagedTimelines>,
    seg_size: u64,
    target: u64,
    end: u64,
) -> AtTarget {
    let mut r = Segments {
        dir: pg_wal,
        tli: tli.into(),
        seg: seg_size,
        cur: None,
    };
    // The first record that starts in target's page or a later one.
    let mut page = target / XLOG_BLCKSZ * XLOG_BLCKSZ;
    let mut pos = loop {
        let hdr = header_len(page, seg_size);
        if page + hdr > end {
            return AtTarget::EndsThere;
        }
        let Ok(h) = r.byte_range(page, hdr) else {
            return AtTarget::EndsThere;
        };
        let magic = u16::from_le_bytes([h[0], h[1]]);
        if magic == 0 {
            return AtTarget::EndsThere;
        }
        let info = u16::from_le_bytes([h[2], h[3]]);
        let rem = u64::from(u32::from_le_bytes([h[16], h[17], h[18], h[19]]));
        // XLP_FIRST_IS_CONTRECORD: the page begins with the rest of a record.
        let first = if info & 0x0001 != 0 {
            (page + hdr + rem).div_ceil(8) * 8
        } else {
            page + hdr
        };
        if first < page + XLOG_BLCKSZ {
            break first;
        }
        if page + hdr + rem > end {
            // A record that started before the target continues past the WAL's end.
            return AtTarget::Short;
        }
        page += XLOG_BLCKSZ;
    };
    // Records from there until one starts at or after the target.
    for _ in 0..100_000 {
        pos = skip_header(pos, seg_size);
        if pos + RECORD_HEADER > end {
            return if pos >= target {
                AtTarget::EndsThere
            } else {
                AtTarget::Short
            };
        }
        let tot = match read_record_bytes(&mut r, pos, RECORD_HEADER) {
            Ok((h, _)) => (
                u64::from(u32::from_le_bytes([h[0], h[1], h[2], h[3]])),
                h[16],
                h[17],
            ),
            Err(_) => (0, 0, 0),
        };
        let (len, info, rmid) = tot;
        if !(RECORD_HEADER..=(1 << 30)).contains(&len) {
            // Zeros or garbage: the end of the valid WAL.
            return if pos >= target {
                AtTarget::EndsThere
            } else {
                AtTarget::Short
            };
        }
        // Where the record ends, page headers skipped.
        let (mut at, mut left) = (pos, len);
        while left > 0 {
            at = skip_header(at, seg_size);
            let page_end = (at / XLOG_BLCKSZ + 1) * XLOG_BLCKSZ;
            let take = left.min(page_end - at);
            at += take;
            left -= take;
        }
        if pos >= target {
            return if at <= end {
                AtTarget::Whole
            } else {
                AtTarget::EndsThere
            };
        }
        if at > end {
            return AtTarget::Short;
        }
        pos = if rmid == 0 && info & 0xF0 == 0x40 {
            wal::segment_start(pos, seg_size) + seg_size
        } else {
            at.div_ceil(8) * 8
        };
    }
    AtTarget::Whole
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit record as PostgreSQL writes one without block references: the 24-byte
    /// header, `XLR_BLOCK_ID_DATA_SHORT` with the main data's length, then the main
    /// data starting with `xact_time`.
    fn commit_record(xact_time_us: i64) -> Vec<u8> {
        let main: Vec<u8> = xact_time_us
            .to_le_bytes()
            .into_iter()
            .chain([0u8; 4])
            .collect();
        let tot = 24 + 2 + main.len();
        let mut r = Vec::new();
        r.extend_from_slice(&(tot as u32).to_le_bytes());
        r.extend_from_slice(&[0; 12]); // xl_xid, xl_prev
        r.push(0x00); // xl_info: XLOG_XACT_COMMIT
        r.push(1); // xl_rmid: RM_XACT_ID
        r.extend_from_slice(&[0; 6]); // padding, xl_crc
        r.push(255);
        r.push(main.len() as u8);
        r.extend_from_slice(&main);
        r
    }

    #[test]
    fn a_commit_records_time_is_read_and_other_records_have_none() {
        // 2026-12-03T00:00:00Z in PostgreSQL's microseconds since 2000-01-01.
        let unix_ms: i64 = 1_796_256_000_000;
        let rec = commit_record((unix_ms - PG_EPOCH_MS) * 1000);
        assert_eq!(main_data_len(&rec), Some(12));
        assert_eq!(xact_time_ms(&rec), Some(unix_ms));
        let mut heap = rec.clone();
        heap[17] = 10; // RM_HEAP_ID
        assert_eq!(xact_time_ms(&heap), None);
        // Truncated or garbage headers are not read past their end.
        assert_eq!(main_data_len(&rec[..25]), None);
        let mut bad = rec;
        bad[24] = 200;
        assert_eq!(main_data_len(&bad), None);
    }

    #[test]
    fn the_record_at_a_target_is_whole_missing_or_cut() {
        let dir = tempfile::tempdir().unwrap();
        let seg = 16 * 1024 * 1024;
        let mut data = vec![0u8; seg as usize];
        data[0..2].copy_from_slice(&0xD110u16.to_le_bytes()); // xlp_magic
        // A 50-byte record after the 40-byte long page header: bytes [40, 90).
        data[40..44].copy_from_slice(&50u32.to_le_bytes());
        std::fs::write(dir.path().join(wal::file_name(1, 0, seg)), &data).unwrap();
        let at = |target, end| at_target(dir.path(), 1, seg, target, end);
        assert_eq!(at(40, 96), AtTarget::Whole);
        assert_eq!(at(96, 200), AtTarget::EndsThere, "zeros after the record");
        assert_eq!(at(60, 80), AtTarget::Short, "inside a record the WAL cuts");
        assert_eq!(
            at(40, 80),
            AtTarget::EndsThere,
            "the record at the target is cut"
        );
    }

    #[test]
    fn page_headers_are_skipped_long_on_a_segments_first_page() {
        let seg = 16 * 1024 * 1024;
        assert_eq!(skip_header(0, seg), 40);
        assert_eq!(skip_header(XLOG_BLCKSZ, seg), XLOG_BLCKSZ + 24);
        assert_eq!(skip_header(100, seg), 100);
        assert_eq!(skip_header(seg, seg), seg + 40);
    }
}
