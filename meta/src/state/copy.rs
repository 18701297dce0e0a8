//! Backup-of-backup (OceanBase 二次备份) and the ways jobs end early: backupset and
//! backuppiece copy jobs, the continuous archive copy, `CANCEL …`, `SUSPEND` /
//! `RESUME BACKUP`, `CANCEL ALL BACKUP FORCE`, the clean phase and the cleaner.
//!
//! How a job ends early (`spec/oceanbase-reference.md` §3.3–§3.4, `decisions.md` 5–8):
//!
//! ```text
//! live job --CANCEL / failure--> CANCEL: pending tasks cancelled; running attempts are
//!                                told to stop and report (or their lease runs out)
//! CANCEL --no running task-----> CLEAN: one clean task per destination deletes what
//!                                the job left (partial sets and pieces, index first)
//! CLEAN  --clean reported------> final (FINISH with result OB_CANCELED, or FAILED);
//!                                anything that could not be deleted becomes a
//!                                leftover for the cleaner
//! ```
//!
//! A copy that completed before the cancel took effect stays `AVAILABLE`: the race
//! between a cancel and a finishing task always ends with a consistent catalog.

use backstop_common::layout;
use backstop_common::params::Param;
use backstop_common::task::{CleanItem, CopyProgress, TaskSpec, TenantDest};
use backstop_common::{BackupDest, Code, JobId, Scn, TenantId};
use serde::{Deserialize, Serialize};

use super::work::{
    BackupSetRecord, JobKind, JobStatus, PieceRecord, PieceStatus, SetStatus, TaskStatus,
};
use super::{MetaState, Outcome, Touched};
use crate::command::{CancelTarget, Reply};

/// Size of one `copy_id` level (OceanBase `ObBackupBackupCopyIdLevel`).
const COPY_LEVEL_SIZE: u64 = 10_000;

/// How long after a failed-over piece or set is finished its directory is scrubbed
/// (ms): longer than any task lease, so every fenced attempt has stopped writing.
pub const SCRUB_DELAY_MS: u64 = 30_000;

/// Status of the continuous archive copy (OceanBase
/// `__all_backup_backup_log_archive_status_v2.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CopyArchiveStatus {
    /// Following the primary archive.
    Doing,
    /// `STOP BACKUP ARCHIVELOG`: halted at a consistent checkpoint.
    Paused,
}

impl CopyArchiveStatus {
    /// View spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CopyArchiveStatus::Doing => "DOING",
            CopyArchiveStatus::Paused => "PAUSED",
        }
    }
}

/// A tenant's continuous archive copy to one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveCopyRecord {
    /// Tenant.
    pub tenant_id: TenantId,
    /// `copy_id` (1–10000: the `backup_backup_dest` parameter).
    pub copy_id: u64,
    /// Status.
    pub status: CopyArchiveStatus,
    /// Job of the current (or last) follower task.
    pub job_id: JobId,
    /// Round of the newest copied checkpoint.
    pub round_id: u64,
    /// First SCN copied.
    pub start_scn: Scn,
    /// The copy holds everything of `round_id` below this SCN.
    pub checkpoint_scn: Scn,
    /// ms.
    pub start_time_ms: u64,
    /// ms of the last copy checkpoint.
    pub checkpoint_time_ms: u64,
    /// Bytes copied.
    pub output_bytes: u64,
    /// Primary checkpoint → copy checkpoint, ms, at the last checkpoint.
    pub lag_ms: u64,
    /// The copy destination (with secrets).
    pub dest: TenantDest,
    /// Why it is not advancing, if it is not.
    pub comment: String,
}

/// Something a job could not delete; the cleaner retries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftoverRecord {
    /// Id.
    pub id: u64,
    /// Destination.
    pub dest: TenantDest,
    /// What to delete.
    pub item: CleanItem,
    /// Not before this time (ms): a fenced writer may still hold a lease until then.
    pub not_before_ms: u64,
    /// Why it was left.
    pub reason: String,
    /// Cleaner job working on it, if any.
    pub claimed_by: Option<JobId>,
}

/// A backup policy (`backstop ctl policy`): schedules and secondary backup, for one
/// tenant or (tenant id 1) the whole cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// Tenant, or `sys` for the cluster.
    pub tenant_id: TenantId,
    /// A full backup at least this often (ms; 0 = never scheduled).
    pub full_interval_ms: u64,
    /// An incremental backup at least this often (ms; 0 = never scheduled).
    pub incremental_interval_ms: u64,
    /// Secondary backup (backup-of-backup) on: completed sets are copied to
    /// `backup_backup_dest` and the archive is copied continuously.
    pub secondary: bool,
    /// ms.
    pub update_time_ms: u64,
}

/// Which statement chose the copy destination (OceanBase copy id levels, §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CopyLevel {
    ClusterParam,
    ClusterExplicit,
    TenantParam,
    TenantExplicit,
}

impl CopyLevel {
    fn range(self) -> (u64, u64) {
        match self {
            CopyLevel::ClusterParam => (1, COPY_LEVEL_SIZE),
            CopyLevel::ClusterExplicit => (COPY_LEVEL_SIZE + 1, 2 * COPY_LEVEL_SIZE),
            CopyLevel::TenantParam => (2 * COPY_LEVEL_SIZE + 1, 3 * COPY_LEVEL_SIZE),
            CopyLevel::TenantExplicit => (3 * COPY_LEVEL_SIZE + 1, 5 * COPY_LEVEL_SIZE),
        }
    }
}

fn refuse(code: Code, message: impl Into<String>) -> (Code, String) {
    (code, message.into())
}

/// Root path of a destination URI (no secrets), for comparisons.
pub fn dest_root(uri: &str) -> String {
    BackupDest::parse(uri)
        .map(|d| d.root_path())
        .unwrap_or_default()
}

/// Whether two tenant destinations are the same place: the same tenant directory
/// under the same root path. Credentials are never compared, so a rotated access key
/// still names the same place (a guard that compared full URIs stopped matching after
/// a key rotation).
pub fn same_place(a: &TenantDest, b: &TenantDest) -> bool {
    a.tenant_id == b.tenant_id
        && a.cluster_id == b.cluster_id
        && a.incarnation == b.incarnation
        && a.cluster_name == b.cluster_name
        && dest_root(&a.uri) == dest_root(&b.uri)
}

/// Selection of a copy statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopySelection {
    /// Tenants named by `TENANT …` (empty: cluster level, every user tenant).
    pub tenants: Vec<String>,
    /// `ALL` (None) or one id.
    pub id: Option<u64>,
    /// `ALL NOT BACKED UP n TIMES`.
    pub max_backup_times: Option<u64>,
    /// `BACKUP_BACKUP_DEST = '…'`; None: the `backup_backup_dest` parameter.
    pub dest: Option<String>,
}

impl MetaState {
    fn running_tasks(&self, job_id: JobId) -> usize {
        self.work
            .tasks
            .values()
            .filter(|t| t.job_id == job_id && t.status == TaskStatus::Running)
            .count()
    }

    /// Resolves the tenants of a statement: named ones, or every user tenant.
    fn user_tenants(&self, names: &[String]) -> Result<Vec<TenantId>, (Code, String)> {
        if names.is_empty() {
            return Ok(self
                .tenants
                .keys()
                .copied()
                .filter(|t| *t != TenantId::SYS)
                .collect());
        }
        names.iter().map(|n| self.tenant_id(n)).collect()
    }

    /// The copy destination and its level for a statement.
    fn copy_dest(&self, sel: &CopySelection) -> Result<(String, CopyLevel), (Code, String)> {
        let tenant_level = !sel.tenants.is_empty();
        let param = self.param(Param::BackupBackupDest, None).to_string();
        let primary = self.param(Param::BackupDest, None).to_string();
        if !primary.is_empty() && !param.is_empty() && dest_root(&primary) == dest_root(&param) {
            return Err(refuse(
                Code::BackupBackupCanNotStart,
                "backup_dest and backup_backup_dest are the same place",
            ));
        }
        let (uri, explicit) = match &sel.dest {
            Some(d) if !d.is_empty() && dest_root(d) != dest_root(&param) => (d.clone(), true),
            _ => (param.clone(), false),
        };
        if uri.is_empty() {
            return Err(refuse(
                Code::BackupBackupCanNotStart,
                "backup_backup_dest is not set (ALTER SYSTEM SET backup_backup_dest = '…', or give BACKUP_BACKUP_DEST = '…')",
            ));
        }
        BackupDest::parse(&uri).map_err(|e| refuse(Code::InvalidBackupDest, e.to_string()))?;
        if let Some(n) = sel.max_backup_times
            && !explicit
        {
            return Err(refuse(
                Code::NotSupported,
                format!(
                    "not backed up {n} times to the backup_backup_dest of sys parameter is not supported (give BACKUP_BACKUP_DEST = '…')"
                ),
            ));
        }
        let root = dest_root(&uri);
        for t in self.user_tenants(&sel.tenants)? {
            let own = dest_root(self.param(Param::BackupDest, Some(t)));
            if own == root {
                return Err(refuse(
                    Code::InvalidBackupDest,
                    "the copy destination is the backup_dest itself",
                ));
            }
        }
        let level = match (tenant_level, explicit) {
            (false, false) => CopyLevel::ClusterParam,
            (false, true) => CopyLevel::ClusterExplicit,
            (true, false) => CopyLevel::TenantParam,
            (true, true) => CopyLevel::TenantExplicit,
        };
        Ok((uri, level))
    }

    /// The copy id of `root` at `level`: the one already used there, or the next free.
    fn copy_id_for(&self, level: CopyLevel, root: &str) -> Result<u64, (Code, String)> {
        let (lo, hi) = level.range();
        let mut used: Vec<(u64, String)> = Vec::new();
        used.extend(
            self.work
                .sets
                .values()
                .filter(|s| s.copy_id > 0)
                .map(|s| (s.copy_id, dest_root(&s.dest.uri))),
        );
        used.extend(
            self.work
                .pieces
                .values()
                .filter(|p| p.copy_id > 0)
                .map(|p| (p.copy_id, p.backup_dest.clone())),
        );
        used.extend(
            self.work
                .archive_copies
                .values()
                .map(|c| (c.copy_id, dest_root(&c.dest.uri))),
        );
        for j in self.work.jobs.values() {
            match &j.kind {
                JobKind::SetCopy { copy_id, dest, .. }
                | JobKind::PieceCopy { copy_id, dest, .. } => {
                    used.push((*copy_id, dest_root(dest)))
                }
                _ => {}
            }
        }
        // One destination root has one copy_id, whatever the level of the statement
        // that names it: two copy ids at one root would be two sets of rows for the
        // same objects, and the clean of one would delete the other's data.
        if let Some((c, _)) = used.iter().filter(|(c, _)| *c > 0).find(|(_, r)| r == root) {
            return Ok(*c);
        }
        let in_range: Vec<&(u64, String)> =
            used.iter().filter(|(c, _)| (lo..=hi).contains(c)).collect();
        let next = in_range.iter().map(|(c, _)| c + 1).max().unwrap_or(lo);
        if next > hi {
            return Err(refuse(
                Code::BackupBackupCanNotStart,
                format!("every copy_id in [{lo}, {hi}] is used"),
            ));
        }
        Ok(next)
    }

    fn copy_tenant_dest(&self, src: &TenantDest, uri: &str) -> TenantDest {
        TenantDest {
            uri: uri.to_string(),
            ..src.clone()
        }
    }

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
        let mut queue: Vec<(TenantId, u64)> = Vec::new();
        let mut limited_by_times = false;
        let mut any_source = false;
        for t in tenants {
            let primary_root = dest_root(self.param(Param::BackupDest, Some(t)));
            let source: Vec<&BackupSetRecord> = self
                .work
                .sets
                .values()
                .filter(|s| s.tenant_id == t && s.copy_id == 0 && s.usable())
                .filter(|s| dest_root(&s.dest.uri) == primary_root)
                .collect();
            any_source |= !source.is_empty();
            let copied = |id: u64| {
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
            let mut wanted: Vec<u64> = match sel.id {
                Some(id) => {
                    if !source.iter().any(|s| s.backup_set_id == id) {
                        if !sel.tenants.is_empty() || self.work.sets.contains_key(&(t, id, 0)) {
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
                                newest_copied.unwrap_or(0)
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
                                && c.copy_id > 0
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
                let base_complete = |base: u64| {
                    self.work
                        .sets
                        .get(&(t, base, copy_id))
                        .is_some_and(|c| c.usable())
                };
                if let Some(base) = self.work.sets.get(&(t, id, 0)).and_then(|s| s.base_set_id)
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
                backup_set_id: sel.id.unwrap_or(0),
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
    fn next_set_copy(&mut self, job_id: JobId, tenant: TenantId, now: u64) -> Vec<Touched> {
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
            let Some(src) = self.work.sets.get(&(tenant, set_id, 0)).cloned() else {
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
        backup_set_id: u64,
        copy_id: u64,
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

    /// Ends a copy job whose work is all done (or continues its end if it is ending).
    pub(crate) fn maybe_job_done(&mut self, job_id: JobId, now: u64) -> Vec<Touched> {
        let Some(job) = self.work.jobs.get(&job_id) else {
            return vec![];
        };
        let status = job.status;
        let queued = match &job.kind {
            JobKind::SetCopy { queue, .. } => !queue.is_empty(),
            _ => false,
        };
        let open = self.work.tasks.values().any(|t| {
            t.job_id == job_id && matches!(t.status, TaskStatus::Pending | TaskStatus::Running)
        });
        match status {
            JobStatus::Doing if !queued && !open => self.finalize_job(job_id, now),
            JobStatus::Canceling if self.running_tasks(job_id) == 0 => {
                self.begin_clean(job_id, now)
            }
            JobStatus::Cleaning if !open => self.finalize_job(job_id, now),
            _ => vec![],
        }
    }

    /// Ends a live job early: cancel (`result` `OB_CANCELED`) or failure. Pending tasks
    /// are cancelled at once; running ones are told to stop (heartbeat action
    /// `cancel`); when none runs any more, the clean phase starts.
    pub(crate) fn end_job_early(
        &mut self,
        job_id: JobId,
        result: &str,
        comment: &str,
        now: u64,
    ) -> Vec<Touched> {
        let Some(job) = self.work.jobs.get_mut(&job_id) else {
            return vec![];
        };
        if !matches!(
            job.status,
            JobStatus::Doing | JobStatus::Schedule | JobStatus::Suspended
        ) {
            return vec![];
        }
        job.status = JobStatus::Canceling;
        job.result = Some(result.to_string());
        job.comment = comment.to_string();
        if let JobKind::SetCopy { queue, .. } = &mut job.kind {
            queue.clear();
        }
        let mut touched = vec![Touched::Job(job_id)];
        for t in self
            .work
            .tasks
            .values_mut()
            .filter(|t| t.job_id == job_id && t.status == TaskStatus::Pending)
        {
            t.status = TaskStatus::Canceled;
            t.update_time_ms = now;
            touched.push(Touched::Task(t.task_id));
        }
        touched.extend(self.maybe_job_done(job_id, now));
        touched
    }

    /// What a job leaves behind if it does not complete, by destination.
    fn clean_items(&self, job_id: JobId) -> Vec<(TenantDest, Vec<CleanItem>)> {
        let Some(job) = self.work.jobs.get(&job_id) else {
            return vec![];
        };
        let mut out: Vec<(TenantDest, Vec<CleanItem>)> = Vec::new();
        let mut add =
            |dest: &TenantDest, item: CleanItem| match out.iter_mut().find(|(d, _)| d == dest) {
                Some((_, items)) => items.push(item),
                None => out.push((dest.clone(), vec![item])),
            };
        match &job.kind {
            JobKind::Backup { backup_set_id, .. } => {
                if let Some(s) = self.work.sets.get(&(job.tenant_id, *backup_set_id, 0))
                    && s.status != SetStatus::Success
                {
                    add(
                        &s.dest,
                        CleanItem {
                            dir: layout::set_dir(s.backup_set_id, s.backup_type),
                            index: Some(layout::set_index(s.backup_set_id)),
                            keep_referenced: false,
                        },
                    );
                }
            }
            JobKind::SetCopy { copy_id, .. } => {
                for s in self
                    .work
                    .sets
                    .values()
                    .filter(|s| s.job_id == job_id && s.copy_id == *copy_id)
                    .filter(|s| s.status != SetStatus::Success)
                {
                    add(
                        &s.dest,
                        CleanItem {
                            dir: layout::set_dir(s.backup_set_id, s.backup_type),
                            index: Some(layout::set_index(s.backup_set_id)),
                            keep_referenced: false,
                        },
                    );
                }
            }
            JobKind::PieceCopy { .. } => {
                for t in self.work.tasks.values().filter(|t| t.job_id == job_id) {
                    let TaskSpec::CopyPiece {
                        dst,
                        round_id,
                        piece_id,
                        copy_id,
                        ..
                    } = &t.spec
                    else {
                        continue;
                    };
                    if t.status == TaskStatus::Done {
                        continue;
                    }
                    let before = self
                        .work
                        .pieces
                        .get(&(t.tenant_id, *round_id, *piece_id, *copy_id))
                        .is_some_and(|p| p.file_status == "AVAILABLE");
                    add(
                        dst,
                        CleanItem {
                            dir: layout::piece_dir(*round_id, *piece_id),
                            index: (!before).then(|| layout::piece_index(*round_id, *piece_id)),
                            keep_referenced: before,
                        },
                    );
                }
            }
            _ => {}
        }
        out
    }

    /// CANCEL → CLEAN: one clean task per destination, or straight to the end.
    fn begin_clean(&mut self, job_id: JobId, now: u64) -> Vec<Touched> {
        let items = self.clean_items(job_id);
        if items.is_empty() {
            return self.finalize_job(job_id, now);
        }
        let tenant = self
            .work
            .jobs
            .get(&job_id)
            .map_or(TenantId::SYS, |j| j.tenant_id);
        let mut touched = vec![Touched::Job(job_id)];
        if let Some(j) = self.work.jobs.get_mut(&job_id) {
            j.status = JobStatus::Cleaning;
        }
        for (dest, items) in items {
            let t = if tenant == TenantId::SYS {
                dest.tenant_id
            } else {
                tenant
            };
            let items = items
                .into_iter()
                .map(|item| self.guard_clean_item(&dest, item))
                .collect();
            let id = self.new_task(job_id, t, TaskSpec::Clean { dest, items }, 0, now);
            touched.push(Touched::Task(id));
        }
        touched
    }

    /// The job's final state: FINISH (result none), CANCELED (`OB_CANCELED`) or
    /// FAILED; rows it was writing become INCOMPLETE; a queued piece job may start.
    pub(crate) fn finalize_job(&mut self, job_id: JobId, now: u64) -> Vec<Touched> {
        let mut touched = vec![Touched::Job(job_id)];
        let Some(job) = self.work.jobs.get_mut(&job_id) else {
            return touched;
        };
        job.status = match job.result.as_deref() {
            None => JobStatus::Finished,
            Some(r) if r == Code::Canceled.name() => JobStatus::Canceled,
            Some(r)
                if r == Code::BackupBackupReachCopyLimit.name()
                    || r == Code::BackupBackupReachMaxBackupTimes.name() =>
            {
                JobStatus::Finished
            }
            Some(_) => JobStatus::Failed,
        };
        job.end_time_ms = now;
        let kind = job.kind.clone();
        let tenant = job.tenant_id;
        let comment = job.comment.clone();
        for t in self.work.tasks.values_mut().filter(|t| {
            t.job_id == job_id && matches!(t.status, TaskStatus::Pending | TaskStatus::Running)
        }) {
            t.status = TaskStatus::Canceled;
            t.update_time_ms = now;
            touched.push(Touched::Task(t.task_id));
        }
        let mut incomplete: Vec<(TenantId, u64, u64)> = Vec::new();
        match &kind {
            JobKind::Backup { backup_set_id, .. } => incomplete.push((tenant, *backup_set_id, 0)),
            JobKind::SetCopy { .. } => incomplete.extend(
                self.work
                    .sets
                    .values()
                    .filter(|s| s.job_id == job_id && s.copy_id > 0)
                    .map(|s| (s.tenant_id, s.backup_set_id, s.copy_id)),
            ),
            JobKind::PieceCopy { .. } => {
                let keys: Vec<(TenantId, u64, u64, u64)> = self
                    .work
                    .pieces
                    .iter()
                    .filter(|(_, p)| p.copy_id > 0 && p.file_status == "COPYING")
                    .filter(|((t, r, pc, c), _)| {
                        self.work.tasks.values().any(|task| {
                            task.job_id == job_id
                                && matches!(&task.spec, TaskSpec::CopyPiece { round_id, piece_id, copy_id, .. }
                                    if task.tenant_id == *t && round_id == r && piece_id == pc && copy_id == c)
                        })
                    })
                    .map(|(k, _)| *k)
                    .collect();
                for k in keys {
                    if let Some(p) = self.work.pieces.get_mut(&k) {
                        p.file_status = "INCOMPLETE".to_string();
                        touched.push(Touched::Piece(k.0, k.1, k.2, k.3));
                    }
                }
            }
            _ => {}
        }
        for key in incomplete {
            if let Some(s) = self.work.sets.get_mut(&key)
                && s.status != SetStatus::Success
            {
                s.status = SetStatus::Failed;
                s.file_status = "INCOMPLETE".to_string();
                s.comment = comment.clone();
                s.end_time_ms = now;
                touched.push(Touched::Set(key.0, key.1, key.2));
            }
        }
        if matches!(kind, JobKind::PieceCopy { .. }) {
            touched.extend(self.promote_piece_job(now));
        }
        touched
    }

    /// `CANCEL BACKUP`, `CANCEL BACKUP BACKUPSET`, `CANCEL BACKUP BACKUPPIECE`,
    /// `CANCEL VALIDATE n`: every live job of that kind (of these tenants) ends with
    /// `OB_CANCELED`. Nothing live: `Reply::Done` (a no-op, not an error).
    pub(crate) fn cancel_jobs(
        &mut self,
        target: &CancelTarget,
        tenants: &[String],
        now: u64,
    ) -> Outcome {
        let scope: Vec<TenantId> = if tenants.is_empty() {
            vec![]
        } else {
            self.user_tenants(tenants)?
        };
        let jobs: Vec<JobId> = self
            .work
            .jobs
            .values()
            .filter(|j| {
                matches!(
                    j.status,
                    JobStatus::Doing | JobStatus::Schedule | JobStatus::Suspended
                )
            })
            .filter(|j| scope.is_empty() || scope.contains(&j.tenant_id))
            .filter(|j| match (target, &j.kind) {
                (CancelTarget::Backup, JobKind::Backup { .. }) => true,
                (CancelTarget::SetCopy, JobKind::SetCopy { .. }) => true,
                (CancelTarget::PieceCopy, JobKind::PieceCopy { .. }) => true,
                (CancelTarget::Validate(id), JobKind::Validate { .. }) => j.job_id.0 == *id,
                _ => false,
            })
            .map(|j| j.job_id)
            .collect();
        if let CancelTarget::Validate(id) = target
            && jobs.is_empty()
        {
            return Err(refuse(
                Code::EntryNotExist,
                format!("no running validation job {id}"),
            ));
        }
        let mut touched = Vec::new();
        for id in &jobs {
            touched.extend(self.end_job_early(*id, Code::Canceled.name(), "canceled by user", now));
        }
        Ok((Reply::Jobs(jobs), touched))
    }

    /// `SUSPEND BACKUP` / `RESUME BACKUP` for data backups: a suspended job keeps
    /// its finished parts; its running parts stop and run again on resume.
    pub(crate) fn suspend_backup(
        &mut self,
        tenants: &[String],
        suspend: bool,
        now: u64,
    ) -> Outcome {
        let scope: Vec<TenantId> = if tenants.is_empty() {
            vec![]
        } else {
            self.user_tenants(tenants)?
        };
        let (from, to) = if suspend {
            (JobStatus::Doing, JobStatus::Suspended)
        } else {
            (JobStatus::Suspended, JobStatus::Doing)
        };
        let mut touched = Vec::new();
        let mut jobs = Vec::new();
        for j in self.work.jobs.values_mut().filter(|j| {
            j.status == from
                && matches!(j.kind, JobKind::Backup { .. })
                && (scope.is_empty() || scope.contains(&j.tenant_id))
        }) {
            j.status = to;
            touched.push(Touched::Job(j.job_id));
            jobs.push(j.job_id);
        }
        let _ = now;
        Ok((Reply::Jobs(jobs), touched))
    }

    /// `CANCEL ALL BACKUP FORCE`: every backup-related job ends now, whatever its
    /// tasks are doing (they are fenced: their attempts are no longer current);
    /// what they may have left is recorded for the cleaner, which runs it once every
    /// fenced attempt's lease has run out (`clean_after_ms`).
    pub(crate) fn cancel_all_force(&mut self, clean_after_ms: u64, now: u64) -> Outcome {
        let jobs: Vec<JobId> = self
            .work
            .jobs
            .values()
            .filter(|j| j.status.is_live())
            .filter(|j| {
                matches!(
                    j.kind,
                    JobKind::Backup { .. }
                        | JobKind::SetCopy { .. }
                        | JobKind::PieceCopy { .. }
                        | JobKind::Validate { .. }
                        | JobKind::Cleaner
                )
            })
            .map(|j| j.job_id)
            .collect();
        let mut touched = Vec::new();
        for id in &jobs {
            let running_clean =
                self.work.jobs.get(id).map(|j| j.status) == Some(JobStatus::Cleaning);
            let mut items = self.clean_items(*id);
            if running_clean {
                // The clean tasks themselves are abandoned: their items go to the cleaner.
                items = self
                    .work
                    .tasks
                    .values()
                    .filter(|t| t.job_id == *id && !matches!(t.status, TaskStatus::Done))
                    .filter_map(|t| match &t.spec {
                        TaskSpec::Clean { dest, items } => Some((dest.clone(), items.clone())),
                        _ => None,
                    })
                    .collect();
            }
            for (dest, items) in items {
                for item in items {
                    touched.extend(self.add_leftover(
                        dest.clone(),
                        item,
                        now + clean_after_ms,
                        "CANCEL ALL BACKUP FORCE",
                    ));
                }
            }
            if let Some(j) = self.work.jobs.get_mut(id) {
                if j.result.is_none() || !running_clean {
                    j.result = Some(Code::Canceled.name().to_string());
                }
                j.comment = "canceled by CANCEL ALL BACKUP FORCE".to_string();
            }
            touched.extend(self.finalize_job(*id, now));
        }
        // Leftovers claimed by a cleaner job that was just cancelled go back to the pool.
        for l in self.work.leftovers.values_mut() {
            if l.claimed_by.is_some_and(|j| jobs.contains(&j)) {
                l.claimed_by = None;
                l.not_before_ms = l.not_before_ms.max(now + clean_after_ms);
                touched.push(Touched::Leftover(l.id));
            }
        }
        touched.extend(self.pause_archive_copies(&[], now)?);
        Ok((Reply::Jobs(jobs), touched))
    }

    /// Schedules a scrub of a finished directory (a frozen piece, a complete set) that
    /// a failed-over attempt wrote into: a dead attempt — or a zombie that wakes up
    /// after its lease — may have left objects there that no manifest references.
    /// The cleaner deletes them once `SCRUB_DELAY_MS` has passed.
    pub(crate) fn scrub_later(&mut self, dest: TenantDest, dir: String, now: u64) -> Vec<Touched> {
        self.add_leftover(
            dest,
            CleanItem {
                dir,
                index: None,
                keep_referenced: true,
            },
            now + SCRUB_DELAY_MS,
            "scrub after a failover: objects of earlier attempts",
        )
    }

    pub(crate) fn add_leftover(
        &mut self,
        dest: TenantDest,
        item: CleanItem,
        not_before_ms: u64,
        reason: &str,
    ) -> Vec<Touched> {
        // One unclaimed leftover per directory. A full delete is never swallowed by a
        // scrub already pending there: the scrub becomes the delete. A leftover the
        // cleaner is working on right now is not changed; the new one waits beside it.
        if let Some(l) = self.work.leftovers.values_mut().find(|l| {
            l.claimed_by.is_none() && same_place(&l.dest, &dest) && l.item.dir == item.dir
        }) {
            if l.item.keep_referenced && !item.keep_referenced {
                l.item = item;
                l.reason = reason.to_string();
                l.not_before_ms = l.not_before_ms.min(not_before_ms);
                return vec![Touched::Leftover(l.id)];
            }
            return vec![];
        }
        self.work.next_leftover_id += 1;
        let id = self.work.next_leftover_id;
        self.work.leftovers.insert(
            id,
            LeftoverRecord {
                id,
                dest,
                item,
                not_before_ms,
                reason: reason.to_string(),
                claimed_by: None,
            },
        );
        vec![Touched::Leftover(id), Touched::Cluster]
    }

    /// A clean task ended: failed items become leftovers; the job may end.
    pub(crate) fn cleaned(
        &mut self,
        job_id: JobId,
        spec: &TaskSpec,
        failed: &[String],
        now: u64,
    ) -> Vec<Touched> {
        let mut touched = Vec::new();
        let TaskSpec::Clean { dest, items } = spec else {
            return touched;
        };
        let is_cleaner = self
            .work
            .jobs
            .get(&job_id)
            .is_some_and(|j| matches!(j.kind, JobKind::Cleaner));
        let failed_dir = |dir: &str| failed.iter().any(|f| f.starts_with(dir));
        if is_cleaner {
            let done: Vec<u64> = self
                .work
                .leftovers
                .values()
                .filter(|l| l.claimed_by == Some(job_id) && same_place(&l.dest, dest))
                .map(|l| l.id)
                .collect();
            for id in done {
                let keep = self
                    .work
                    .leftovers
                    .get(&id)
                    .is_some_and(|l| failed_dir(&l.item.dir));
                if keep {
                    if let Some(l) = self.work.leftovers.get_mut(&id) {
                        l.claimed_by = None;
                        l.not_before_ms = now + 30_000;
                    }
                } else if let Some(l) = self.work.leftovers.remove(&id) {
                    // Only a delete that really ran makes a set DELETED; a scrub (the
                    // guard may have turned a delete into one) leaves it as it is.
                    let deleted = items
                        .iter()
                        .any(|i| i.dir == l.item.dir && !i.keep_referenced);
                    if deleted {
                        touched.extend(self.set_deleted(&l.dest, &l.item.dir));
                    }
                }
                touched.push(Touched::Leftover(id));
            }
        } else {
            for item in items.iter().filter(|i| failed_dir(&i.dir)) {
                touched.extend(self.add_leftover(
                    dest.clone(),
                    item.clone(),
                    now,
                    "could not be deleted when the job ended",
                ));
            }
        }
        touched.extend(self.maybe_job_done(job_id, now));
        touched
    }

    /// Whether the cleaner may take a leftover now: unclaimed, past its time, and — for
    /// a scrub of a piece — the piece frozen (an active piece is still being written).
    pub fn leftover_due(&self, l: &LeftoverRecord, now: u64) -> bool {
        if l.claimed_by.is_some() || l.not_before_ms > now {
            return false;
        }
        if !l.item.keep_referenced {
            return true;
        }
        let piece = l
            .item
            .dir
            .strip_prefix("clog/round_")
            .and_then(|r| r.split_once("/piece_"))
            .and_then(|(r, p)| Some((r.parse::<u64>().ok()?, p.parse::<u64>().ok()?)));
        match piece {
            Some((round, piece)) => self
                .work
                .pieces
                .get(&(l.dest.tenant_id, round, piece, 0))
                .is_none_or(|p| p.status == PieceStatus::Frozen),
            None => true,
        }
    }

    /// The one rule every clean obeys: where a complete set or piece (of any copy)
    /// lives in the item's directory at that place, the item only scrubs — what its
    /// manifest references stays, and so does its index entry.
    pub(crate) fn guard_clean_item(&self, dest: &TenantDest, mut item: CleanItem) -> CleanItem {
        if !item.keep_referenced && self.copy_complete(dest, &item.dir) {
            item.keep_referenced = true;
            item.index = None;
        }
        item
    }

    /// Whether a set at `dest` lives in `dir` with `file_status` one of `statuses`.
    fn set_at(&self, dest: &TenantDest, dir: &str, statuses: &[&str]) -> bool {
        self.work.sets.values().any(|s| {
            same_place(&s.dest, dest)
                && statuses.contains(&s.file_status.as_str())
                && layout::set_dir(s.backup_set_id, s.backup_type) == dir
        })
    }

    /// Whether a piece of `dest`'s tenant lives in `dir` at `dest`'s root with
    /// `file_status` one of `statuses`.
    fn piece_at(&self, dest: &TenantDest, dir: &str, statuses: &[&str]) -> bool {
        let root = dest_root(&dest.uri);
        self.work.pieces.values().any(|p| {
            p.tenant_id == dest.tenant_id
                && statuses.contains(&p.file_status.as_str())
                && layout::piece_dir(p.round_id, p.piece_id) == dir
                && dest_root(&p.backup_dest) == root
        })
    }

    /// A copy is being written into `dir` at `dest`: leftovers there wait.
    fn copy_writing(&self, dest: &TenantDest, dir: &str) -> bool {
        self.set_at(dest, dir, &["COPYING"]) || self.piece_at(dest, dir, &["COPYING"])
    }

    /// A complete copy lives in `dir` at `dest`.
    fn copy_complete(&self, dest: &TenantDest, dir: &str) -> bool {
        self.set_at(dest, dir, &["AVAILABLE"]) || self.piece_at(dest, dir, &["AVAILABLE"])
    }

    /// The cleaner: a job with one clean task per destination over the leftovers
    /// that are due. Proposed by the leader's scheduler; a no-op when nothing is due
    /// or a cleaner runs.
    pub(crate) fn start_cleaner(&mut self, now: u64) -> Outcome {
        if self
            .work
            .jobs
            .values()
            .any(|j| j.status.is_live() && matches!(j.kind, JobKind::Cleaner))
        {
            return Ok((Reply::Done, vec![]));
        }
        let due: Vec<u64> = self
            .work
            .leftovers
            .values()
            .filter(|l| self.leftover_due(l, now) && !self.copy_writing(&l.dest, &l.item.dir))
            .map(|l| l.id)
            .collect();
        if due.is_empty() {
            return Ok((Reply::Done, vec![]));
        }
        let job_id = self.new_job(TenantId::SYS, JobKind::Cleaner, now);
        if let Some(j) = self.work.jobs.get_mut(&job_id) {
            j.status = JobStatus::Cleaning;
        }
        let mut touched = vec![Touched::Job(job_id)];
        let mut by_dest: Vec<(TenantDest, Vec<CleanItem>)> = Vec::new();
        for id in due {
            let Some(l) = self.work.leftovers.get_mut(&id) else {
                continue;
            };
            l.claimed_by = Some(job_id);
            touched.push(Touched::Leftover(id));
            let (dest, item) = (l.dest.clone(), l.item.clone());
            // What a cancelled copy left may have been copied again, completely, since:
            // then only a scrub (keep what the manifest references), never a delete.
            let item = self.guard_clean_item(&dest, item);
            match by_dest.iter_mut().find(|(d, _)| *d == dest) {
                Some((_, items)) => items.push(item),
                None => by_dest.push((dest, vec![item])),
            }
        }
        for (dest, items) in by_dest {
            let t = dest.tenant_id;
            let id = self.new_task(job_id, t, TaskSpec::Clean { dest, items }, 0, now);
            touched.push(Touched::Task(id));
        }
        Ok((Reply::Job(job_id), touched))
    }

    /// `ALTER SYSTEM BACKUP BACKUPPIECE …` (§1.6 b).
    pub(crate) fn start_piece_copy(
        &mut self,
        sel: &CopySelection,
        with_active: bool,
        now: u64,
    ) -> Outcome {
        if with_active && (sel.id.is_some() || sel.max_backup_times.is_some()) {
            return Err(refuse(
                Code::NotSupported,
                "WITH ACTIVE with a piece id or NOT BACKED UP n TIMES is not supported (use BACKUP BACKUPPIECE ALL WITH ACTIVE)",
            ));
        }
        let (uri, level) = self.copy_dest(sel)?;
        let root = dest_root(&uri);
        let copy_id = self.copy_id_for(level, &root)?;
        // Round mode and piece mode exclude each other per destination (Backstop
        // checks the destination; OceanBase refuses cluster-wide).
        if self
            .work
            .archive_copies
            .values()
            .any(|c| dest_root(&c.dest.uri) == root && c.status == CopyArchiveStatus::Doing)
        {
            return Err(refuse(
                Code::NotSupported,
                "backup backuppiece in auto mode is not supported (STOP BACKUP ARCHIVELOG first, or give another BACKUP_BACKUP_DEST)",
            ));
        }
        if self
            .work
            .archive_copies
            .values()
            .any(|c| dest_root(&c.dest.uri) == root)
        {
            return Err(refuse(
                Code::NotSupported,
                "backup backup piece in round mode directory is not supported (this destination holds a continuous archive copy)",
            ));
        }
        let tenants = self.user_tenants(&sel.tenants)?;
        let mut selected: Vec<(TenantId, u64, u64)> = Vec::new();
        for t in &tenants {
            for p in self
                .work
                .pieces
                .values()
                .filter(|p| p.tenant_id == *t && p.copy_id == 0)
            {
                let eligible = match p.status {
                    PieceStatus::Frozen => true,
                    PieceStatus::Active | PieceStatus::Freezing => with_active,
                };
                if !eligible || sel.id.is_some_and(|id| id != p.piece_id) {
                    continue;
                }
                if p.checkpoint_time_ms == 0 {
                    continue; // nothing archived in it yet
                }
                let existing =
                    self.work
                        .pieces
                        .get(&(p.tenant_id, p.round_id, p.piece_id, copy_id));
                let done = existing.is_some_and(|c| {
                    c.file_status == "AVAILABLE"
                        && (c.status == PieceStatus::Frozen || c.checkpoint_scn >= p.checkpoint_scn)
                });
                if done {
                    continue;
                }
                if let Some(n) = sel.max_backup_times {
                    let copies = self
                        .work
                        .pieces
                        .values()
                        .filter(|c| {
                            c.tenant_id == p.tenant_id
                                && c.round_id == p.round_id
                                && c.piece_id == p.piece_id
                                && c.copy_id > 0
                                && c.file_status == "AVAILABLE"
                                && c.status == PieceStatus::Frozen
                        })
                        .count();
                    if copies >= n as usize {
                        continue;
                    }
                }
                selected.push((p.tenant_id, p.round_id, p.piece_id));
            }
        }
        if let Some(id) = sel.id
            && selected.is_empty()
            && !self
                .work
                .pieces
                .values()
                .any(|p| tenants.contains(&p.tenant_id) && p.copy_id == 0 && p.piece_id == id)
        {
            return Err(refuse(
                Code::BackupBackupCanNotStart,
                format!("backup piece {id} does not exist"),
            ));
        }
        let tenant_id = match sel.tenants.first() {
            Some(n) => self.tenant_id(n)?,
            None => TenantId::SYS,
        };
        let others_live = self
            .work
            .jobs
            .values()
            .any(|j| j.status.is_live() && matches!(j.kind, JobKind::PieceCopy { .. }));
        let job_id = self.new_job(
            tenant_id,
            JobKind::PieceCopy {
                backup_piece_id: sel.id.unwrap_or(0),
                with_active,
                max_backup_times: sel.max_backup_times,
                copy_id,
                dest: uri,
                pieces: selected.clone(),
            },
            now,
        );
        let mut touched = vec![Touched::Job(job_id)];
        if others_live {
            if let Some(j) = self.work.jobs.get_mut(&job_id) {
                j.status = JobStatus::Schedule;
            }
            return Ok((Reply::Job(job_id), touched));
        }
        touched.extend(self.launch_piece_job(job_id, now));
        Ok((Reply::Job(job_id), touched))
    }

    /// SCHEDULE → DOING: one copy task per selected piece.
    fn launch_piece_job(&mut self, job_id: JobId, now: u64) -> Vec<Touched> {
        let Some(job) = self.work.jobs.get_mut(&job_id) else {
            return vec![];
        };
        job.status = JobStatus::Doing;
        let JobKind::PieceCopy {
            copy_id,
            dest,
            pieces,
            ..
        } = job.kind.clone()
        else {
            return vec![];
        };
        let mut touched = vec![Touched::Job(job_id)];
        for (t, round_id, piece_id) in pieces {
            let Some(round) = self.work.rounds.get(&(t, round_id)) else {
                continue;
            };
            let Some(src_piece) = self.work.pieces.get(&(t, round_id, piece_id, 0)).cloned() else {
                continue;
            };
            let src = round.dest.clone();
            let dst = self.copy_tenant_dest(&src, &dest);
            let spec = TaskSpec::CopyPiece {
                src,
                dst,
                round_id,
                piece_id,
                copy_id,
            };
            let id = self.new_task(job_id, t, spec, 0, now);
            touched.push(Touched::Task(id));
            let key = (t, round_id, piece_id, copy_id);
            match self.work.pieces.get_mut(&key) {
                // An earlier partial copy of an active piece stays usable up to its
                // checkpoint while this one runs.
                Some(p) if p.file_status == "AVAILABLE" => {}
                _ => {
                    self.work.pieces.insert(
                        key,
                        PieceRecord {
                            copy_id,
                            file_status: "COPYING".to_string(),
                            checkpoint_scn: src_piece.start_scn,
                            checkpoint_time_ms: 0,
                            create_time_ms: now,
                            backup_dest: dest_root(&dest),
                            ..src_piece
                        },
                    );
                    touched.push(Touched::Piece(t, round_id, piece_id, copy_id));
                }
            }
        }
        touched.extend(self.maybe_job_done(job_id, now));
        touched
    }

    /// When a piece job ends: the smallest scheduled one starts (`decisions.md` 9).
    fn promote_piece_job(&mut self, now: u64) -> Vec<Touched> {
        if self.work.jobs.values().any(|j| {
            matches!(j.kind, JobKind::PieceCopy { .. })
                && j.status.is_live()
                && j.status != JobStatus::Schedule
        }) {
            return vec![];
        }
        let next = self
            .work
            .jobs
            .values()
            .filter(|j| j.status == JobStatus::Schedule)
            .filter_map(|j| match &j.kind {
                JobKind::PieceCopy { pieces, .. } => Some((pieces.len(), j.job_id)),
                _ => None,
            })
            .min();
        match next {
            Some((_, id)) => self.launch_piece_job(id, now),
            None => vec![],
        }
    }

    /// A piece copy task finished.
    pub(crate) fn piece_copied(
        &mut self,
        task_tenant: TenantId,
        spec: &TaskSpec,
        start_scn: Scn,
        checkpoint_scn: Scn,
        frozen: bool,
        now: u64,
    ) -> Vec<Touched> {
        let TaskSpec::CopyPiece {
            round_id,
            piece_id,
            copy_id,
            dst,
            ..
        } = spec
        else {
            return vec![];
        };
        self.upsert_piece_copy(
            task_tenant,
            *round_id,
            *piece_id,
            *copy_id,
            dst,
            start_scn,
            checkpoint_scn,
            frozen,
            now,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn upsert_piece_copy(
        &mut self,
        tenant: TenantId,
        round_id: u64,
        piece_id: u64,
        copy_id: u64,
        dst: &TenantDest,
        start_scn: Scn,
        checkpoint_scn: Scn,
        frozen: bool,
        now: u64,
    ) -> Vec<Touched> {
        let key = (tenant, round_id, piece_id, copy_id);
        let src = self
            .work
            .pieces
            .get(&(tenant, round_id, piece_id, 0))
            .cloned();
        let record = self.work.pieces.entry(key).or_insert_with(|| PieceRecord {
            tenant_id: tenant,
            round_id,
            piece_id,
            copy_id,
            start_scn,
            checkpoint_scn,
            max_scn: None,
            status: PieceStatus::Active,
            file_status: "COPYING".to_string(),
            create_time_ms: src.as_ref().map_or(now, |p| p.create_time_ms),
            checkpoint_time_ms: now,
            backup_dest: dest_root(&dst.uri),
        });
        record.start_scn = start_scn;
        record.checkpoint_scn = record.checkpoint_scn.max(checkpoint_scn);
        record.checkpoint_time_ms = now;
        record.file_status = "AVAILABLE".to_string();
        if frozen {
            record.status = PieceStatus::Frozen;
            record.max_scn = Some(checkpoint_scn);
        } else {
            record.status = PieceStatus::Active;
        }
        vec![Touched::Piece(tenant, round_id, piece_id, copy_id)]
    }

    /// `ALTER SYSTEM START BACKUP ARCHIVELOG` (§1.6 a): every user tenant (or the
    /// named ones) gets a follower task copying its archive to `backup_backup_dest`.
    pub(crate) fn start_archive_copy(&mut self, tenants: &[String], now: u64) -> Outcome {
        let uri = self.param(Param::BackupBackupDest, None).to_string();
        if uri.is_empty() {
            return Err(refuse(
                Code::NotSupported,
                "handle backup archive log with empty backup dest is not supported (ALTER SYSTEM SET backup_backup_dest = '…' first)",
            ));
        }
        let root = dest_root(&uri);
        if self.work.jobs.values().any(|j| {
            j.status.is_live()
                && matches!(&j.kind, JobKind::PieceCopy { dest, .. } if dest_root(dest) == root)
        }) {
            return Err(refuse(
                Code::NotSupported,
                "backup archive log if backup backuppiece job exist is not supported (wait for or cancel the piece copy to this destination)",
            ));
        }
        let copy_id = self.copy_id_for(CopyLevel::ClusterParam, &root)?;
        let piece_mode = self
            .work
            .pieces
            .values()
            .any(|p| p.copy_id == copy_id && p.backup_dest == root)
            && !self
                .work
                .archive_copies
                .values()
                .any(|c| c.copy_id == copy_id);
        if piece_mode {
            return Err(refuse(
                Code::NotSupported,
                "backup archive log in piece data directory is not supported (this destination holds piece copies)",
            ));
        }
        let mut touched = Vec::new();
        let mut jobs = Vec::new();
        for t in self.user_tenants(tenants)? {
            let Some(round) = self.current_round(t).cloned() else {
                continue;
            };
            let existing = self.work.archive_copies.get(&(t, copy_id)).cloned();
            if existing
                .as_ref()
                .is_some_and(|c| c.status == CopyArchiveStatus::Doing)
            {
                continue;
            }
            let dst = self.copy_tenant_dest(&round.dest, &uri);
            let job_id = self.new_job(t, JobKind::ArchiveCopy { copy_id }, now);
            let spec = TaskSpec::ArchiveCopy {
                src: round.dest.clone(),
                dst: dst.clone(),
                copy_id,
            };
            let task = self.new_task(job_id, t, spec, 0, now);
            touched.extend([Touched::Job(job_id), Touched::Task(task)]);
            jobs.push(job_id);
            let record = match existing {
                Some(mut c) => {
                    c.status = CopyArchiveStatus::Doing;
                    c.job_id = job_id;
                    c.comment.clear();
                    c
                }
                None => ArchiveCopyRecord {
                    tenant_id: t,
                    copy_id,
                    status: CopyArchiveStatus::Doing,
                    job_id,
                    round_id: round.round_id,
                    start_scn: Scn(0),
                    checkpoint_scn: Scn(0),
                    start_time_ms: now,
                    checkpoint_time_ms: 0,
                    output_bytes: 0,
                    lag_ms: 0,
                    dest: dst,
                    comment: String::new(),
                },
            };
            self.work.archive_copies.insert((t, copy_id), record);
            touched.push(Touched::ArchiveCopy(t, copy_id));
        }
        Ok((Reply::Jobs(jobs), touched))
    }

    /// `ALTER SYSTEM STOP BACKUP ARCHIVELOG`: PAUSED at once; the follower writes its
    /// last consistent checkpoint and ends (heartbeat action `stop`).
    pub(crate) fn stop_archive_copy(&mut self, tenants: &[String], now: u64) -> Outcome {
        let touched = self.pause_archive_copies(tenants, now)?;
        Ok((Reply::Done, touched))
    }

    fn pause_archive_copies(
        &mut self,
        tenants: &[String],
        now: u64,
    ) -> Result<Vec<Touched>, (Code, String)> {
        let scope: Vec<TenantId> = if tenants.is_empty() {
            vec![]
        } else {
            self.user_tenants(tenants)?
        };
        let mut touched = Vec::new();
        let mut jobs = Vec::new();
        for c in self.work.archive_copies.values_mut().filter(|c| {
            c.status == CopyArchiveStatus::Doing
                && (scope.is_empty() || scope.contains(&c.tenant_id))
        }) {
            c.status = CopyArchiveStatus::Paused;
            touched.push(Touched::ArchiveCopy(c.tenant_id, c.copy_id));
            jobs.push(c.job_id);
        }
        for job_id in jobs {
            // A follower that never started has nothing to finish.
            let mut pending = false;
            for t in self
                .work
                .tasks
                .values_mut()
                .filter(|t| t.job_id == job_id && t.status == TaskStatus::Pending)
            {
                t.status = TaskStatus::Canceled;
                t.update_time_ms = now;
                touched.push(Touched::Task(t.task_id));
                pending = true;
            }
            if pending || self.running_tasks(job_id) == 0 {
                touched.extend(self.finalize_job(job_id, now));
            }
        }
        Ok(touched)
    }

    /// A checkpoint of the continuous archive copy (fenced by the caller).
    pub(crate) fn copy_checkpoint(
        &mut self,
        tenant: TenantId,
        spec: &TaskSpec,
        p: &CopyProgress,
        now: u64,
    ) -> Vec<Touched> {
        let TaskSpec::ArchiveCopy { dst, copy_id, .. } = spec else {
            return vec![];
        };
        let mut touched = self.upsert_piece_copy(
            tenant,
            p.round_id,
            p.piece_id,
            *copy_id,
            dst,
            p.start_scn,
            p.checkpoint_scn,
            p.frozen,
            now,
        );
        if let Some(c) = self.work.archive_copies.get_mut(&(tenant, *copy_id)) {
            if c.checkpoint_time_ms == 0 {
                c.start_scn = p.start_scn;
            }
            if (p.round_id, p.checkpoint_scn) >= (c.round_id, c.checkpoint_scn) {
                c.round_id = p.round_id;
                c.checkpoint_scn = p.checkpoint_scn;
            }
            c.checkpoint_time_ms = now;
            c.output_bytes += p.bytes;
            c.lag_ms = p.lag_ms;
            c.comment.clear();
            touched.push(Touched::ArchiveCopy(tenant, *copy_id));
        }
        touched
    }

    /// Whether the job of a running task wants it to stop, and how
    /// (`cancel`, `suspend`, `stop`), or (`checkpoint`) an archive task to commit a
    /// checkpoint at once, for the heartbeat.
    pub fn task_control(&self, task_id: u64) -> Option<&'static str> {
        let t = self.work.tasks.get(&task_id)?;
        let job = self.work.jobs.get(&t.job_id)?;
        match (&job.kind, job.status) {
            (_, JobStatus::Canceling) => Some("cancel"),
            (_, JobStatus::Suspended) => Some("suspend"),
            // A finished data backup waits for its log: commit a checkpoint now.
            (JobKind::Archive { .. }, JobStatus::Doing) => {
                self.backup_waits_for_log(t.tenant_id).map(|_| "checkpoint")
            }
            (JobKind::ArchiveCopy { copy_id }, _) => self
                .work
                .archive_copies
                .get(&(t.tenant_id, *copy_id))
                .is_some_and(|c| c.status == CopyArchiveStatus::Paused || c.job_id != t.job_id)
                .then_some("stop"),
            _ => None,
        }
    }

    fn policy_tenant(&self, tenant: Option<&str>) -> Result<TenantId, (Code, String)> {
        match tenant {
            None => Ok(TenantId::SYS),
            Some(n) => self.tenant_id(n),
        }
    }

    /// `backstop ctl policy set`: schedules and secondary backup for a tenant or the
    /// cluster. Turning secondary backup off stops its backup-of-backup work as the
    /// SQL statements do.
    pub(crate) fn set_policy(
        &mut self,
        tenant: Option<&str>,
        full_interval_ms: u64,
        incremental_interval_ms: u64,
        secondary: bool,
        now: u64,
    ) -> Outcome {
        let tenant_id = self.policy_tenant(tenant)?;
        let was_secondary = self
            .work
            .policies
            .get(&tenant_id)
            .is_some_and(|p| p.secondary);
        self.work.policies.insert(
            tenant_id,
            PolicyRecord {
                tenant_id,
                full_interval_ms,
                incremental_interval_ms,
                secondary,
                update_time_ms: now,
            },
        );
        let mut touched = vec![Touched::Policy(tenant_id)];
        if was_secondary && !secondary {
            touched.extend(self.stop_secondary(tenant_id, now)?);
        }
        Ok((Reply::Done, touched))
    }

    /// `backstop ctl policy drop`.
    pub(crate) fn drop_policy(&mut self, tenant: Option<&str>, now: u64) -> Outcome {
        let tenant_id = self.policy_tenant(tenant)?;
        let Some(old) = self.work.policies.remove(&tenant_id) else {
            return Ok((Reply::Dropped(false), vec![]));
        };
        let mut touched = vec![Touched::Policy(tenant_id)];
        if old.secondary {
            touched.extend(self.stop_secondary(tenant_id, now)?);
        }
        Ok((Reply::Dropped(true), touched))
    }

    /// Secondary backup off for a policy's scope: its copy jobs are cancelled
    /// (`CANCEL BACKUP BACKUPSET` / `BACKUPPIECE`) and its archive copy paused
    /// (`STOP BACKUP ARCHIVELOG`).
    fn stop_secondary(
        &mut self,
        tenant_id: TenantId,
        now: u64,
    ) -> Result<Vec<Touched>, (Code, String)> {
        let jobs: Vec<JobId> = self
            .work
            .jobs
            .values()
            .filter(|j| {
                matches!(
                    j.status,
                    JobStatus::Doing | JobStatus::Schedule | JobStatus::Suspended
                )
            })
            .filter(|j| matches!(j.kind, JobKind::SetCopy { .. } | JobKind::PieceCopy { .. }))
            .filter(|j| tenant_id == TenantId::SYS || j.tenant_id == tenant_id)
            .map(|j| j.job_id)
            .collect();
        let mut touched = Vec::new();
        for id in jobs {
            touched.extend(self.end_job_early(
                id,
                Code::Canceled.name(),
                "canceled: secondary backup turned off by policy",
                now,
            ));
        }
        let names: Vec<String> = if tenant_id == TenantId::SYS {
            vec![]
        } else {
            self.tenants
                .get(&tenant_id)
                .map(|t| vec![t.name.clone()])
                .unwrap_or_default()
        };
        touched.extend(self.pause_archive_copies(&names, now)?);
        Ok(touched)
    }

    /// Whether a pending task may be handed out now.
    pub(crate) fn task_runnable(&self, task_id: u64) -> bool {
        let Some(t) = self.work.tasks.get(&task_id) else {
            return false;
        };
        let Some(job) = self.work.jobs.get(&t.job_id) else {
            return false;
        };
        if !matches!(job.status, JobStatus::Doing | JobStatus::Cleaning) {
            return false;
        }
        // One follower per copy destination at a time: a paused one finishes first.
        if let TaskSpec::ArchiveCopy { copy_id, .. } = &t.spec {
            let busy = self.work.tasks.values().any(|o| {
                o.task_id != task_id
                    && o.tenant_id == t.tenant_id
                    && o.status == TaskStatus::Running
                    && matches!(&o.spec, TaskSpec::ArchiveCopy { copy_id: c, .. } if c == copy_id)
            });
            return !busy;
        }
        true
    }
}
