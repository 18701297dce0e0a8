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

/// A manifest and, for an open piece, the journal entries that continue it
/// (`manifest.d/EPOCH_SEQ` of the attempt the base names, from `journal_seq` on), as
/// `(key, JSON)`. Read after the directory listing they are checked against, and
/// read again if the writer compacted its journal meanwhile, so every object listed
/// before is in what is read.
pub(crate) fn manifest_parts(
    t: &Path,
    dir: &str,
) -> anyhow::Result<Vec<(String, serde_json::Value)>> {
    let key = format!("{dir}/manifest");
    for _ in 0..20 {
        let bytes = std::fs::read(t.join(&key))?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)?;
        let mut parts = vec![(key.clone(), v.clone())];
        if let Some(epoch) = v["journal"].as_str() {
            let from = v["journal_seq"].as_u64().unwrap_or(0);
            let prefix = format!("{epoch}_");
            let mut names: Vec<String> = std::fs::read_dir(t.join(dir).join("manifest.d"))
                .map(|r| {
                    r.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            for name in names {
                let Some(seq) = name
                    .strip_prefix(&prefix)
                    .and_then(|s| s.parse::<u64>().ok())
                else {
                    continue;
                };
                if seq < from {
                    continue;
                }
                let j = format!("{dir}/manifest.d/{name}");
                // Deleted by a compaction since the listing: the base read again
                // below has changed, and the loop reads everything once more.
                if let Ok(data) = std::fs::read(t.join(&j)) {
                    parts.push((j, serde_json::from_slice(&data)?));
                }
            }
        }
        if std::fs::read(t.join(&key))? == bytes {
            return Ok(parts);
        }
    }
    anyhow::bail!("{dir}: the manifest kept changing while it was read")
}
