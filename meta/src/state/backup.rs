//! Data backups (`ALTER SYSTEM BACKUP [INCREMENTAL] DATABASE`): a prepare task lists the
//! source, its files are split into at most `MAX_PARTS` copy tasks of about
//! `PART_TARGET_BYTES` each, and a finalize task writes the manifest.
//!
//! ```text
//! job DOING: BackupPrepare --Prepared--> BackupCopy × n --last Copied--> BackupFinalize
//! set DOING --Finalized--> SUCCESS, AVAILABLE once the archive covers
//!                          [start_replay_scn, min_restore_scn] (`coverage`)
//! BackupFinalize --Restart--> BackupPrepare (a new generation of the same set)
//! ```
//!
//! A finalize that finds the hot backup gone on the server (a PostgreSQL worker that
//! restarted after the prepare: the `pg_backup_start` connection died with it)
//! reports `Restart`: the set starts again from a new prepare task. The new
//! generation's parts are numbered after the old ones, so their objects never share a
//! key, and its finalize removes the old generation's objects as unreferenced. After
//! `MAX_ATTEMPTS` prepares the job fails with the reason.
//!
//! Refused, with nothing changed: no archive round `DOING` (`BackupCanNotStart`, with
//! OceanBase's message), a data backup already running for the tenant
//! (`BackupInProgress`), and an incremental with no successful set at this `backup_dest`
//! to base it on (`BackupCanNotStart`).

use backstop_common::params::Param;
use backstop_common::task::{BackupType, FileEntry, TaskOutcome, TaskSpec};
use backstop_common::{BackupSetId, Code, CopyId, Scn, TaskId, TenantId};

use super::records::{
    BackupSetRecord, JobKind, JobStatus, MAX_ATTEMPTS, RoundStatus, SetStatus, TaskRecord,
    TaskStatus,
};
use super::{MetaState, Outcome, Touched, refuse};
use crate::command::Reply;

/// Target bytes per backup copy task.
pub const PART_TARGET_BYTES: u64 = 256 * 1024 * 1024;

/// Most parts one backup set is split into.
pub const MAX_PARTS: usize = 16;

impl MetaState {
    pub(super) fn start_backup(&mut self, tenant: &str, incremental: bool, now: u64) -> Outcome {
        let tenant_id = self.tenant_id(tenant)?;
        let status = self.current_round(tenant_id).map(|r| r.status);
        if status != Some(RoundStatus::Doing) {
            return Err(refuse(
                Code::BackupCanNotStart,
                format!(
                    "log archive is not doing. log archive status : {}.",
                    status.map_or("STOP", |s| s.as_str())
                ),
            ));
        }
        let running = self.work.jobs.values().any(|j| {
            j.tenant_id == tenant_id
                && j.status.is_live()
                && matches!(j.kind, JobKind::Backup { .. })
        });
        if running {
            return Err(refuse(
                Code::BackupInProgress,
                format!("a data backup is already running for tenant {tenant}"),
            ));
        }
        let (dest, _) = self.tenant_dest(tenant_id)?;
        let root = backstop_common::BackupDest::parse(&dest.uri)
            .map(|d| d.root_path())
            .unwrap_or_default();
        let base = self
            .work
            .sets
            .values()
            .filter(|s| s.tenant_id == tenant_id && s.copy_id == CopyId(0) && s.usable())
            // An incremental never reaches back across a RESETLOGS: its base is in the
            // tenant's current incarnation.
            .filter(|s| s.dest.incarnation == dest.incarnation)
            .filter(|s| {
                backstop_common::BackupDest::parse(&s.dest.uri)
                    .map(|d| d.root_path())
                    .unwrap_or_default()
                    == root
            })
            .max_by_key(|s| s.backup_set_id)
            .map(|s| s.backup_set_id);
        let (backup_type, base_set_id) = match (incremental, base) {
            (false, _) => (BackupType::Full, None),
            (true, Some(b)) => (BackupType::Incremental, Some(b)),
            (true, None) => {
                return Err(refuse(
                    Code::BackupCanNotStart,
                    format!(
                        "tenant '{tenant}' has no successful backup at this backup_dest in incarnation {} to base an incremental on; take a full backup first",
                        dest.incarnation
                    ),
                ));
            }
        };
        let backup_set_id = self
            .work
            .sets
            .keys()
            .map(|(_, id, _)| *id)
            .max()
            .unwrap_or(BackupSetId(0))
            .next();
        let job_id = self.new_job(
            tenant_id,
            JobKind::Backup {
                backup_set_id,
                backup_type,
            },
            now,
        );
        let t = self.tenants.get(&tenant_id).cloned();
        let source = t.as_ref().map(|t| t.source.clone()).unwrap_or_default();
        let begin_hook = t.as_ref().and_then(|t| t.begin_backup_hook.clone());
        let task_id = self.new_task(
            job_id,
            tenant_id,
            TaskSpec::BackupPrepare { source, begin_hook },
            0,
            now,
        );
        self.work.sets.insert(
            (tenant_id, backup_set_id, CopyId(0)),
            BackupSetRecord {
                tenant_id,
                backup_set_id,
                copy_id: CopyId(0),
                backup_type,
                base_set_id,
                job_id,
                status: SetStatus::Doing,
                file_status: "COPYING".to_string(),
                start_replay_scn: Scn(0),
                min_restore_scn: Scn(0),
                input_bytes: 0,
                output_bytes: 0,
                file_count: 0,
                parts: 0,
                start_time_ms: now,
                end_time_ms: 0,
                dest,
                manifest_checksum: String::new(),
                comment: String::new(),
            },
        );
        Ok((
            Reply::Job(job_id),
            vec![
                Touched::Job(job_id),
                Touched::Task(task_id),
                Touched::Set(tenant_id, backup_set_id, CopyId(0)),
            ],
        ))
    }

    /// After prepare: split the files into parts, one copy task each.
    pub(super) fn plan_copy(
        &mut self,
        prepare: &TaskRecord,
        source: &str,
        start_replay_scn: Scn,
        files: &[FileEntry],
        now: u64,
    ) -> Vec<Touched> {
        let mut touched = Vec::new();
        let Some(JobKind::Backup {
            backup_set_id,
            backup_type,
        }) = self.work.jobs.get(&prepare.job_id).map(|j| j.kind.clone())
        else {
            return touched;
        };
        let tenant_id = prepare.tenant_id;
        let Some(set) = self.primary_set(tenant_id, backup_set_id) else {
            return touched;
        };
        // A restarted backup's parts come after the earlier generations'.
        let first_part = self
            .work
            .tasks
            .values()
            .filter(|t| t.job_id == prepare.job_id && matches!(t.spec, TaskSpec::BackupCopy { .. }))
            .count();
        let total: u64 = files.iter().map(|f| f.size).sum();
        let compression_level = backstop_common::params::parse_compression(
            self.param(Param::BackupCompression, Some(tenant_id)),
        )
        .unwrap_or(1);
        let parts = ((total / PART_TARGET_BYTES) as usize + 1)
            .clamp(1, MAX_PARTS)
            .min(files.len().max(1));
        // Greedy: largest file to the lightest part.
        let mut sorted: Vec<&FileEntry> = files.iter().collect();
        sorted.sort_by(|a, b| b.size.cmp(&a.size).then(a.path.cmp(&b.path)));
        let mut buckets: Vec<(u64, Vec<FileEntry>)> = vec![(0, Vec::new()); parts];
        for f in sorted {
            if let Some(b) = buckets.iter_mut().min_by_key(|b| b.0) {
                b.0 += f.size;
                b.1.push(f.clone());
            }
        }
        for (part, (bytes, mut part_files)) in buckets.into_iter().enumerate() {
            part_files.sort_by(|a, b| a.path.cmp(&b.path));
            let spec = TaskSpec::BackupCopy {
                source: source.to_string(),
                dest: set.dest.clone(),
                backup_set_id,
                backup_type,
                base_set_id: set.base_set_id,
                part: (first_part + part) as u32,
                files: part_files,
                compression_level,
            };
            let id = self.new_task(prepare.job_id, tenant_id, spec, bytes, now);
            touched.push(Touched::Task(id));
        }
        if let Some(s) = self
            .work
            .sets
            .get_mut(&(tenant_id, backup_set_id, CopyId(0)))
        {
            s.start_replay_scn = start_replay_scn;
            s.parts = parts as u32;
            s.file_count = files.len() as u64;
            touched.push(Touched::Set(tenant_id, backup_set_id, CopyId(0)));
        }
        touched
    }

    /// After the last copy part: the finalize task.
    pub(super) fn maybe_finalize(
        &mut self,
        copy: &TaskRecord,
        backup_set_id: BackupSetId,
        now: u64,
    ) -> Vec<Touched> {
        // Only the current generation: the copy tasks after the job's last prepare.
        let generation = self.last_prepare(copy.job_id);
        let current = |t: &&TaskRecord| t.job_id == copy.job_id && t.task_id > generation;
        let all_done = self
            .work
            .tasks
            .values()
            .filter(current)
            .filter(|t| matches!(t.spec, TaskSpec::BackupCopy { .. }))
            .all(|t| t.status == TaskStatus::Done);
        if !all_done {
            return Vec::new();
        }
        let tenant_id = copy.tenant_id;
        let Some(set) = self.primary_set(tenant_id, backup_set_id) else {
            return Vec::new();
        };
        let t = self.tenants.get(&tenant_id).cloned();
        let mut parts: Vec<(u32, u32)> = self
            .work
            .tasks
            .values()
            .filter(current)
            .filter_map(|t| match t.spec {
                TaskSpec::BackupCopy { part, .. } => Some((part, t.attempt)),
                _ => None,
            })
            .collect();
        parts.sort();
        let spec = TaskSpec::BackupFinalize {
            source: t.as_ref().map(|t| t.source.clone()).unwrap_or_default(),
            dest: set.dest.clone(),
            backup_set_id,
            backup_type: set.backup_type,
            base_set_id: set.base_set_id,
            parts,
            start_replay_scn: set.start_replay_scn,
            end_hook: t.and_then(|t| t.end_backup_hook),
        };
        let id = self.new_task(copy.job_id, tenant_id, spec, 0, now);
        vec![Touched::Task(id)]
    }

    /// The original (copy 0) of a backup set, as it is now.
    fn primary_set(
        &self,
        tenant_id: TenantId,
        backup_set_id: BackupSetId,
    ) -> Option<BackupSetRecord> {
        self.work
            .sets
            .get(&(tenant_id, backup_set_id, CopyId(0)))
            .cloned()
    }

    /// The task id of the job's latest prepare (0 when none).
    fn last_prepare(&self, job_id: backstop_common::JobId) -> TaskId {
        self.work
            .tasks
            .values()
            .filter(|t| t.job_id == job_id && matches!(t.spec, TaskSpec::BackupPrepare { .. }))
            .map(|t| t.task_id)
            .max()
            .unwrap_or(TaskId(0))
    }

    /// `TaskOutcome::Restart` from a data backup's copy or finalize task: the hot
    /// backup is gone, so the set starts again from a new prepare task (module docs).
    /// A job that is ending or suspended handles it as a retryable failure; after
    /// `MAX_ATTEMPTS` prepares the job fails. `None` for any other task.
    pub(super) fn restart_backup(
        &mut self,
        task: &TaskRecord,
        reason: &str,
        now: u64,
    ) -> Option<Result<Vec<Touched>, (Code, String)>> {
        if !matches!(
            task.spec,
            TaskSpec::BackupCopy { .. } | TaskSpec::BackupFinalize { .. }
        ) {
            return None;
        }
        let job = self.work.jobs.get(&task.job_id)?.clone();
        let JobKind::Backup { backup_set_id, .. } = job.kind else {
            return None;
        };
        let prepares = self
            .work
            .tasks
            .values()
            .filter(|t| t.job_id == job.job_id && matches!(t.spec, TaskSpec::BackupPrepare { .. }))
            .count();
        if job.status != JobStatus::Doing {
            return Some(self.task_failed(task.task_id, task.attempt, reason, true, now));
        }
        if prepares >= MAX_ATTEMPTS as usize {
            let why = format!("{reason} (the backup started again {prepares} times)");
            return Some(self.task_failed(task.task_id, task.attempt, &why, false, now));
        }
        if let Some(t) = self.work.tasks.get_mut(&task.task_id) {
            t.status = TaskStatus::Failed;
            t.last_error = reason.to_string();
            t.worker_id = None;
            t.update_time_ms = now;
        }
        let tenant = self.tenants.get(&task.tenant_id).cloned();
        let spec = TaskSpec::BackupPrepare {
            source: tenant
                .as_ref()
                .map(|t| t.source.clone())
                .unwrap_or_default(),
            begin_hook: tenant.and_then(|t| t.begin_backup_hook),
        };
        let prepare = self.new_task(job.job_id, task.tenant_id, spec, 0, now);
        let mut touched = vec![Touched::Task(task.task_id), Touched::Task(prepare)];
        let key = (task.tenant_id, backup_set_id, CopyId(0));
        if let Some(set) = self.work.sets.get_mut(&key) {
            set.comment = format!("started again from prepare: {reason}");
            touched.push(Touched::Set(key.0, key.1, key.2));
        }
        Some(Ok(touched))
    }

    /// A data backup task's report: `Prepared` plans the copy tasks, each `Copied`
    /// adds its bytes (and the last one starts the finalize), `Finalized` records the
    /// set and settles it (`AVAILABLE` once the archive covers it; see `coverage`).
    /// While the job is ending (`ending`), no new task is planned.
    pub(super) fn backup_task_done(
        &mut self,
        task: &TaskRecord,
        outcome: &TaskOutcome,
        ending: bool,
        now: u64,
    ) -> Option<Vec<Touched>> {
        let tenant_id = task.tenant_id;
        let mut touched = Vec::new();
        match (outcome, &task.spec) {
            (
                TaskOutcome::Prepared {
                    start_replay_scn,
                    files,
                },
                TaskSpec::BackupPrepare { source, .. },
            ) => {
                self.mark_done(task.task_id, now);
                if !ending {
                    touched.extend(self.plan_copy(task, source, *start_replay_scn, files, now));
                }
            }
            (
                TaskOutcome::Copied {
                    input_bytes,
                    output_bytes,
                },
                TaskSpec::BackupCopy { backup_set_id, .. },
            ) => {
                self.mark_done(task.task_id, now);
                if let Some(set) = self
                    .work
                    .sets
                    .get_mut(&(tenant_id, *backup_set_id, CopyId(0)))
                {
                    set.input_bytes += input_bytes;
                    set.output_bytes += output_bytes;
                    touched.push(Touched::Set(tenant_id, *backup_set_id, CopyId(0)));
                }
                if !ending {
                    touched.extend(self.maybe_finalize(task, *backup_set_id, now));
                }
            }
            (
                TaskOutcome::Finalized {
                    min_restore_scn,
                    input_bytes,
                    output_bytes,
                    file_count,
                    manifest_checksum,
                },
                TaskSpec::BackupFinalize { backup_set_id, .. },
            ) => {
                self.mark_done(task.task_id, now);
                if let Some(set) = self
                    .work
                    .sets
                    .get_mut(&(tenant_id, *backup_set_id, CopyId(0)))
                {
                    set.min_restore_scn = *min_restore_scn;
                    set.input_bytes = *input_bytes;
                    set.output_bytes = *output_bytes;
                    set.file_count = *file_count;
                    set.manifest_checksum = manifest_checksum.clone();
                    touched.push(Touched::Set(tenant_id, *backup_set_id, CopyId(0)));
                }
                // AVAILABLE only once the archive covers the set's range (now, or at a
                // later checkpoint; see `coverage`).
                touched.extend(self.settle_backup(tenant_id, *backup_set_id, now));
            }
            _ => return None,
        }
        Some(touched)
    }
}

#[cfg(test)]
#[path = "backup_tests.rs"]
mod tests;
