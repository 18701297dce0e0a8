//! Log coverage of a data backup: a set is `AVAILABLE` only when the archive at its own
//! destination holds the log it needs (`docs/OPERATIONS.md`, "When a backup set becomes
//! AVAILABLE").
//!
//! A hot backup copies datafiles fuzzily between `start_replay_scn` and
//! `min_restore_scn`; it restores only together with archived log covering that range,
//! from one round at the set's own destination (same root, same incarnation). So:
//!
//! ```text
//! finalized --round covers [start_replay_scn, min_restore_scn]----------> AVAILABLE
//! finalized --round live, checkpoint below min_restore_scn--------------> waits (job DOING,
//!             comment "waiting for the archive …"); each checkpoint settles it again
//! finalized --no round at this destination started before the backup,
//!             or the round stopped / was interrupted below min_restore_scn--> FAILED,
//!             result OB_LOG_ARCHIVE_INTERRUPTED, the reason in the job and set comments
//! ```
//!
//! While a backup waits, the heartbeat asks the tenant's archive task to checkpoint at
//! once (`task_control` → `checkpoint`), so the wait is one commit, not one
//! `log_archive_checkpoint_interval`.

use backstop_common::task::TaskSpec;
use backstop_common::{BackupSetId, CopyId, RoundId};
use backstop_common::{Scn, TenantId};

use super::dest::dest_root;
use super::records::{BackupSetRecord, JobStatus, RoundStatus, SetStatus, TaskStatus};
use super::{MetaState, Touched};

/// Result of an archive task's attempt that found a set's log coverage broken.
pub const LOG_COVERAGE_BROKEN: &str = "OB_LOG_ARCHIVE_INTERRUPTED";

/// Whether the archive covers a set's range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coverage {
    /// A round at the set's destination holds `[start_replay_scn, min_restore_scn]`.
    Covered,
    /// The round is live and will get there; why the set waits.
    Waiting(String),
    /// It never will; why.
    Broken(String),
}

impl MetaState {
    /// Whether the archive at `set`'s own destination covers its range.
    pub fn coverage(&self, set: &BackupSetRecord) -> Coverage {
        let tenant = set.tenant_id;
        let root = dest_root(&set.dest.uri);
        let same_dest = |r: &&super::records::RoundRecord| {
            dest_root(&r.dest.uri) == root && r.dest.incarnation == set.dest.incarnation
        };
        let rounds: Vec<&super::records::RoundRecord> = self
            .work
            .rounds
            .range((tenant, RoundId::MIN)..=(tenant, RoundId::MAX))
            .map(|(_, r)| r)
            .filter(same_dest)
            .collect();
        let started_before = |r: &super::records::RoundRecord| {
            r.checkpoint_time_ms > 0 && r.start_scn <= set.start_replay_scn
        };
        if rounds
            .iter()
            .any(|r| started_before(r) && r.checkpoint_scn >= set.min_restore_scn)
        {
            return Coverage::Covered;
        }
        let current = self.current_round(tenant);
        match current {
            Some(r)
                if same_dest(&r)
                    && started_before(r)
                    && matches!(r.status, RoundStatus::Doing | RoundStatus::Stopping) =>
            {
                Coverage::Waiting(format!(
                    "waiting for the archive to reach SCN {} (round {} is at {})",
                    set.min_restore_scn, r.round_id, r.checkpoint_scn
                ))
            }
            // A new round that has not committed its first checkpoint yet: it started
            // after the backup, but say so only once it is known.
            Some(r) if same_dest(&r) && r.status == RoundStatus::Beginning => {
                Coverage::Waiting(format!("waiting for archive round {} to start", r.round_id))
            }
            _ => Coverage::Broken(self.coverage_gap(set, &rounds)),
        }
    }

    fn coverage_gap(
        &self,
        set: &BackupSetRecord,
        rounds: &[&super::records::RoundRecord],
    ) -> String {
        let range = format!("[{}, {}]", set.start_replay_scn, set.min_restore_scn);
        let Some(r) = rounds
            .iter()
            .rev()
            .find(|r| r.checkpoint_time_ms > 0 && r.start_scn <= set.start_replay_scn)
        else {
            return match rounds.last() {
                Some(r) => format!(
                    "log {range} of backup set {} was not archived: round {} at its backup_dest started at SCN {}, after the backup began",
                    set.backup_set_id, r.round_id, r.start_scn
                ),
                None => format!(
                    "log {range} of backup set {} was not archived: no archive round at its backup_dest (was backup_dest changed?)",
                    set.backup_set_id
                ),
            };
        };
        format!(
            "log {range} of backup set {} was not archived: round {} is {} at SCN {}{}",
            set.backup_set_id,
            r.round_id,
            r.status.as_str(),
            r.checkpoint_scn,
            if r.comment.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.comment)
            }
        )
    }

    /// Whether a data backup finished copying and waits for its log to be archived.
    pub(crate) fn awaits_coverage(&self, set: &BackupSetRecord) -> bool {
        set.copy_id == CopyId(0)
            && set.status == SetStatus::Doing
            && self.work.tasks.values().any(|t| {
                t.job_id == set.job_id
                    && t.status == TaskStatus::Done
                    && matches!(t.spec, TaskSpec::BackupFinalize { .. })
            })
    }

    /// Whether a backup of `tenant` waits for the archive: its archive task is asked
    /// to checkpoint at once.
    pub(crate) fn backup_waits_for_log(&self, tenant: TenantId) -> Option<Scn> {
        self.work
            .sets
            .values()
            .filter(|s| s.tenant_id == tenant && s.status == SetStatus::Doing)
            .filter(|s| self.awaits_coverage(s))
            .map(|s| s.min_restore_scn)
            .max()
    }

    /// Settles every backup of `tenant` that waits for log.
    pub(crate) fn settle_waiting_backups(&mut self, tenant: TenantId, now: u64) -> Vec<Touched> {
        let waiting: Vec<BackupSetId> = self
            .work
            .sets
            .values()
            .filter(|s| s.tenant_id == tenant && s.status == SetStatus::Doing)
            .filter(|s| self.awaits_coverage(s))
            .map(|s| s.backup_set_id)
            .collect();
        let mut touched = Vec::new();
        for id in waiting {
            touched.extend(self.settle_backup(tenant, id, now));
        }
        touched
    }

    /// A finalized set: AVAILABLE if its log is archived, a comment if it waits, a
    /// failed job if its log never will be.
    pub(crate) fn settle_backup(
        &mut self,
        tenant: TenantId,
        backup_set_id: BackupSetId,
        now: u64,
    ) -> Vec<Touched> {
        let key = (tenant, backup_set_id, CopyId(0));
        let Some(set) = self.work.sets.get(&key).cloned() else {
            return vec![];
        };
        if set.status != SetStatus::Doing {
            return vec![];
        }
        let job_id = set.job_id;
        let job_status = self.work.jobs.get(&job_id).map(|j| j.status);
        let mut touched = vec![Touched::Set(tenant, backup_set_id, CopyId(0))];
        match self.coverage(&set) {
            Coverage::Covered => {
                if let Some(s) = self.work.sets.get_mut(&key) {
                    s.status = SetStatus::Success;
                    s.file_status = super::records::FILE_AVAILABLE.to_string();
                    s.end_time_ms = now;
                }
                if matches!(job_status, Some(JobStatus::Doing | JobStatus::Suspended)) {
                    if let Some(j) = self.work.jobs.get_mut(&job_id) {
                        j.comment.clear();
                    }
                    touched.push(self.finish_job(job_id, now));
                }
                let failed_over = self
                    .work
                    .tasks
                    .values()
                    .any(|t| t.job_id == job_id && t.attempt > 1);
                if failed_over {
                    touched.extend(self.scrub_later(
                        set.dest.clone(),
                        backstop_common::layout::set_dir(set.backup_set_id, set.backup_type),
                        now,
                    ));
                }
            }
            Coverage::Waiting(reason) => {
                if let Some(j) = self.work.jobs.get_mut(&job_id)
                    && j.comment != reason
                {
                    j.comment = reason;
                    touched.push(Touched::Job(job_id));
                }
            }
            Coverage::Broken(reason) => {
                if let Some(s) = self.work.sets.get_mut(&key) {
                    s.comment = reason.clone();
                }
                touched.extend(self.end_job_early(job_id, LOG_COVERAGE_BROKEN, &reason, now));
            }
        }
        touched
    }
}

#[cfg(test)]
#[path = "coverage_tests.rs"]
mod tests;
