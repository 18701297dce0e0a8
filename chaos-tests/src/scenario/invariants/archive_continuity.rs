//! Invariant `archive_continuity`; see `docs/CHAOS.md`.

use anyhow::bail;
use backstop_proto::meta::*;

use super::storage::manifests;
use super::verdict;
use crate::procs::backstop_bin;
use crate::scenario::report::Verdict;
use crate::scenario::{Run, list};

/// Each round's pieces cover a contiguous SCN range; a gap is recorded as
/// `INTERRUPTED`, never silent.
pub(crate) async fn archive_continuity(r: &Run) -> Verdict {
    let result = async {
        let mut m = r.meta().await?;
        let pieces = m.list_pieces(list()).await?.into_inner().pieces;
        let rounds = m.list_archive(list()).await?.into_inner().rounds;
        let mut checked = 0;
        for round in &rounds {
            let mut ps: Vec<&Piece> = pieces
                .iter()
                .filter(|p| {
                    p.tenant_id == round.tenant_id && p.round_id == round.round_id && p.copy_id == 0
                })
                .collect();
            ps.sort_by_key(|p| p.backup_piece_id);
            for w in ps.windows(2) {
                let end = w[0].max_scn.unwrap_or(w[0].checkpoint_scn);
                if w[1].start_scn != end && round.status != "INTERRUPTED" {
                    bail!(
                        "tenant {} round {}: piece {} ends at {end}, piece {} starts at {}",
                        round.tenant_id,
                        round.round_id,
                        w[0].backup_piece_id,
                        w[1].backup_piece_id,
                        w[1].start_scn
                    );
                }
            }
            checked += ps.len();
        }
        // Every piece at every destination validates (contiguous objects, checksums).
        let bin = backstop_bin()?;
        let mut validated = 0;
        for dest in ["bk", "bk-moved", "bk2", "pieces"] {
            let root = r.dir.join(dest);
            for (tenant, key) in manifests(&root, "clog/") {
                let Some(dir) = key.strip_suffix("/manifest") else {
                    continue;
                };
                let Some(rest) = dir.strip_prefix("clog/round_") else {
                    continue;
                };
                let Some((round, piece)) = rest.split_once("/piece_") else {
                    continue;
                };
                let out = std::process::Command::new(&bin)
                    .args([
                        "validate",
                        "--dest",
                        &format!("file://{}", root.display()),
                        "--tenant",
                        &tenant,
                        "--piece",
                        &format!("{round}/{piece}"),
                    ])
                    .output()?;
                if !out.status.success() {
                    bail!(
                        "piece {round}/{piece} of tenant {tenant} at {dest}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                validated += 1;
            }
        }
        Ok(format!(
            "{} rounds, {checked} pieces contiguous; {validated} piece manifests validate",
            rounds.len()
        ))
    }
    .await;
    verdict("archive_continuity", result)
}
