//! What the storage invariants read at a destination: manifests (with an open piece's
//! journal), tenant directories and file listings.

use std::path::{Path, PathBuf};

/// `(tenant id, key)` of every manifest under `prefix` at a `file://` destination.
pub(crate) fn manifests(root: &Path, prefix: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in tenant_dirs(root) {
        let tenant = t
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for f in files(&t) {
            if f.starts_with(prefix) && f.ends_with("/manifest") {
                out.push((tenant.clone(), f));
            }
        }
    }
    out
}

pub(crate) fn tenant_dirs(root: &Path) -> Vec<PathBuf> {
    let dirs = |p: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(p)
            .map(|r| {
                r.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for cluster in dirs(root) {
        for id in dirs(&cluster) {
            for inc in dirs(&id) {
                out.extend(dirs(&inc));
            }
        }
    }
    out
}

pub(crate) fn files(root: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if let Ok(rel) = p.strip_prefix(base) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

pub(crate) use backstop_testkit::manifest_parts;
