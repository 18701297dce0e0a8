//! The workload generator: a `dir://` tenant whose restored state can be checked
//! exactly at any SCN.
//!
//! - Datafiles `data/file_NNN.dat` hold 8 KiB pages: `page_no u64 | scn u64 |
//!   checksum u64 (xxh3 of the rest) | payload`.
//! - The log (`log/<start_scn:020>.log` segments) holds redo records:
//!   `magic u32 | len u32 | page_no u64 | checksum u64 | full page image`. A record's
//!   SCN is its byte offset; the log end after it is a record boundary.
//! - Each write appends the redo record, then writes the page in place, both under
//!   an exclusive `flock` on `workload/write.lock`; `flock workload/write.lock true`
//!   (the tenant's `begin_backup` hook) therefore waits for the write in flight.
//! - The state digest is the wrapping sum of xxh3 over every page, updated in O(1)
//!   per write and recorded with the log end after each record in
//!   `workload/digests.bin` (16 bytes per record: scn, digest, little-endian).
//!
//! `verify` replays a restored log onto the restored datafiles from the first
//! record boundary at or after `start_replay_scn` up to the target (full page images
//! heal fractured pages), then compares the digest with the recorded one.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use xxhash_rust::xxh3::xxh3_64;

/// Page size, bytes.
pub const PAGE: usize = 8192;
/// Redo record header: magic, len, page_no, checksum.
pub const RECORD_HEADER: usize = 4 + 4 + 8 + 8;
/// Redo record size, bytes.
pub const RECORD: usize = RECORD_HEADER + PAGE;
const MAGIC: u32 = 0x4253_5244;

/// Why the workload or its check failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// File system error.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The restored state is not the recorded one.
    #[error("verify failed: {0}")]
    Mismatch(String),
    /// Bad arguments or layout.
    #[error("{0}")]
    Invalid(String),
}

type Result<T> = std::result::Result<T, WorkloadError>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> WorkloadError {
    let what = what.into();
    move |e| WorkloadError::Io(what, e)
}

/// Shape of a generated tenant.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Number of datafiles.
    pub files: u64,
    /// Pages per datafile.
    pub pages_per_file: u64,
}

impl Shape {
    /// A shape of about `bytes` in `files` files.
    pub fn of_size(bytes: u64, files: u64) -> Shape {
        let files = files.max(1);
        Shape {
            files,
            pages_per_file: (bytes / PAGE as u64 / files).max(1),
        }
    }

    fn total_pages(&self) -> u64 {
        self.files * self.pages_per_file
    }
}

/// Small fast PRNG (xorshift64*), seeded per run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (a zero seed is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Builds a page: header then payload (half random, half a repeating pattern, so
/// pages compress about 2:1 like real database pages).
fn make_page(page_no: u64, scn: u64, rng: &mut Rng) -> Vec<u8> {
    let mut page = vec![0u8; PAGE];
    rng.fill(&mut page[24..24 + (PAGE - 24) / 2]);
    let pattern = (page_no as u8).wrapping_add(scn as u8);
    for b in &mut page[24 + (PAGE - 24) / 2..] {
        *b = pattern;
    }
    page[0..8].copy_from_slice(&page_no.to_le_bytes());
    page[8..16].copy_from_slice(&scn.to_le_bytes());
    let sum = xxh3_64(&page[24..]);
    page[16..24].copy_from_slice(&sum.to_le_bytes());
    page
}

fn page_hash(page: &[u8]) -> u64 {
    xxh3_64(page)
}

fn file_path(dir: &Path, file: u64) -> PathBuf {
    dir.join("data").join(format!("file_{file:03}.dat"))
}

fn meta_dir(dir: &Path) -> PathBuf {
    dir.join("workload")
}

/// Creates a tenant of `shape` at `dir` and records its initial digest at SCN 0.
pub fn init(dir: &Path, shape: Shape, seed: u64) -> Result<()> {
    std::fs::create_dir_all(dir.join("data")).map_err(io("create data dir"))?;
    std::fs::create_dir_all(dir.join("log")).map_err(io("create log dir"))?;
    std::fs::create_dir_all(meta_dir(dir)).map_err(io("create workload dir"))?;
    let mut rng = Rng::new(seed);
    let mut digest = 0u64;
    for f in 0..shape.files {
        let path = file_path(dir, f);
        let mut out = BufWriter::new(File::create(&path).map_err(io(path.display().to_string()))?);
        for p in 0..shape.pages_per_file {
            let page = make_page(f * shape.pages_per_file + p, 0, &mut rng);
            digest = digest.wrapping_add(page_hash(&page));
            out.write_all(&page).map_err(io("write datafile"))?;
        }
        out.flush().map_err(io("write datafile"))?;
    }
    File::create(dir.join("log").join(format!("{:020}.log", 0)))
        .map_err(io("create log segment"))?;
    let shape_text = format!("{} {}\n", shape.files, shape.pages_per_file);
    std::fs::write(meta_dir(dir).join("shape"), shape_text).map_err(io("write shape"))?;
    let mut d = File::create(meta_dir(dir).join("digests.bin")).map_err(io("create digests"))?;
    d.write_all(&0u64.to_le_bytes())
        .map_err(io("write digests"))?;
    d.write_all(&digest.to_le_bytes())
        .map_err(io("write digests"))?;
    File::create(meta_dir(dir).join("write.lock")).map_err(io("create lock"))?;
    Ok(())
}

fn read_shape(dir: &Path) -> Result<Shape> {
    let text =
        std::fs::read_to_string(meta_dir(dir).join("shape")).map_err(io("read workload/shape"))?;
    let mut it = text.split_whitespace().map(str::parse::<u64>);
    match (it.next(), it.next()) {
        (Some(Ok(files)), Some(Ok(pages_per_file))) => Ok(Shape {
            files,
            pages_per_file,
        }),
        _ => Err(WorkloadError::Invalid("workload/shape is malformed".into())),
    }
}

/// Reads `workload/digests.bin`: (scn, digest) pairs in SCN order.
pub fn read_digests(dir: &Path) -> Result<Vec<(u64, u64)>> {
    let mut bytes = Vec::new();
    File::open(meta_dir(dir).join("digests.bin"))
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io("read workload/digests.bin"))?;
    Ok(bytes
        .chunks_exact(16)
        .map(|c| {
            let mut a = [0u8; 8];
            let mut b = [0u8; 8];
            a.copy_from_slice(&c[..8]);
            b.copy_from_slice(&c[8..]);
            (u64::from_le_bytes(a), u64::from_le_bytes(b))
        })
        .collect())
}

/// How a run ends.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    /// Log bytes per second (0 = as fast as possible).
    pub rate: u64,
    /// Stop after this long.
    pub duration: Duration,
    /// Roll segments at this size.
    pub segment_bytes: u64,
    /// Stop after this many page writes (0 = no limit).
    pub max_writes: u64,
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunStats {
    /// Page writes.
    pub writes: u64,
    /// Log end at the end of the run.
    pub log_end: u64,
}

/// Writes pages until `limits.duration` passes or `stop` is set.
pub fn run(dir: &Path, seed: u64, limits: RunLimits, stop: &AtomicBool) -> Result<RunStats> {
    let shape = read_shape(dir)?;
    let total = shape.total_pages();
    let mut digests = read_digests(dir)?;
    let (mut log_end, mut digest) = digests
        .pop()
        .ok_or_else(|| WorkloadError::Invalid("no digests: run init first".into()))?;
    // Page hashes of the current state.
    let mut hashes = vec![0u64; total as usize];
    let mut files = Vec::new();
    for f in 0..shape.files {
        let path = file_path(dir, f);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io(path.display().to_string()))?;
        let mut buf = vec![0u8; PAGE];
        for p in 0..shape.pages_per_file {
            file.read_exact_at(&mut buf, p * PAGE as u64)
                .map_err(io("read page"))?;
            hashes[(f * shape.pages_per_file + p) as usize] = page_hash(&buf);
        }
        files.push(file);
    }
    let lock = File::open(meta_dir(dir).join("write.lock")).map_err(io("open write.lock"))?;
    let mut digest_out = BufWriter::new(
        OpenOptions::new()
            .append(true)
            .open(meta_dir(dir).join("digests.bin"))
            .map_err(io("open digests"))?,
    );
    let seg_dir = dir.join("log");
    let mut segments: Vec<u64> = std::fs::read_dir(&seg_dir)
        .map_err(io("read log dir"))?
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .trim_end_matches(".log")
                .parse()
                .ok()
        })
        .collect();
    segments.sort();
    let mut seg_start = segments.last().copied().unwrap_or(0);
    let mut seg = OpenOptions::new()
        .append(true)
        .create(true)
        .open(seg_dir.join(format!("{seg_start:020}.log")))
        .map_err(io("open log segment"))?;
    let mut rng = Rng::new(seed ^ log_end.rotate_left(17));
    let started = Instant::now();
    let mut stats = RunStats::default();
    let mut record = vec![0u8; RECORD];
    while started.elapsed() < limits.duration
        && !stop.load(Ordering::Relaxed)
        && (limits.max_writes == 0 || stats.writes < limits.max_writes)
    {
        if limits.rate > 0 {
            let allowed = (started.elapsed().as_secs_f64() * limits.rate as f64) as u64;
            if stats.writes * RECORD as u64 > allowed {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        }
        let g = rng.next_u64() % total;
        let page = make_page(g, log_end, &mut rng);
        record[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        record[4..8].copy_from_slice(&(PAGE as u32).to_le_bytes());
        record[8..16].copy_from_slice(&g.to_le_bytes());
        record[16..24].copy_from_slice(&xxh3_64(&page).to_le_bytes());
        record[RECORD_HEADER..].copy_from_slice(&page);
        let (f, p) = (g / shape.pages_per_file, g % shape.pages_per_file);
        lock.lock().map_err(io("lock write.lock"))?;
        let written = seg
            .write_all(&record)
            .and_then(|_| files[f as usize].write_all_at(&page, p * PAGE as u64));
        lock.unlock().map_err(io("unlock write.lock"))?;
        written.map_err(io("write record and page"))?;
        log_end += RECORD as u64;
        digest = digest
            .wrapping_sub(hashes[g as usize])
            .wrapping_add(page_hash(&page));
        hashes[g as usize] = page_hash(&page);
        digest_out
            .write_all(&log_end.to_le_bytes())
            .map_err(io("write digests"))?;
        digest_out
            .write_all(&digest.to_le_bytes())
            .map_err(io("write digests"))?;
        stats.writes += 1;
        if log_end - seg_start >= limits.segment_bytes {
            digest_out.flush().map_err(io("write digests"))?;
            seg_start = log_end;
            seg = OpenOptions::new()
                .append(true)
                .create(true)
                .open(seg_dir.join(format!("{seg_start:020}.log")))
                .map_err(io("open log segment"))?;
        }
        if stats.writes % 64 == 0 {
            digest_out.flush().map_err(io("write digests"))?;
        }
    }
    digest_out.flush().map_err(io("write digests"))?;
    stats.log_end = log_end;
    Ok(stats)
}

/// What `verify` checked.
#[derive(Debug, Clone, Copy)]
pub struct Verified {
    /// The SCN whose digest matched (a record boundary ≤ the target).
    pub scn: u64,
    /// Records replayed.
    pub records: u64,
    /// Pages checked.
    pub pages: u64,
}

/// Replays `restored/log` onto `restored/data` up to `until` and compares the state
/// with the digest `source` recorded there. `restored` must come from
/// `backstop restore` (it reads `backstop_restore.json`).
pub fn verify(restored: &Path, source: &Path, until: Option<u64>) -> Result<Verified> {
    let info_text = std::fs::read_to_string(restored.join("backstop_restore.json"))
        .map_err(io("read backstop_restore.json"))?;
    let field = |name: &str| -> Result<u64> {
        let key = format!("\"{name}\":");
        let pos = info_text
            .find(&key)
            .ok_or_else(|| WorkloadError::Invalid(format!("{name} missing")))?;
        info_text[pos + key.len()..]
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| WorkloadError::Invalid(format!("{name} malformed")))
    };
    let start_replay = field("start_replay_scn")?;
    let restored_until = field("until_scn")?;
    let target = until.unwrap_or(restored_until).min(restored_until);
    let shape = read_shape(source)?;
    let digests = read_digests(source)?;
    let (scn, want) = digests
        .iter()
        .rev()
        .find(|(s, _)| *s <= target)
        .copied()
        .ok_or_else(|| WorkloadError::Invalid(format!("no digest at or before SCN {target}")))?;
    let first = digests
        .iter()
        .find(|(s, _)| *s >= start_replay)
        .map(|(s, _)| *s)
        .ok_or_else(|| {
            WorkloadError::Invalid(format!("no record boundary after {start_replay}"))
        })?;
    let mut files = Vec::new();
    for f in 0..shape.files {
        let path = file_path(restored, f);
        files.push(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io(path.display().to_string()))?,
        );
    }
    let seg = restored.join("log").join(format!("{start_replay:020}.log"));
    let mut log = File::open(&seg).map_err(io(seg.display().to_string()))?;
    log.seek(SeekFrom::Start(first - start_replay))
        .map_err(io("seek restored log"))?;
    let mut pos = first;
    let mut records = 0;
    let mut record = vec![0u8; RECORD];
    while pos + RECORD as u64 <= scn {
        log.read_exact(&mut record)
            .map_err(io(format!("read record at SCN {pos}")))?;
        let magic = u32::from_le_bytes([record[0], record[1], record[2], record[3]]);
        let mut n = [0u8; 8];
        n.copy_from_slice(&record[8..16]);
        let page_no = u64::from_le_bytes(n);
        n.copy_from_slice(&record[16..24]);
        let sum = u64::from_le_bytes(n);
        let image = &record[RECORD_HEADER..];
        if magic != MAGIC || xxh3_64(image) != sum || page_no >= shape.total_pages() {
            return Err(WorkloadError::Mismatch(format!(
                "redo record at SCN {pos} is corrupt"
            )));
        }
        let (f, p) = (
            page_no / shape.pages_per_file,
            page_no % shape.pages_per_file,
        );
        files[f as usize]
            .write_all_at(image, p * PAGE as u64)
            .map_err(io("replay page"))?;
        pos += RECORD as u64;
        records += 1;
    }
    let mut digest = 0u64;
    let mut buf = vec![0u8; PAGE];
    let mut pages = 0;
    for (f, file) in files.iter().enumerate() {
        for p in 0..shape.pages_per_file {
            file.read_exact_at(&mut buf, p * PAGE as u64)
                .map_err(io("read restored page"))?;
            let mut n = [0u8; 8];
            n.copy_from_slice(&buf[16..24]);
            if xxh3_64(&buf[24..]) != u64::from_le_bytes(n) {
                return Err(WorkloadError::Mismatch(format!(
                    "page {p} of file {f} is torn after replay"
                )));
            }
            digest = digest.wrapping_add(page_hash(&buf));
            pages += 1;
        }
    }
    if digest != want {
        return Err(WorkloadError::Mismatch(format!(
            "state at SCN {scn} differs from the recorded one ({records} records replayed from {first})"
        )));
    }
    Ok(Verified {
        scn,
        records,
        pages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_verifies_and_a_damaged_record_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        init(&src, Shape::of_size(256 * 1024, 2), 7).unwrap();
        let stop = AtomicBool::new(false);
        let limits = RunLimits {
            rate: 0,
            duration: Duration::from_millis(200),
            segment_bytes: 100_000,
            max_writes: 0,
        };
        let stats = run(&src, 7, limits, &stop).unwrap();
        assert!(stats.writes > 10);
        // A "restore" by hand: the initial datafiles are lost, so copy the current
        // ones and the whole log from SCN 0.
        let restored = dir.path().join("restored");
        std::fs::create_dir_all(restored.join("data")).unwrap();
        std::fs::create_dir_all(restored.join("log")).unwrap();
        for f in 0..2 {
            std::fs::copy(file_path(&src, f), file_path(&restored, f)).unwrap();
        }
        let mut log = Vec::new();
        let mut segs: Vec<_> = std::fs::read_dir(src.join("log"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        segs.sort();
        for s in segs {
            log.extend(std::fs::read(s).unwrap());
        }
        std::fs::write(restored.join("log").join(format!("{:020}.log", 0)), &log).unwrap();
        let info = format!(
            "{{\"start_replay_scn\": 0, \"until_scn\": {}}}",
            stats.log_end
        );
        std::fs::write(restored.join("backstop_restore.json"), info).unwrap();
        let v = verify(&restored, &src, None).unwrap();
        assert_eq!(v.scn, stats.log_end);
        assert_eq!(v.records, stats.writes);
        // A damaged redo record is caught.
        let seg = restored.join("log").join(format!("{:020}.log", 0));
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.write_all_at(&[0xff; 8], (RECORD_HEADER + 100) as u64)
            .unwrap();
        let err = verify(&restored, &src, None).unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
    }
}
