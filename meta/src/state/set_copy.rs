//! Backup-of-backup of data (`ALTER SYSTEM BACKUP BACKUPSET …`, OceanBase 二次备份): one
//! job copies the selected successful sets, one task per set and tenant at a time, to
//! the copy destination (`dest`), where they get their `copy_id`.
//!
//! ```text
//! job DOING: CopySet(set a) --SetCopied--> CopySet(set b) … --last--> FINISHED
//! copy set DOING --SetCopied--> SUCCESS / AVAILABLE
//! ```
//!
//! Refused, with nothing changed: another set copy job running (`Eagain`, OceanBase's
//! message), a tenant-level statement naming more than one tenant (`NotSupported`), a set
//! that is not a successful backup at the current `backup_dest`, one already copied
//! there, one older than a set already copied, or nothing to copy
//! (`BackupBackupCanNotStart`); a set copied as often as `NOT BACKED UP n TIMES` allows
//! (`BackupBackupReachMaxBackupTimes`) or the copy limit (`BackupBackupReachCopyLimit`).

use backstop_common::layout;
use backstop_common::params::Param;
use backstop_common::task::{TaskOutcome, TaskSpec};
use backstop_common::{BackupSetId, CopyId};
use backstop_common::{Code, JobId, TenantId};

use super::catalog::CopySelection;
use super::dest::{dest_root, same_place};
use super::records::{BackupSetRecord, JobKind, JobStatus, SetStatus, TaskRecord};
use super::{MetaState, Outcome, Touched, refuse};
use crate::command::Reply;

impl MetaState {
    /// `ALTER SYSTEM BACKUP BACKUPSET …` (§1.5).
    pub(crate) fn start_set_copy(&mut self, sel: &CopySelection, now: u64) -> Outcome {
        if let Some(j) = self
            .work
            .jobs
            .values()
            .find(|j| j.status.is_live() && matches!(j.kind, JobKind::SetCopy { .. }))
        {
            return Err(refuse(
                Code::Eagain,
                format!(
                    "has doing backup backupset job now, try again later (job {})",
                    j.job_id
                ),
            ));
        }
        if sel.tenants.len() > 1 {
            return Err(refuse(
                Code::NotSupported,
                "a tenant-level BACKUP BACKUPSET names one tenant",
            ));
        }
        let (uri, level) = self.copy_dest(sel)?;
        let root = dest_root(&uri);
        let copy_id = self.copy_id_for(level, &root)?;
        let tenants = self.user_tenants(&sel.tenants)?;
        let mut queue: Vec<(TenantId, BackupSetId)> = Vec::new();
        let mut limited_by_times = false;
        let mut any_source = false;
        for t in tenants {
            let primary_root = dest_root(self.param(Param::BackupDest, Some(t)));
            let source: Vec<&BackupSetRecord> = self
                .work
                .sets
                .values()
                .filter(|s| s.tenant_id == t && s.copy_id == CopyId(0) && s.usable())
                .filter(|s| dest_root(&s.dest.uri) == primary_root)
                .collect();
            any_source |= !source.is_empty();
            let copied = |id: BackupSetId| {
                self.work
                    .sets
                    .get(&(t, id, copy_id))
                    // A copy deleted since counts too: `ALL` skips sets whose copy
                    // was deleted before (§1.5).
                    .is_some_and(|c| c.status == SetStatus::Success)
            };
            let newest_copied = source
                .iter()
                .filter(|s| copied(s.backup_set_id))
                .map(|s| s.backup_set_id)
                .max();
            let mut wanted: Vec<BackupSetId> = match sel.id.map(BackupSetId) {
                Some(id) => {
                    if !source.iter().any(|s| s.backup_set_id == id) {
                        if !sel.tenants.is_empty()
                            || self.work.sets.contains_key(&(t, id, CopyId(0)))
                        {
                            return Err(refuse(
                                Code::BackupBackupCanNotStart,
                                format!(
                                    "backup set {id} of tenant {t} is not a successful backup at the current backup_dest"
                                ),
                            ));
                        }
                        continue;
                    }
                    if copied(id) {
                        return Err(refuse(
                            Code::BackupBackupCanNotStart,
                            format!(
                                "backup set {id} of tenant {t} already has copy {copy_id} at {root}"
                            ),
                        ));
                    }
                    if newest_copied.is_some_and(|n| n > id) {
                        return Err(refuse(
                            Code::BackupBackupCanNotStart,
                            format!(
                                "a larger backup set ({}) of tenant {t} was already copied to {root}",
                                newest_copied.unwrap_or(BackupSetId(0))
                            ),
                        ));
                    }
                    vec![id]
                }
                None => source
                    .iter()
                    .map(|s| s.backup_set_id)
                    .filter(|id| newest_copied.is_none_or(|n| *id > n))
                    .collect(),
            };
            if let Some(n) = sel.max_backup_times {
                let before = wanted.len();
                wanted.retain(|id| {
                    self.work
                        .sets
                        .values()
                        .filter(|c| {
                            c.tenant_id == t
                                && c.backup_set_id == *id
                                && c.copy_id > CopyId(0)
                                && c.status == SetStatus::Success
                        })
                        .count()
                        < n as usize
                });
                limited_by_times |= wanted.len() < before;
            }
            // The incremental chain: every base the selected sets need at the copy.
            let mut i = 0;
            while i < wanted.len() {
                let id = wanted[i];
                // A base whose copy was deleted (or never completed) is copied again:
                // an incremental is only ever copied onto a complete chain.
                let base_complete = |base: BackupSetId| {
                    self.work
                        .sets
                        .get(&(t, base, copy_id))
                        .is_some_and(|c| c.usable())
                };
                if let Some(base) = self
                    .work
                    .sets
                    .get(&(t, id, CopyId(0)))
                    .and_then(|s| s.base_set_id)
                    && !base_complete(base)
                    && !wanted.contains(&base)
                {
                    wanted.push(base);
                }
                i += 1;
            }
            wanted.sort_unstable();
            wanted.dedup();
            queue.extend(wanted.into_iter().map(|id| (t, id)));
        }
        if !any_source {
            return Err(refuse(
                Code::BackupBackupCanNotStart,
                "no successful backup set at the current backup_dest to copy",
            ));
        }
        let tenant_id = match sel.tenants.first() {
            Some(n) => self.tenant_id(n)?,
            None => TenantId::SYS,
        };
        let job_id = self.new_job(
            tenant_id,
            JobKind::SetCopy {
                backup_set_id: BackupSetId(sel.id.unwrap_or(0)),
                all: sel.id.is_none(),
                max_backup_times: sel.max_backup_times,
                copy_id,
                dest: uri,
                queue: queue.clone(),
            },
            now,
        );
        let mut touched = vec![Touched::Job(job_id)];
        if queue.is_empty() {
            let (result, comment) = if limited_by_times {
                (
                    Code::BackupBackupReachMaxBackupTimes,
                    "every selected backup set already has that many copies",
                )
            } else {
                (
                    Code::BackupBackupReachCopyLimit,
                    "every selected backup set already has its copy at this destination",
                )
            };
            if let Some(j) = self.work.jobs.get_mut(&job_id) {
                j.result = Some(result.name().to_string());
                j.comment = comment.to_string();
            }
            touched.extend(self.finalize_job(job_id, now));
            return Ok((Reply::Job(job_id), touched));
        }
        let tenants: Vec<TenantId> = {
            let mut v: Vec<TenantId> = queue.iter().map(|(t, _)| *t).collect();
            v.dedup();
            v
        };
        for t in tenants {
            touched.extend(self.next_set_copy(job_id, t, now));
        }
        // Every queued set may have been held back: then the job ends now.
        touched.extend(self.maybe_job_done(job_id, now));
        Ok((Reply::Job(job_id), touched))
    }

    /// Starts the copy of the tenant's next queued set (ascending, so bases come first).
    /// A set is held back — not copied, with the reason in the job's comment — when its
    /// source is no longer usable, when the cleaner is deleting its directory at the
    /// copy destination, or when it is an incremental whose base has no complete copy
    /// there (a copy without its whole chain would show AVAILABLE and not restore).
    pub(super) fn next_set_copy(
        &mut self,
        job_id: JobId,
        tenant: TenantId,
        now: u64,
    ) -> Vec<Touched> {
        let mut touched = vec![Touched::Job(job_id)];
        loop {
            let Some(job) = self.work.jobs.get(&job_id) else {
                return touched;
            };
            let JobKind::SetCopy {
                copy_id,
                dest,
                queue,
                ..
            } = &job.kind
            else {
                return touched;
            };
            let (copy_id, dest) = (*copy_id, dest.clone());
            let Some(pos) = queue.iter().position(|(t, _)| *t == tenant) else {
                return touched;
            };
            let mut queue = queue.clone();
            let (_, set_id) = queue.remove(pos);
            if let Some(j) = self.work.jobs.get_mut(&job_id)
                && let JobKind::SetCopy { queue: q, .. } = &mut j.kind
            {
                *q = queue;
            }
            let Some(src) = self.work.sets.get(&(tenant, set_id, CopyId(0))).cloned() else {
                continue;
            };
            let dst = self.copy_tenant_dest(&src.dest, &dest);
            let dir = layout::set_dir(set_id, src.backup_type);
            let held_back =
                if !src.usable() {
                    Some(format!(
                        "backup set {set_id} is {} at backup_dest",
                        src.file_status
                    ))
                } else if self.work.leftovers.values().any(|l| {
                    l.claimed_by.is_some() && same_place(&l.dest, &dst) && l.item.dir == dir
                }) {
                    // Copying into it would race the deletion; the next BACKUP BACKUPSET
                    // takes the set.
                    Some(format!(
                        "the cleaner is deleting {dir} at the copy destination"
                    ))
                } else if let Some(base) = src.base_set_id
                    && !self
                        .work
                        .sets
                        .get(&(tenant, base, copy_id))
                        .is_some_and(|c| c.usable())
                {
                    Some(format!(
                        "its base set {base} has no complete copy {copy_id} at this destination"
                    ))
                } else {
                    None
                };
            if let Some(reason) = held_back {
                if let Some(j) = self.work.jobs.get_mut(&job_id) {
                    let note = format!("set {set_id} of tenant {tenant} held back: {reason}");
                    j.comment = if j.comment.is_empty() {
                        note
                    } else {
                        format!("{}; {note}", j.comment)
                    };
                }
                continue;
            }
            let spec = TaskSpec::CopySet {
                src: src.dest.clone(),
                dst: dst.clone(),
                backup_set_id: set_id,
                copy_id,
            };
            let task = self.new_task(job_id, tenant, spec, src.output_bytes, now);
            touched.push(Touched::Task(task));
            self.work.sets.insert(
                (tenant, set_id, copy_id),
                BackupSetRecord {
                    copy_id,
                    job_id,
                    status: SetStatus::Doing,
                    file_status: "COPYING".to_string(),
                    start_time_ms: now,
                    end_time_ms: 0,
                    dest: dst,
                    comment: String::new(),
                    ..src
                },
            );
            touched.push(Touched::Set(tenant, set_id, copy_id));
            return touched;
        }
    }

    /// A set copy task finished its set.
    pub(crate) fn set_copied(
        &mut self,
        job_id: JobId,
        tenant: TenantId,
        backup_set_id: BackupSetId,
        copy_id: CopyId,
        output_bytes: u64,
        now: u64,
    ) -> Vec<Touched> {
        let mut touched = vec![];
        if let Some(s) = self.work.sets.get_mut(&(tenant, backup_set_id, copy_id)) {
            s.status = SetStatus::Success;
            s.file_status = "AVAILABLE".to_string();
            s.end_time_ms = now;
            s.comment = format!("{output_bytes} bytes sent");
            touched.push(Touched::Set(tenant, backup_set_id, copy_id));
        }
        if self
            .work
            .jobs
            .get(&job_id)
            .is_some_and(|j| j.status == JobStatus::Doing)
        {
            touched.extend(self.next_set_copy(job_id, tenant, now));
        }
        touched.extend(self.maybe_job_done(job_id, now));
        touched
    }

    /// A set copy task's report: the copy is recorded `AVAILABLE` (`set_copied`). An
    /// earlier attempt that died copying left staging files (or a zombie's late
    /// writes): they go when the cleaner scrubs the finished copy.
    pub(super) fn set_copy_task_done(
        &mut self,
        task: &TaskRecord,
        outcome: &TaskOutcome,
        now: u64,
    ) -> Option<Vec<Touched>> {
        let (
            TaskOutcome::SetCopied { output_bytes, .. },
            TaskSpec::CopySet {
                backup_set_id,
                copy_id,
                ..
            },
        ) = (outcome, &task.spec)
        else {
            return None;
        };
        let tenant_id = task.tenant_id;
        self.mark_done(task.task_id, now);
        let mut touched = self.set_copied(
            task.job_id,
            tenant_id,
            *backup_set_id,
            *copy_id,
            *output_bytes,
            now,
        );
        if task.attempt > 1
            && let Some(set) = self
                .work
                .sets
                .get(&(tenant_id, *backup_set_id, *copy_id))
                .cloned()
        {
            touched.extend(self.scrub_later(
                set.dest.clone(),
                layout::set_dir(set.backup_set_id, set.backup_type),
                now,
            ));
        }
        Some(touched)
    }
}

#[cfg(test)]
#[path = "set_copy_tests.rs"]
mod tests;
