//! `ALTER SYSTEM DELETE BACKUPSET n [COPY k]` (`docs/OPERATIONS.md`;
//! OceanBase's clean type "DELETE BACKUP SET").
//!
//! ```text
//! AVAILABLE --DELETE BACKUPSET--> DELETING: the set's directory and index entry become
//!                                 a leftover; the cleaner (started by the leader's
//!                                 housekeeping within a second) deletes them
//! DELETING  --cleaner reported--> DELETED: the row stays in the catalog and the views
//!                                 (FILE_STATUS = DELETED); nothing is left at the
//!                                 destination
//! ```
//!
//! Refused, with nothing changed: an unknown set or copy (`OB_INVALID_BACKUP_SET_ID`),
//! a set not complete or already deleting (`OB_INVALID_BACKUP_SET_ID`), a set that a job
//! is writing, copying or validating (`OB_BACKUP_IN_PROGRESS`), and a set that an
//! available incremental of the same copy is based on (`OB_NOT_SUPPORTED`: delete the
//! incremental first, so no chain is ever broken).

use backstop_common::layout;
use backstop_common::task::CleanItem;
use backstop_common::{BackupSetId, CopyId};
use backstop_common::{Code, TenantId};

use super::records::{FILE_DELETED, FILE_DELETING, JobKind};
use super::{MetaState, Outcome, Touched};
use crate::command::Reply;

impl MetaState {
    /// Marks a set `DELETING` and gives it to the cleaner; see the module docs.
    pub(crate) fn delete_backup_set(
        &mut self,
        tenants: &[String],
        backup_set_id: BackupSetId,
        copy_id: CopyId,
        now: u64,
    ) -> Outcome {
        let refuse = |code: Code, message: String| Err((code, message));
        let allowed: Option<Vec<TenantId>> = if tenants.is_empty() {
            None
        } else {
            Some(
                tenants
                    .iter()
                    .map(|name| {
                        self.tenant_by_name(name)
                            .map(|t| t.tenant_id)
                            .ok_or_else(|| {
                                (
                                    Code::EntryNotExist,
                                    format!("tenant '{name}' does not exist"),
                                )
                            })
                    })
                    .collect::<Result<_, _>>()?,
            )
        };
        let Some(set) = self
            .work
            .sets
            .values()
            .find(|s| {
                s.backup_set_id == backup_set_id
                    && s.copy_id == copy_id
                    && allowed.as_ref().is_none_or(|a| a.contains(&s.tenant_id))
            })
            .cloned()
        else {
            return refuse(
                Code::InvalidBackupSetId,
                format!("backup set {backup_set_id} copy {copy_id} does not exist"),
            );
        };
        let tenant = set.tenant_id;
        if set.file_status == FILE_DELETING || set.file_status == FILE_DELETED {
            return refuse(
                Code::InvalidBackupSetId,
                format!(
                    "backup set {backup_set_id} copy {copy_id} is already {}",
                    set.file_status
                ),
            );
        }
        if let Some(job) = self.work.jobs.values().find(|j| {
            j.status.is_live()
                && j.tenant_id == tenant
                && match &j.kind {
                    JobKind::Backup {
                        backup_set_id: b, ..
                    } => *b == backup_set_id,
                    JobKind::Validate { backup_set_id: b } => *b == backup_set_id,
                    _ => false,
                }
                || (j.status.is_live()
                    && matches!(&j.kind, JobKind::SetCopy { queue, .. }
                        // A cluster-level copy job carries the sys tenant: what it
                        // queues or writes for this tenant counts.
                        if j.tenant_id == tenant
                            || queue.iter().any(|(t, _)| *t == tenant)
                            || self.work.sets.values().any(|s| s.job_id == j.job_id && s.tenant_id == tenant)))
        }) {
            return refuse(
                Code::BackupInProgress,
                format!(
                    "job {} of tenant {tenant} is writing, copying or validating backup sets; wait for it or cancel it first",
                    job.job_id
                ),
            );
        }
        if !set.usable() {
            return refuse(
                Code::InvalidBackupSetId,
                format!(
                    "backup set {backup_set_id} copy {copy_id} is {} ({}): only a complete set can be deleted; an incomplete one is cleaned when its job ends",
                    set.file_status,
                    set.status.as_str()
                ),
            );
        }
        if let Some(dependent) = self.work.sets.values().find(|s| {
            s.tenant_id == tenant
                && s.copy_id == copy_id
                && s.base_set_id == Some(backup_set_id)
                && s.file_status != FILE_DELETED
        }) {
            return refuse(
                Code::NotSupported,
                format!(
                    "incremental backup set {} (copy {copy_id}) is based on backup set {backup_set_id}; delete it first",
                    dependent.backup_set_id
                ),
            );
        }
        let key = (tenant, backup_set_id, copy_id);
        let dir = layout::set_dir(backup_set_id, set.backup_type);
        if let Some(s) = self.work.sets.get_mut(&key) {
            s.file_status = FILE_DELETING.to_string();
            s.comment = "DELETE BACKUPSET".to_string();
        }
        let mut touched = vec![Touched::Set(tenant, backup_set_id, copy_id)];
        touched.extend(self.add_leftover(
            set.dest.clone(),
            CleanItem {
                dir,
                index: Some(layout::set_index(backup_set_id)),
                keep_referenced: false,
            },
            now,
            &format!("DELETE BACKUPSET {backup_set_id} COPY {copy_id}"),
        ));
        Ok((Reply::Done, touched))
    }

    /// The cleaner deleted `dir` at `dest`: a set being deleted there is now gone.
    pub(crate) fn set_deleted(
        &mut self,
        dest: &backstop_common::task::TenantDest,
        dir: &str,
    ) -> Vec<Touched> {
        let mut touched = Vec::new();
        for s in self.work.sets.values_mut().filter(|s| {
            s.file_status == FILE_DELETING
                && super::same_place(&s.dest, dest)
                && layout::set_dir(s.backup_set_id, s.backup_type) == dir
        }) {
            s.file_status = FILE_DELETED.to_string();
            touched.push(Touched::Set(s.tenant_id, s.backup_set_id, s.copy_id));
        }
        touched
    }
}

#[cfg(test)]
#[path = "delete_tests.rs"]
mod tests;
