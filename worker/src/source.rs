//! Tenant sources: what a worker reads for one tenant.
//!
//! `dir:///ABS/PATH` (`docs/OPERATIONS.md`, tenant sources):
//! - `PATH/data/**`: datafiles, copied fuzzily while the tenant writes;
//! - `PATH/log/`: the log as segment files whose names are their start SCN (digits,
//!   optionally followed by `.log`, e.g. `00000000000000000000.log`). The log is one
//!   byte stream; an SCN is a byte offset in it; each segment must start where the
//!   previous one ends. A segment is sealed once a later one exists; the last one is
//!   active and grows.
//!
//! Paths that leave the tenant root (`..`, symlinks pointing outside), unreadable
//! files and files that vanish mid-read are errors naming the file, never a crash.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use backstop_common::Scn;
use backstop_common::task::FileEntry;

use crate::error::{Result, WorkerError};

/// How many of the last bytes read [`DirSource::read_log_after`] compares with the
/// log before each read (a cheap fingerprint of what is already archived).
pub const TAIL_CHECK: usize = 4096;

/// A log segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// File name.
    pub name: String,
    /// First SCN in it.
    pub start: u64,
    /// Current size in bytes.
    pub len: u64,
}

/// A `dir://` tenant source.
#[derive(Debug, Clone)]
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    /// Opens `dir:///abs/path`.
    pub fn open(uri: &str) -> Result<DirSource> {
        if backstop_common::source::is_postgresql(uri) {
            return Err(WorkerError::Invalid(format!(
                "tenant source {}: a PostgreSQL tenant has no dir:// layout (its hooks do not apply)",
                backstop_common::source::redact_source(uri)
            )));
        }
        let path = uri.strip_prefix("dir://").ok_or_else(|| {
            WorkerError::Invalid(format!(
                "unsupported tenant source '{}'",
                backstop_common::source::redact_source(uri)
            ))
        })?;
        let root = std::fs::canonicalize(path)
            .map_err(|e| WorkerError::Source(format!("tenant root {path}: {e}")))?;
        Ok(DirSource { root })
    }

    /// The tenant root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn log_dir(&self) -> PathBuf {
        self.root.join("log")
    }

    /// Every regular file under `data/`, sorted, with relative `/` paths. Symlinks
    /// are followed only when they stay inside the tenant root.
    pub fn list_datafiles(&self) -> Result<Vec<FileEntry>> {
        let data = self.data_dir();
        if !data.is_dir() {
            return Err(WorkerError::Source(format!(
                "{} is not a directory",
                data.display()
            )));
        }
        let mut files = Vec::new();
        for entry in walkdir::WalkDir::new(&data)
            .follow_links(true)
            .sort_by_file_name()
        {
            let entry =
                entry.map_err(|e| WorkerError::Source(format!("walk {}: {e}", data.display())))?;
            if entry.path_is_symlink() {
                let target = std::fs::canonicalize(entry.path())
                    .map_err(|e| WorkerError::Source(format!("{}: {e}", entry.path().display())))?;
                if !target.starts_with(&self.root) {
                    return Err(WorkerError::Source(format!(
                        "{} is a symlink leaving the tenant root (to {})",
                        entry.path().display(),
                        target.display()
                    )));
                }
            }
            if !entry.file_type().is_file() {
                continue;
            }
            let rel = entry
                .path()
                .strip_prefix(&data)
                .map_err(|e| WorkerError::Source(e.to_string()))?;
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let size = entry
                .metadata()
                .map_err(|e| WorkerError::Source(format!("{}: {e}", entry.path().display())))?
                .len();
            files.push(FileEntry { path: rel, size });
        }
        Ok(files)
    }

    /// Resolves a datafile path from a task, refusing anything outside `data/`.
    pub fn datafile_path(&self, rel: &str) -> Result<PathBuf> {
        if !backstop_common::layout::is_inside(rel) {
            return Err(WorkerError::Source(format!(
                "datafile path '{rel}' leaves the tenant root"
            )));
        }
        Ok(self.data_dir().join(rel))
    }

    /// Opens a datafile for reading.
    pub fn open_datafile(&self, rel: &str) -> Result<std::fs::File> {
        let path = self.datafile_path(rel)?;
        std::fs::File::open(&path)
            .map_err(|e| WorkerError::Source(format!("open {}: {e}", path.display())))
    }

    /// The log segments, ordered, checked to be contiguous.
    pub fn segments(&self) -> Result<Vec<Segment>> {
        let dir = self.log_dir();
        let read = std::fs::read_dir(&dir)
            .map_err(|e| WorkerError::Source(format!("{}: {e}", dir.display())))?;
        let mut segs = Vec::new();
        for entry in read {
            let entry =
                entry.map_err(|e| WorkerError::Source(format!("{}: {e}", dir.display())))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(start) = backstop_common::source::segment_start(&name) else {
                continue;
            };
            let len = match entry.metadata() {
                Ok(m) if m.is_file() => m.len(),
                Ok(_) => continue,
                // Removed between listing and stat: treat as gone.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(WorkerError::Source(format!("{name}: {e}"))),
            };
            segs.push(Segment { name, start, len });
        }
        segs.sort_by_key(|s| s.start);
        let named: Vec<(String, u64, u64)> = segs
            .iter()
            .map(|s| (s.name.clone(), s.start, s.len))
            .collect();
        if let Some(reason) = backstop_common::source::segments_gap(&named) {
            return Err(WorkerError::SourceLayout(reason));
        }
        Ok(segs)
    }

    /// The current end of the log (the SCN the next byte will get).
    pub fn log_end(&self) -> Result<Scn> {
        Ok(Scn(self.segments()?.last().map_or(0, |s| s.start + s.len)))
    }

    /// Reads up to `max` bytes of log from `from`. Empty when `from` is the end.
    /// Fails with [`WorkerError::LogLost`] when `from` is before the oldest segment.
    pub fn read_log(&self, from: Scn, max: usize) -> Result<Vec<u8>> {
        let segs = self.segments()?;
        let Some(first) = segs.first() else {
            return Ok(Vec::new());
        };
        if from.0 < first.start {
            return Err(WorkerError::LogLost(format!(
                "log from SCN {} is gone; the oldest segment {} starts at {}",
                from.0, first.name, first.start
            )));
        }
        let mut out = Vec::new();
        for seg in segs
            .iter()
            .filter(|s| s.start + s.len > from.0 || (s.len == 0 && s.start >= from.0))
        {
            if out.len() >= max {
                break;
            }
            let pos = from.0 + out.len() as u64;
            if pos < seg.start || pos >= seg.start + seg.len {
                continue;
            }
            let path = self.log_dir().join(&seg.name);
            let mut f = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(WorkerError::LogLost(format!(
                        "segment {} vanished before it was archived",
                        seg.name
                    )));
                }
                Err(e) => return Err(WorkerError::Source(format!("open {}: {e}", path.display()))),
            };
            f.seek(SeekFrom::Start(pos - seg.start))
                .map_err(|e| WorkerError::Source(format!("seek {}: {e}", path.display())))?;
            let want = ((seg.start + seg.len - pos) as usize).min(max - out.len());
            let mut buf = vec![0u8; want];
            let mut got = 0;
            while got < want {
                let n = f
                    .read(&mut buf[got..])
                    .map_err(|e| WorkerError::Source(format!("read {}: {e}", path.display())))?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            buf.truncate(got);
            out.extend_from_slice(&buf);
            if got < want {
                break;
            }
        }
        Ok(out)
    }

    /// Like [`Self::read_log`], after checking that the log still holds `tail` just
    /// before `from` (the last bytes already read, up to [`TAIL_CHECK`] of them) and
    /// has not been cut back below `from`.
    ///
    /// Errors: [`WorkerError::LogRewritten`] naming the segment and SCNs when the log
    /// now ends before `from` or those bytes changed (a truncated and regrown active
    /// segment, a replaced file); [`WorkerError::LogLost`] and `Source` as
    /// `read_log`. When the segment holding `tail` was removed (sealed and rotated
    /// away) there is nothing left to compare and only the cut-back check applies.
    pub fn read_log_after(&self, from: Scn, tail: &[u8], max: usize) -> Result<Vec<u8>> {
        let segs = self.segments()?;
        let end = segs.last().map_or(0, |s| s.start + s.len);
        if end < from.0 {
            let which = segs
                .last()
                .map_or_else(|| "log/ (no segments left)".to_string(), |s| s.name.clone());
            return Err(WorkerError::LogRewritten(format!(
                "log segment {which} was cut back: the log now ends at SCN {end}, below SCN {} already read",
                from.0
            )));
        }
        let tail_start = from.0 - tail.len() as u64;
        if !tail.is_empty() && segs.first().is_some_and(|f| f.start <= tail_start) {
            let now = self.read_log(Scn(tail_start), tail.len())?;
            if now != tail {
                let which = segs
                    .iter()
                    .rev()
                    .find(|s| s.start < from.0)
                    .map_or("?", |s| s.name.as_str());
                return Err(WorkerError::LogRewritten(format!(
                    "log segment {which} was rewritten: SCNs [{tail_start}, {}) changed after they were read",
                    from.0
                )));
            }
        }
        self.read_log(from, max)
    }

    /// Runs a hook with `sh -c`, with `BACKSTOP_TENANT_ROOT` set, killing it after
    /// `timeout`. Only a worker started with `--allow-hooks` runs hooks (`allowed`);
    /// any other refuses with [`WorkerError::Hook`], as it does when the hook fails or
    /// times out. A failed hook's error carries the first [`HOOK_STDERR_BYTES`] of
    /// its stderr, with secrets (`access_key=`, `password=`) masked; the error
    /// becomes the job's comment.
    pub async fn run_hook(
        &self,
        which: &str,
        command: &str,
        timeout: Duration,
        allowed: bool,
    ) -> Result<()> {
        if !allowed {
            return Err(WorkerError::Hook(format!(
                "{which}: this worker was not started with --allow-hooks, so it runs no tenant hook commands (docs/SECURITY.md)"
            )));
        }
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .env("BACKSTOP_TENANT_ROOT", &self.root)
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| WorkerError::Hook(format!("{which}: start '{command}': {e}")))?;
        let stderr = child.stderr.take();
        // Read at most HOOK_STDERR_BYTES, then drain the rest so the hook never
        // blocks on a full pipe.
        let reader = async move {
            use tokio::io::AsyncReadExt;
            let mut kept = Vec::new();
            if let Some(mut err) = stderr {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let room = HOOK_STDERR_BYTES.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
            kept
        };
        let run = async {
            let (status, kept) = tokio::join!(child.wait(), reader);
            (status, kept)
        };
        let (status, kept) = tokio::time::timeout(timeout, run).await.map_err(|_| {
            WorkerError::Hook(format!(
                "{which}: '{}' did not finish within {}s",
                redact_secrets(command),
                timeout.as_secs()
            ))
        })?;
        let status = status.map_err(|e| WorkerError::Hook(format!("{which}: {e}")))?;
        if !status.success() {
            let text = String::from_utf8_lossy(&kept);
            let text = text.trim();
            let detail = if text.is_empty() {
                String::new()
            } else {
                format!(": {}", redact_secrets(text))
            };
            return Err(WorkerError::Hook(format!(
                "{which}: '{}' exited with {status}{detail}",
                redact_secrets(command)
            )));
        }
        Ok(())
    }
}

/// How much of a failed hook's stderr its error keeps (bytes).
pub const HOOK_STDERR_BYTES: usize = 2048;

/// Masks the values of `access_key=`, `secret_access_key=` and `password=` (up to the
/// next `&`, space or quote) in text a hook printed or was given.
pub fn redact_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = ["access_key=", "password="]
            .iter()
            .filter_map(|k| rest.find(k).map(|p| (p, k.len())))
            .min();
        let Some((pos, len)) = next else { break };
        let (head, tail) = rest.split_at(pos + len);
        out.push_str(head);
        out.push_str("***");
        let end = tail
            .find(|c: char| c == '&' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The files a data backup copies: a `dir://` tenant's `data/`, or a PostgreSQL
/// tenant's data directory.
#[derive(Debug, Clone)]
pub enum DataFiles {
    /// `dir://`.
    Dir(DirSource),
    /// PostgreSQL: the data directory (`pgdata=`).
    Pg(PathBuf),
}

impl DataFiles {
    /// Opens either kind of source.
    ///
    /// Errors: as [`DirSource::open`]; `Invalid` for a malformed PostgreSQL URI.
    pub fn open(uri: &str) -> Result<DataFiles> {
        if backstop_common::source::is_postgresql(uri) {
            return Ok(DataFiles::Pg(PathBuf::from(crate::pg::parse(uri)?.pgdata)));
        }
        Ok(DataFiles::Dir(DirSource::open(uri)?))
    }

    /// Opens a listed file; `None` when a PostgreSQL file vanished since it was
    /// listed (replay of the WAL recreates what mattered). A `dir://` datafile that
    /// vanished is an error.
    pub fn open_file(&self, rel: &str) -> Result<Option<std::fs::File>> {
        match self {
            DataFiles::Dir(src) => src.open_datafile(rel).map(Some),
            DataFiles::Pg(root) => crate::pg_datadir::open_file(root, rel),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_log_across_segments_and_detects_loss() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("log")).unwrap();
        std::fs::create_dir_all(dir.path().join("data/sub")).unwrap();
        std::fs::write(dir.path().join("log/00000000000000000000.log"), b"hello ").unwrap();
        std::fs::write(dir.path().join("log/00000000000000000006.log"), b"world").unwrap();
        std::fs::write(dir.path().join("data/sub/f1"), b"x").unwrap();
        let src = DirSource::open(&format!("dir://{}", dir.path().display())).unwrap();
        assert_eq!(src.log_end().unwrap(), Scn(11));
        assert_eq!(src.read_log(Scn(3), 100).unwrap(), b"lo world");
        assert_eq!(src.read_log(Scn(3), 4).unwrap(), b"lo w");
        assert_eq!(src.read_log(Scn(11), 4).unwrap(), b"");
        std::fs::remove_file(dir.path().join("log/00000000000000000000.log")).unwrap();
        assert!(matches!(
            src.read_log(Scn(3), 4),
            Err(WorkerError::LogLost(_))
        ));
        let files = src.list_datafiles().unwrap();
        assert_eq!(
            files,
            vec![FileEntry {
                path: "sub/f1".into(),
                size: 1
            }]
        );
        assert!(src.datafile_path("../etc/passwd").is_err());
    }

    #[test]
    fn a_log_cut_back_or_rewritten_below_what_was_read_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("log")).unwrap();
        let seg = dir.path().join("log/00000000000000000000.log");
        std::fs::write(&seg, b"hello world").unwrap();
        let src = DirSource::open(&format!("dir://{}", dir.path().display())).unwrap();
        // Read up to 8; "hello wo" is the tail.
        assert_eq!(
            src.read_log_after(Scn(8), b"hello wo", 100).unwrap(),
            b"rld"
        );
        // Cut back below what was read.
        std::fs::write(&seg, b"hello").unwrap();
        let err = src.read_log_after(Scn(8), b"hello wo", 100).unwrap_err();
        assert!(matches!(err, WorkerError::LogRewritten(_)), "{err}");
        assert!(
            err.to_string().contains("00000000000000000000.log"),
            "{err}"
        );
        assert!(err.to_string().contains("SCN 8"), "{err}");
        // Cut back, then grown again past it with other bytes.
        std::fs::write(&seg, b"hellX world, again").unwrap();
        let err = src.read_log_after(Scn(8), b"hello wo", 100).unwrap_err();
        assert!(matches!(err, WorkerError::LogRewritten(_)), "{err}");
        assert!(err.to_string().contains("[0, 8)"), "{err}");
        // Unchanged bytes with more appended are fine.
        std::fs::write(&seg, b"hello world, again").unwrap();
        assert_eq!(
            src.read_log_after(Scn(8), b"hello wo", 100).unwrap(),
            b"rld, again"
        );
        // The tail's segment rotated away: only the cut-back check applies.
        std::fs::write(dir.path().join("log/00000000000000000018.log"), b"more").unwrap();
        std::fs::remove_file(&seg).unwrap();
        assert_eq!(src.read_log_after(Scn(18), b"again", 100).unwrap(), b"more");
    }

    #[test]
    fn symlinks_leaving_the_root_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("data/link"))
            .unwrap();
        let src = DirSource::open(&format!("dir://{}", dir.path().display())).unwrap();
        let err = src.list_datafiles().unwrap_err();
        assert!(err.to_string().contains("leaving the tenant root"), "{err}");
    }
}
