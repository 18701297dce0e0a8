//! One attempt of a task: run its `TaskSpec` (`run_spec`), then report the outcome,
//! or report nothing when it was stopped by a lost lease or shutdown.

use super::heartbeat::{EndedBy, EndedByCell};
use crate::archive::{ArchiveArgs, run_archive};
use crate::backup::{self, CopyArgs, FinalizeArgs};
use crate::copy;
use crate::ctx::TaskCtx;
use crate::error::{Result, WorkerError};
use crate::storage::TenantStore;
use crate::validate::validate_set;
use backstop_common::TaskId;
use backstop_common::codec::encode;
use backstop_common::task::{Assignment, TaskOutcome, TaskSpec};
use backstop_proto::worker::ReportTaskRequest;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

pub(super) async fn execute(
    ctx: TaskCtx,
    a: Assignment,
    ended_by: Arc<EndedByCell>,
) -> (TaskId, u32) {
    let is_follower = matches!(
        a.spec,
        TaskSpec::Archive { .. } | TaskSpec::ArchiveCopy { .. }
    );
    // A PostgreSQL backup's hot-backup session lives from prepare to finalize in
    // this process; a cancelled backup ends it here, so the server has no backup
    // left in progress.
    let pg_backup = match &a.spec {
        TaskSpec::BackupPrepare { source, .. }
        | TaskSpec::BackupCopy { source, .. }
        | TaskSpec::BackupFinalize { source, .. }
            if backstop_common::source::is_postgresql(source) =>
        {
            Some(source.clone())
        }
        _ => None,
    };
    info!("task started");
    let outcome = match run_spec(&ctx, a.spec).await {
        Ok(o) => o,
        Err(WorkerError::Cancelled) | Err(WorkerError::Stale(_)) => match ended_by.get() {
            EndedBy::Cancel => TaskOutcome::Canceled,
            EndedBy::Suspend => TaskOutcome::Suspended,
            EndedBy::Nothing => {
                info!("task stopped without reporting (cancelled or fenced)");
                return (TaskId(a.task_id.0), a.attempt);
            }
        },
        Err(WorkerError::BackupAborted(reason)) => {
            warn!(%reason, "the hot backup is gone; the backup starts again from its prepare");
            TaskOutcome::Restart { reason }
        }
        Err(e) => {
            if e.is_retryable() {
                warn!(error = %e, "task failed");
            } else {
                // A permanent error (a source layout that cannot work, corruption): the
                // job ends with it after bounded attempts; say so loudly.
                tracing::error!(error = %e, "task failed with a permanent error");
            }
            if is_follower && e.is_retryable() {
                // Do not spin: the follower task comes straight back to a worker.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            TaskOutcome::Failed {
                reason: e.to_string(),
                retryable: e.is_retryable(),
            }
        }
    };
    if let (Some(source), TaskOutcome::Canceled) = (&pg_backup, &outcome) {
        crate::pg::hot_backup::forget_backup(source).await;
    }
    if let Err(e) = report(&ctx, &outcome).await {
        warn!(error = %e, "could not report the task outcome; the lease will expire and the task will be retried");
    } else {
        info!("task reported");
    }
    (TaskId(a.task_id.0), a.attempt)
}

pub(super) async fn report(ctx: &TaskCtx, outcome: &TaskOutcome) -> Result<()> {
    backstop_common::failpoint!("task::before_commit", WorkerError::Meta);
    let bytes = encode(outcome).map_err(|e| WorkerError::Invalid(e.to_string()))?;
    let req = ReportTaskRequest {
        task_id: ctx.task_id.0,
        attempt: ctx.attempt,
        worker_id: ctx.worker_id.0,
        outcome: bytes,
    };
    ctx.client
        .worker(|mut c| {
            let r = req.clone();
            async move { c.report_task(r).await }
        })
        .await
        .map_err(WorkerError::from)
        .map(|_| ())
}

pub(super) async fn run_spec(ctx: &TaskCtx, spec: TaskSpec) -> Result<TaskOutcome> {
    let spec = spec.upgraded();
    ctx.allowed_paths.check_spec(&spec)?;
    match spec {
        TaskSpec::Archive {
            source,
            dest,
            round_id,
            checkpoint_scn,
            fresh,
            piece,
            freezing,
            piece_switch_interval_ms,
            checkpoint_interval_ms,
        } => {
            run_archive(
                ctx,
                ArchiveArgs {
                    source,
                    dest,
                    round_id,
                    checkpoint_scn,
                    fresh,
                    piece,
                    freezing,
                    piece_switch_interval_ms,
                    checkpoint_interval_ms,
                },
            )
            .await
        }
        TaskSpec::BackupPrepare { source, begin_hook } => {
            backup::prepare(ctx, &source, begin_hook.as_deref()).await
        }
        TaskSpec::BackupCopy {
            source,
            dest,
            backup_set_id,
            backup_type,
            base_set_id,
            part,
            files,
            compression_level,
        } => {
            backup::copy(
                ctx,
                CopyArgs {
                    source,
                    dest,
                    backup_set_id,
                    backup_type,
                    base_set_id,
                    part,
                    files,
                    compression_level,
                    seal: None,
                },
            )
            .await
        }
        TaskSpec::BackupFinalize {
            source,
            dest,
            backup_set_id,
            backup_type,
            base_set_id,
            parts,
            start_replay_scn,
            end_hook,
        } => {
            backup::finalize(
                ctx,
                FinalizeArgs {
                    source,
                    dest,
                    backup_set_id,
                    backup_type,
                    base_set_id,
                    parts,
                    start_replay_scn,
                    end_hook,
                    encryption: None,
                },
            )
            .await
        }
        TaskSpec::Restore {
            dest_uri,
            tenant,
            to,
            until_scn,
            backup_set,
            options,
        } => {
            let args = crate::restore::RestoreArgs {
                allowed_paths: Some(ctx.allowed_paths.clone()),
                ..crate::restore::RestoreArgs::new(
                    dest_uri,
                    tenant,
                    to.into(),
                    until_scn,
                    backup_set,
                    options,
                )
            };
            let info = crate::restore::restore(&args, &ctx.abort).await?;
            Ok(TaskOutcome::Restored {
                backup_set_id: info.backup_set_id,
                until_scn: backstop_common::Scn(info.until_scn),
                data_bytes: info.data_bytes,
            })
        }
        TaskSpec::RestoreV1 { .. } => Err(WorkerError::Invalid(
            "a restore task of the old shape was not upgraded".into(),
        )),
        TaskSpec::ValidateSet {
            dest,
            backup_set_id,
        } => {
            let store = TenantStore::open(&dest)?;
            let v = validate_set(&store, backup_set_id, &ctx.abort).await?;
            Ok(TaskOutcome::Validated {
                objects: v.objects,
                bad: v.bad,
            })
        }
        TaskSpec::CopySet {
            src,
            dst,
            backup_set_id,
            ..
        } => copy::copy_set(ctx, &src, &dst, backup_set_id).await,
        TaskSpec::CopyPiece {
            src,
            dst,
            round_id,
            piece_id,
            ..
        } => copy::copy_piece(ctx, &src, &dst, round_id, piece_id).await,
        TaskSpec::ArchiveCopy { src, dst, .. } => copy::archive_copy(ctx, &src, &dst).await,
        TaskSpec::Clean { dest, items } => copy::clean(ctx, &dest, &items).await,
    }
}
