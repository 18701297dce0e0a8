//! A PostgreSQL data directory as a base backup reads it: what is copied
//! (PostgreSQL's documented exclusion list, `backstop_pg::layout`), tablespaces
//! through their `pg_tblspc/OID` links, and files opened for the copy.

use std::path::Path;

use backstop_common::task::FileEntry;
use backstop_pg::layout as pglayout;

use crate::error::{Result, WorkerError};

/// Every file a base backup copies from the data directory `root`, sorted, with
/// relative `/` paths, and every directory it recreates. A tablespace's link
/// (`pg_tblspc/OID`) is followed: its files are listed as `pg_tblspc/OID/…`, which
/// [`open_file`] reads through the link, and a restore writes through the link it
/// recreates (`crate::pg_restore`). A linked `pg_wal/` is kept as a directory (its
/// contents are left out anyway). Any other symlink is refused.
///
/// Errors: `Source` naming the path.
pub fn walk_data_directory(root: &Path) -> Result<(Vec<FileEntry>, Vec<String>)> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    let mut links = Vec::new();
    walk_tree(root, "", &mut files, &mut dirs, &mut links)?;
    for oid in links {
        let prefix = format!("pg_tblspc/{oid}");
        walk_tree(
            &root.join(&prefix),
            &prefix,
            &mut files,
            &mut dirs,
            &mut Vec::new(),
        )?;
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((files, dirs))
}

/// One directory tree of [`walk_data_directory`]: `dir` on disk, listed as `prefix/…`
/// (`""` for the data directory itself). Tablespace links found go to `links` (their
/// OIDs); inside a tablespace (`prefix` not empty) every symlink is refused.
fn walk_tree(
    dir: &Path,
    prefix: &str,
    files: &mut Vec<FileEntry>,
    dirs: &mut Vec<String>,
    links: &mut Vec<String>,
) -> Result<()> {
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
    {
        let entry = match entry {
            Ok(e) => e,
            // Removed while listed (temporary files, dropped relations): WAL replay
            // recreates what matters.
            Err(e) if e.io_error().map(|e| e.kind()) == Some(std::io::ErrorKind::NotFound) => {
                continue;
            }
            Err(e) => return Err(WorkerError::Source(format!("walk {}: {e}", dir.display()))),
        };
        let mut rel = entry
            .path()
            .strip_prefix(dir)
            .map_err(|e| WorkerError::Source(e.to_string()))?
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        if !prefix.is_empty() {
            rel = format!("{prefix}/{rel}");
        }
        let kind = entry.file_type();
        if kind.is_symlink() {
            if prefix.is_empty() {
                if let Some(oid) = pglayout::tablespace_link(&rel) {
                    links.push(oid.to_string());
                    continue;
                }
                if rel == "pg_wal" {
                    dirs.extend(["pg_wal".to_string(), "pg_wal/archive_status".to_string()]);
                    continue;
                }
            }
            return Err(WorkerError::Source(format!(
                "{} is a symlink: only tablespace links (pg_tblspc/OID) and a linked pg_wal are followed",
                entry.path().display()
            )));
        }
        if kind.is_dir() {
            if pglayout::keeps_dir(&rel) {
                dirs.push(rel);
            }
            continue;
        }
        if !kind.is_file() || !pglayout::copies_file(&rel) {
            continue;
        }
        let size = match entry.metadata() {
            Ok(m) => m.len(),
            Err(e) if e.io_error().map(|e| e.kind()) == Some(std::io::ErrorKind::NotFound) => {
                continue;
            }
            Err(e) => {
                return Err(WorkerError::Source(format!(
                    "{}: {e}",
                    entry.path().display()
                )));
            }
        };
        files.push(FileEntry { path: rel, size });
    }
    Ok(())
}

/// The files of [`walk_data_directory`].
pub fn list_data_directory(root: &Path) -> Result<Vec<FileEntry>> {
    Ok(walk_data_directory(root)?.0)
}

/// Opens a data-directory file for the copy; `None` when it vanished since it was
/// listed (a dropped relation, a removed temporary file: the WAL replays that).
///
/// Errors: `Source` for a path leaving the data directory or another I/O error.
pub fn open_file(pgdata: &Path, rel: &str) -> Result<Option<std::fs::File>> {
    if !backstop_common::layout::is_inside(rel) {
        return Err(WorkerError::Source(format!(
            "file path '{rel}' leaves the data directory"
        )));
    }
    let path = pgdata.join(rel);
    match std::fs::File::open(&path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(WorkerError::Source(format!("open {}: {e}", path.display()))),
    }
}
