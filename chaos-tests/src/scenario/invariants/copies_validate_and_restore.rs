//! Invariant `copies_validate_and_restore`; see `docs/CHAOS.md`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use backstop_proto::meta::*;

use super::verdict;
use crate::procs::backstop_bin;
use crate::scenario::report::Verdict;
use crate::scenario::{Run, list, now_ms};
use crate::workload::{self};

/// Where a restore of the invariant goes to.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// `--until-scn`.
    Scn(u64),
    /// `--until-time` (ms since the epoch).
    Time(u64),
    /// Neither: the latest restorable point.
    End,
}

/// Every set marked AVAILABLE on any copy validates, and the `dir://` tenants' sets
/// restore exactly (by the workload generator's digests) from the primary and from
/// the copy destination.
pub(crate) async fn copies_validate_and_restore(r: &Run) -> Verdict {
    let result = async {
        let mut m = r.meta().await?;
        let sets = m.list_backup_sets(list()).await?.into_inner().sets;
        let tenants = m
            .list_tenants(ListTenantsRequest {})
            .await?
            .into_inner()
            .tenants;
        let bin = backstop_bin()?;
        let mut validated = 0;
        for s in sets.iter().filter(|s| s.file_status == "AVAILABLE") {
            let out = std::process::Command::new(&bin)
                .args([
                    "validate",
                    "--dest",
                    // Views and lists never show S3 secrets: use the harness's URI.
                    if s.backup_dest.starts_with("s3://") {
                        &r.copy_dest
                    } else {
                        &s.backup_dest
                    },
                    "--tenant",
                    &s.tenant_id.to_string(),
                    "--backup-set",
                    &s.backup_set_id.to_string(),
                ])
                .output()?;
            if !out.status.success() {
                bail!(
                    "set {} copy {} of tenant {}: {}",
                    s.backup_set_id,
                    s.copy_id,
                    s.tenant_id,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            validated += 1;
        }
        // The continuous copy catches up with what the primary had archived when the
        // check began.
        let rounds = m.list_archive(list()).await?.into_inner().rounds;
        let pieces = m.list_pieces(list()).await?.into_inner().pieces;
        let mut copy_end = std::collections::BTreeMap::new();
        for t in tenants.iter().filter(|t| t.tenant_id != 1) {
            let target = rounds
                .iter()
                .filter(|x| x.tenant_id == t.tenant_id)
                .map(|x| x.checkpoint_scn)
                .max()
                .unwrap_or(0);
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                let copies = m.list_archive(list()).await?.into_inner().copies;
                let at = copies
                    .iter()
                    .filter(|c| c.tenant_id == t.tenant_id)
                    .map(|c| c.checkpoint_scn)
                    .max()
                    .unwrap_or(0);
                if at >= target {
                    copy_end.insert(t.tenant_id, at);
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "the continuous copy of tenant {} stays at {at}, the archive reached {target}",
                        t.tenant_name
                    );
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        // Restores, each checked against the workload generator's digests:
        // - from the primary: the newest 4 available sets at their earliest restorable
        //   SCN, and the newest one also halfway to and at the archive's checkpoint;
        // - from the copy destination: the newest copied set the copied archive
        //   reaches, at its earliest restorable SCN and at everything copied.
        let mut restored = 0;
        let mut points = Vec::new();
        // PostgreSQL tenants restore into a cluster that must start: checked by
        // `postgres_restores_exact`.
        for t in tenants
            .iter()
            .filter(|t| t.tenant_id != 1 && !backstop_common::source::is_postgresql(&t.source))
        {
            // The log a set restores with is its own round's (the last one started
            // before it): NOARCHIVELOG / ARCHIVELOG cycles leave gaps between rounds.
            let archived_for = |set: &BackupSet| {
                rounds
                    .iter()
                    .filter(|x| x.tenant_id == t.tenant_id && x.start_scn <= set.start_replay_scn)
                    .max_by_key(|x| x.round_id)
                    .map_or(0, |x| x.checkpoint_scn)
            };
            let mut newest: Vec<&BackupSet> = sets
                .iter()
                .filter(|s| {
                    s.tenant_id == t.tenant_id && s.copy_id == 0 && s.file_status == "AVAILABLE"
                })
                .collect();
            newest.sort_by_key(|s| std::cmp::Reverse(s.backup_set_id));
            newest.truncate(4);
            for (i, set) in newest.iter().enumerate() {
                let min = set.min_restore_scn;
                let archived = archived_for(set);
                let primary = set.backup_dest.clone();
                let mut targets = vec![Target::Scn(min)];
                if i == 0 && archived > min {
                    targets.extend([Target::Scn(min + (archived - min) / 2), Target::Scn(archived)]);
                }
                // A point in time after the set: the restore says which SCN that was.
                // Checkpoint times are the leader's clock as the worker bounds it from
                // above (up to one long-poll round trip ahead), so "now" is taken no
                // earlier than the newest checkpoint's time, plus a minute: a
                // checkpoint the catalog has not heard of yet (its report lost in a
                // partition) may carry a stamp past both. The restore still reports
                // which SCN the time meant, and is checked exactly there.
                if i == 0 {
                    let newest_checkpoint = pieces
                        .iter()
                        .filter(|p| p.tenant_id == t.tenant_id && p.copy_id == 0)
                        .map(|p| p.checkpoint_time_ms)
                        .max()
                        .unwrap_or(0);
                    targets.push(Target::Time(now_ms().max(newest_checkpoint + 1) + 60_000));
                }
                for target in targets {
                    points.push((t.tenant_name.clone(), primary.clone(), "bk", set.backup_set_id, target));
                }
            }
            let end = copy_end.get(&t.tenant_id).copied().unwrap_or(0);
            if let Some(set) = sets
                .iter()
                .filter(|s| {
                    s.tenant_id == t.tenant_id
                        && s.copy_id == 1
                        && s.file_status == "AVAILABLE"
                        && s.min_restore_scn <= end
                })
                .max_by_key(|s| s.backup_set_id)
            {
                for target in [Target::Scn(set.min_restore_scn), Target::End] {
                    points.push((t.tenant_name.clone(), r.copy_dest.clone(), "bk2", set.backup_set_id, target));
                }
            }
        }
        for (n, (tenant, uri, dest, set_id, target)) in points.into_iter().enumerate() {
            let to = r.dir.join(format!("restore-{n}-{tenant}-{dest}"));
            let mut args = vec![
                "restore".to_string(),
                "--dest".into(),
                uri,
                "--tenant".into(),
                tenant.clone(),
                "--to".into(),
                to.display().to_string(),
                "--backup-set".into(),
                set_id.to_string(),
            ];
            match target {
                Target::Scn(scn) => args.extend(["--until-scn".into(), scn.to_string()]),
                Target::Time(ms) => args.extend(["--until-time".into(), ms.to_string()]),
                Target::End => {}
            }
            args.push("--json".into());
            let at = match target {
                Target::Scn(scn) => format!("SCN {scn}"),
                Target::Time(ms) => format!("time {ms} ms"),
                Target::End => "the end".to_string(),
            };
            let out = std::process::Command::new(&bin).args(&args).output()?;
            if !out.status.success() {
                bail!(
                    "restore of {tenant} set {set_id} from {dest} at {at}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            // What the restore reached, as it reports it; a point in time is checked
            // at that SCN.
            let info: serde_json::Value = serde_json::from_slice(&out.stdout)
                .with_context(|| format!("restore --json of {tenant} set {set_id}"))?;
            let scn = match target {
                Target::Scn(scn) => Some(scn),
                Target::Time(_) => info["until_scn"].as_u64(),
                Target::End => None,
            };
            workload::verify(&to, &r.dir.join(&tenant), scn)
                .with_context(|| format!("verify {tenant} set {set_id} restored from {dest} at {at}"))?;
            let _ = std::fs::remove_dir_all(&to);
            restored += 1;
        }
        Ok(format!(
            "{validated} available sets validate; {restored} restores exact"
        ))
    }
    .await;
    verdict("sets_validate_and_restore", result)
}
