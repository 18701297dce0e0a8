//! Invariant `catalog_equals_storage`; see `docs/CHAOS.md`.

use std::time::Duration;

use anyhow::bail;

use super::storage::{files, manifest_parts, tenant_dirs};
use super::verdict;
use crate::scenario::report::Verdict;
use crate::scenario::{Run, list, wait};

/// Catalog equals storage: no object that no manifest references (after the clean
/// phase and the cleaner ran), at every destination.
pub(crate) async fn catalog_equals_storage(r: &Run) -> Verdict {
    let result = async {
        // The cleaner retries leftovers; give it its turn.
        let m = r.meta().await?;
        // Scrubs of failed-over pieces and sets wait 30 s (`SCRUB_DELAY_MS`).
        let cleaned = wait(Duration::from_secs(120), "leftovers to be cleaned", || {
            let mut m = m.clone();
            async move {
                Ok(m.list_archive(list())
                    .await?
                    .into_inner()
                    .leftovers
                    .is_empty())
            }
        })
        .await;
        if cleaned.is_err() {
            let left = m.clone().list_archive(list()).await?.into_inner().leftovers;
            let jobs = m.clone().list_jobs(list()).await?.into_inner().jobs;
            let cleaners: Vec<String> = jobs
                .iter()
                .filter(|j| j.job_type == "CLEAN")
                .map(|j| format!("{} {} {} {}", j.job_id, j.status, j.result, j.comment))
                .collect();
            bail!(
                "leftovers not cleaned within 120 s: {:?}; cleaner jobs: {cleaners:?}",
                left.iter()
                    .map(|l| format!("{} {} ({})", l.backup_dest, l.dir, l.reason))
                    .collect::<Vec<_>>()
            );
        }
        let mut objects = 0;
        let mut staging = 0;
        let mut stale_journal = 0;
        for dest in ["bk", "bk-moved", "bk2", "pieces"] {
            for t in tenant_dirs(&r.dir.join(dest)) {
                let all = files(&t);
                let mut referenced = std::collections::BTreeSet::new();
                for f in all.iter().filter(|f| f.ends_with("/manifest")) {
                    let dir = f.trim_end_matches("/manifest");
                    referenced.insert(f.clone());
                    referenced.insert(format!("{dir}/.complete"));
                    referenced.insert(format!("{dir}/.frozen"));
                    for (key, part) in manifest_parts(&t, dir)? {
                        referenced.insert(key);
                        for o in part["objects"].as_array().into_iter().flatten() {
                            if let Some(k) = o["key"].as_str() {
                                referenced.insert(k.to_string());
                            }
                        }
                    }
                }
                for f in &all {
                    if !(f.starts_with("data/") || f.starts_with("clog/")) {
                        continue;
                    }
                    objects += 1;
                    if referenced.contains(f)
                        || (f.starts_with("data/") && f.ends_with(".manifest"))
                    {
                        continue;
                    }
                    if f.rsplit('/').next().is_some_and(|n| n.contains('#')) {
                        staging += 1;
                        continue;
                    }
                    // A journal entry no base reads any more (a writer died between
                    // its new base and the removal of the old entries): small, and
                    // deleted when the piece is sealed.
                    if f.contains("/manifest.d/") {
                        stale_journal += 1;
                        continue;
                    }
                    bail!("{dest}/{}: {f} is referenced by no manifest", t.display());
                }
            }
        }
        Ok(format!(
            "{objects} objects, all referenced ({staging} staging files of killed writers, {stale_journal} unread journal entries)"
        ))
    }
    .await;
    verdict("catalog_equals_storage", result)
}
