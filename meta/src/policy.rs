//! What the leader's scheduler starts on its own: the cleaner for leftovers that are
//! due, and the work backup policies ask for (`backstop ctl policy`): full and
//! incremental backups on their intervals and, with secondary backup on, copies of
//! completed sets and the continuous archive copy to `backup_backup_dest`.
//!
//! [`due_commands`] is a pure function of the catalog and the time, so it is tested
//! without a cluster; commands it returns are re-checked when they are applied.

use backstop_common::CopyId;
use backstop_common::TenantId;
use backstop_common::params::Param;

use crate::command::{Command, WorkCommand};
use crate::state::{
    CopyArchiveStatus, CopySelection, JobKind, MetaState, RoundStatus, SetStatus, dest_root,
};

/// Commands due at `now_ms` (wall clock of the leader), at most one per tenant and
/// kind, each with a key the scheduler uses to back off after a refusal.
pub fn due_commands(s: &MetaState, now_ms: u64) -> Vec<(String, Command)> {
    let mut out = Vec::new();
    if !s
        .work
        .jobs
        .values()
        .any(|j| j.status.is_live() && matches!(j.kind, JobKind::Cleaner))
        && s.work.leftovers.values().any(|l| s.leftover_due(l, now_ms))
    {
        out.push((
            "cleaner".to_string(),
            Command::Work(WorkCommand::StartCleaner),
        ));
    }
    if s.work.policies.is_empty() {
        return out;
    }
    let copy_dest = s.param(Param::BackupBackupDest, None).to_string();
    let set_copy_live = s
        .work
        .jobs
        .values()
        .any(|j| j.status.is_live() && matches!(j.kind, JobKind::SetCopy { .. }));
    let mut cluster_copy_wanted = false;
    for t in s.tenants.values().filter(|t| t.tenant_id != TenantId::SYS) {
        let tenant_policy = s.work.policies.get(&t.tenant_id);
        let Some(policy) = tenant_policy.or_else(|| s.work.policies.get(&TenantId::SYS)) else {
            continue;
        };
        let archiving = s
            .current_round(t.tenant_id)
            .is_some_and(|r| r.status == RoundStatus::Doing);
        let backup_live = s.work.jobs.values().any(|j| {
            j.tenant_id == t.tenant_id
                && j.status.is_live()
                && matches!(j.kind, JobKind::Backup { .. })
        });
        let primary_root = dest_root(s.param(Param::BackupDest, Some(t.tenant_id)));
        let done: Vec<_> = s
            .work
            .sets
            .values()
            .filter(|x| {
                x.tenant_id == t.tenant_id
                    && x.copy_id == CopyId(0)
                    && x.usable()
                    && dest_root(&x.dest.uri) == primary_root
            })
            .collect();
        let last_full = done
            .iter()
            .filter(|x| x.backup_type == backstop_common::task::BackupType::Full)
            .map(|x| x.end_time_ms)
            .max();
        let last_any = done.iter().map(|x| x.end_time_ms).max();
        if archiving && !backup_live {
            let full_due = policy.full_interval_ms > 0
                && last_full.is_none_or(|at| now_ms.saturating_sub(at) >= policy.full_interval_ms);
            let inc_due = policy.incremental_interval_ms > 0
                && last_any
                    .is_some_and(|at| now_ms.saturating_sub(at) >= policy.incremental_interval_ms);
            if full_due || inc_due {
                out.push((
                    format!("backup/{}", t.tenant_id),
                    Command::Work(WorkCommand::StartBackup {
                        tenant: t.name.clone(),
                        incremental: !full_due,
                    }),
                ));
            }
        }
        if !policy.secondary || copy_dest.is_empty() {
            continue;
        }
        let copy_root = dest_root(&copy_dest);
        let uncopied = done.iter().any(|x| {
            !s.work.sets.values().any(|c| {
                c.tenant_id == t.tenant_id
                    && c.backup_set_id == x.backup_set_id
                    && c.copy_id > CopyId(0)
                    && c.status == SetStatus::Success
                    && dest_root(&c.dest.uri) == copy_root
            })
        });
        if uncopied && !set_copy_live {
            if tenant_policy.is_some() {
                out.push((
                    format!("setcopy/{}", t.tenant_id),
                    Command::Work(WorkCommand::StartSetCopy {
                        selection: CopySelection {
                            tenants: vec![t.name.clone()],
                            id: None,
                            max_backup_times: None,
                            dest: None,
                        },
                    }),
                ));
            } else {
                cluster_copy_wanted = true;
            }
        }
        let copying = s
            .work
            .archive_copies
            .values()
            .any(|c| c.tenant_id == t.tenant_id && c.status == CopyArchiveStatus::Doing);
        let piece_jobs = s.work.jobs.values().any(|j| {
            j.status.is_live()
                && matches!(&j.kind, JobKind::PieceCopy { dest, .. } if dest_root(dest) == copy_root)
        });
        if archiving && !copying && !piece_jobs {
            out.push((
                format!("archivecopy/{}", t.tenant_id),
                Command::Work(WorkCommand::SetArchiveCopy {
                    enable: true,
                    tenants: vec![t.name.clone()],
                }),
            ));
        }
    }
    if cluster_copy_wanted && !out.iter().any(|(k, _)| k.starts_with("setcopy/")) {
        out.push((
            "setcopy/cluster".to_string(),
            Command::Work(WorkCommand::StartSetCopy {
                selection: CopySelection {
                    tenants: vec![],
                    id: None,
                    max_backup_times: None,
                    dest: None,
                },
            }),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::PolicyRecord;

    #[test]
    fn nothing_is_due_without_policies_or_leftovers() {
        let s = MetaState::default();
        assert!(due_commands(&s, 1_000_000).is_empty());
    }

    #[test]
    fn a_cluster_policy_wants_a_full_backup_only_while_archiving() {
        let mut s = MetaState::default();
        s.work.policies.insert(
            TenantId::SYS,
            PolicyRecord {
                tenant_id: TenantId::SYS,
                full_interval_ms: 60_000,
                incremental_interval_ms: 0,
                secondary: false,
                update_time_ms: 0,
            },
        );
        // No user tenant, no archive: nothing to do.
        assert!(due_commands(&s, 1_000_000).is_empty());
    }
}
