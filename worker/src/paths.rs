//! Where a worker may write on its own host: `file://` destinations and restore
//! targets only under the roots it was started with (`--allow-path`, repeatable,
//! plus its data dir; `standalone` adds its data dir). A task naming any other local
//! path fails before it touches the disk, with [`WorkerError::Invalid`] saying which
//! path and which roots, so a catalog entry (or a caller of the catalog) can never
//! make a worker write outside them.

use std::path::{Component, Path, PathBuf};

use backstop_common::BackupDest;
use backstop_common::task::{TaskSpec, TenantDest};

use crate::error::{Result, WorkerError};

/// The roots, resolved (symlinks followed) when the worker starts.
#[derive(Debug, Clone, Default)]
pub struct AllowedPaths {
    roots: Vec<PathBuf>,
}

impl AllowedPaths {
    /// Resolves each root (a relative one from the current directory; creating
    /// none). Errors: [`WorkerError::Invalid`] for a root with `..`.
    pub fn new(roots: impl IntoIterator<Item = PathBuf>) -> Result<AllowedPaths> {
        let mut resolved = Vec::new();
        for r in roots.into_iter().filter(|r| !r.as_os_str().is_empty()) {
            let p = std::path::absolute(&r)
                .ok()
                .and_then(|a| resolve(&a))
                .ok_or_else(|| {
                    WorkerError::Invalid(format!(
                        "--allow-path {}: give a path without '..'",
                        r.display()
                    ))
                })?;
            if !resolved.contains(&p) {
                resolved.push(p);
            }
        }
        Ok(AllowedPaths { roots: resolved })
    }

    /// The resolved roots.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Whether `path` (absolute) is under one of the roots, after following the
    /// symlinks of its existing part. Errors: [`WorkerError::Invalid`] naming the
    /// path, what it is, and the roots.
    pub fn check(&self, what: &str, path: &str) -> Result<()> {
        let inside = resolve(Path::new(path))
            .is_some_and(|p| self.roots.iter().any(|root| p.starts_with(root)));
        if inside {
            return Ok(());
        }
        let roots: Vec<String> = self.roots.iter().map(|r| r.display().to_string()).collect();
        Err(WorkerError::Invalid(format!(
            "this worker may not write {what} {path}: it is not under the worker's --allow-path roots ({}); start the worker with --allow-path for it",
            roots.join(", ")
        )))
    }

    /// Checks every local path `spec` writes or reads at a destination: `file://`
    /// destinations (`backup_dest`, copies, cleanups) and restore targets.
    pub fn check_spec(&self, spec: &TaskSpec) -> Result<()> {
        let dests: Vec<&TenantDest> = match spec {
            TaskSpec::Archive { dest, .. }
            | TaskSpec::BackupCopy { dest, .. }
            | TaskSpec::BackupFinalize { dest, .. }
            | TaskSpec::ValidateSet { dest, .. }
            | TaskSpec::Clean { dest, .. } => vec![dest],
            TaskSpec::CopySet { src, dst, .. }
            | TaskSpec::CopyPiece { src, dst, .. }
            | TaskSpec::ArchiveCopy { src, dst, .. } => vec![src, dst],
            TaskSpec::Restore {
                dest_uri,
                to,
                options,
                ..
            } => {
                self.check_uri(dest_uri)?;
                self.check("the restore target", to)?;
                for (_, new) in &options.tablespace_map {
                    self.check("the tablespace target", new)?;
                }
                vec![]
            }
            TaskSpec::RestoreV1 { dest_uri, to, .. } => {
                self.check_uri(dest_uri)?;
                self.check("the restore target", to)?;
                vec![]
            }
            TaskSpec::BackupPrepare { .. } => vec![],
        };
        for d in dests {
            self.check_uri(&d.uri)?;
        }
        Ok(())
    }

    fn check_uri(&self, uri: &str) -> Result<()> {
        match BackupDest::parse(uri) {
            Ok(BackupDest::File { path }) => self.check("the destination", &path),
            // S3 and malformed URIs are not local paths (the latter fail when opened).
            _ => Ok(()),
        }
    }
}

/// `path` with the symlinks of its longest existing prefix resolved; `None` if it
/// is relative or has `..` (a lexical `..` past a symlink could leave the root).
fn resolve(path: &Path) -> Option<PathBuf> {
    if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) {
        return None;
    }
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            let mut out = c;
            out.extend(rest.iter().rev());
            return Some(out);
        }
        let name = existing.file_name()?.to_os_string();
        rest.push(name);
        if !existing.pop() {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_under_the_roots_pass_symlinks_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("allowed");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let a = AllowedPaths::new([root.clone()]).unwrap();
        let s = |p: &Path| p.display().to_string();
        a.check("x", &s(&root.join("bk/new/deeper"))).unwrap();
        a.check("x", &s(&root)).unwrap();
        for bad in [
            s(&outside),
            s(&root.join("link/bk")),
            s(&root.join("../outside")),
            format!("{}x", s(&root)),
            "relative/path".to_string(),
        ] {
            let e = a.check("the destination", &bad).unwrap_err().to_string();
            assert!(e.contains("--allow-path") && e.contains(&bad), "{bad}: {e}");
        }
        assert!(AllowedPaths::new([PathBuf::from("/a/../b")]).is_err());
    }
}
