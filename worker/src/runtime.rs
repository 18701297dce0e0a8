//! The worker process: registers with the meta leader, heartbeats its running
//! attempts (progress in, cancel/stop out), acquires tasks while it has free slots,
//! runs each in its own task with a cancellation token, and reports the outcome.
//!
//! Self-fencing: if no heartbeat succeeds for a whole lease, every running attempt
//! is aborted, because the leader has given (or will give) those tasks to another
//! worker and this one must not keep writing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use backstop_common::codec::{decode, encode};
use backstop_common::task::{Assignment, TaskOutcome, TaskSpec};
use backstop_proto::worker::{
    AcquireTaskRequest, HeartbeatRequest, RegisterWorkerRequest, ReportTaskRequest, TaskProgress,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, warn};

use crate::archive::{ArchiveArgs, run_archive};
use crate::backup::{self, CopyArgs, FinalizeArgs};
use crate::client::MetaClient;
use crate::ctx::{Progress, TaskCtx};
use crate::error::{Result, WorkerError};
use crate::storage::TenantStore;
use crate::validate::validate_set;

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Meta member addresses.
    pub meta: Vec<String>,
    /// Directory for the worker id (created if missing).
    pub data_dir: PathBuf,
    /// Concurrent tasks (RMAN channels).
    pub slots: u32,
    /// Tenants whose sources this worker can read; empty = all.
    pub tenants: Vec<String>,
    /// Shown in task views.
    pub addr: String,
}

/// Reads the worker id from `DIR/worker_id`, creating a random one the first time.
pub fn worker_id(dir: &std::path::Path) -> Result<u64> {
    std::fs::create_dir_all(dir)
        .map_err(|e| WorkerError::Invalid(format!("{}: {e}", dir.display())))?;
    let path = dir.join("worker_id");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return text.trim().parse().map_err(|_| {
            WorkerError::Invalid(format!("{} does not hold a worker id", path.display()))
        });
    }
    let id = (rand::random::<u64>() >> 1).max(1);
    std::fs::write(&path, id.to_string())
        .map_err(|e| WorkerError::Invalid(format!("{}: {e}", path.display())))?;
    Ok(id)
}

/// How often an idle slot asks for work (heartbeats go out every `heartbeat_ms`).
const POLL: Duration = Duration::from_millis(200);

struct Running {
    attempt: u32,
    abort: CancellationToken,
    stop: CancellationToken,
    progress: Arc<Progress>,
}

/// Runs a worker until `shutdown` fires.
pub async fn run_worker(config: WorkerConfig, shutdown: CancellationToken) -> Result<()> {
    let worker_id = worker_id(&config.data_dir)?;
    let client = MetaClient::new(config.meta.clone());
    let reg = loop {
        let req = RegisterWorkerRequest {
            worker_id,
            addr: config.addr.clone(),
            slots: config.slots.max(1),
            tenants: config.tenants.clone(),
        };
        match client
            .call(|mut c| {
                let r = req.clone();
                async move { c.register_worker(r).await }
            })
            .await
        {
            Ok(r) => break r,
            Err(e) => {
                warn!(error = %e, "register with meta");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    let lease = Duration::from_millis(reg.lease_ms.max(100));
    let beat = Duration::from_millis(reg.heartbeat_ms.max(20));
    info!(
        worker_id,
        slots = config.slots,
        lease_ms = reg.lease_ms,
        "worker registered"
    );
    let mut running: HashMap<u64, Running> = HashMap::new();
    let mut tasks: JoinSet<(u64, u32)> = JoinSet::new();
    let mut spawned: HashMap<tokio::task::Id, (u64, u32)> = HashMap::new();
    // When the last successful heartbeat was *sent*: the leader's lease runs from
    // when it *received* it, so fencing ourselves at 3/4 of the lease from the send
    // stops this worker before the leader can hand its tasks to another one.
    let mut last_ok_sent = Instant::now();
    let fence_after = lease * 3 / 4;
    let mut last_beat_at = Instant::now()
        .checked_sub(beat)
        .unwrap_or_else(Instant::now);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(done) = tasks.join_next_with_id() => {
                let finished = match done {
                    Ok((id, key)) => spawned.remove(&id).or(Some(key)),
                    Err(e) => {
                        warn!(error = %e, "a task ended abnormally; its lease will expire and it will be retried");
                        spawned.remove(&e.id())
                    }
                };
                // Only forget the attempt that ended: a newer attempt of the same task
                // may already run here.
                if let Some((task_id, attempt)) = finished
                    && running.get(&task_id).is_some_and(|r| r.attempt == attempt)
                {
                    running.remove(&task_id);
                }
                continue;
            }
            _ = tokio::time::sleep(POLL.min(beat)) => {}
        }
        if last_beat_at.elapsed() >= beat {
            last_beat_at = Instant::now();
            let req = HeartbeatRequest {
                worker_id,
                tasks: running
                    .iter()
                    .map(|(id, r)| TaskProgress {
                        task_id: *id,
                        attempt: r.attempt,
                        bytes_done: r.progress.done.load(Ordering::Relaxed),
                        bytes_total: r.progress.total.load(Ordering::Relaxed),
                    })
                    .collect(),
            };
            let sent = Instant::now();
            let call = client.call(|mut c| {
                let r = req.clone();
                async move { c.heartbeat(r).await }
            });
            let result = match tokio::time::timeout(lease / 4, call).await {
                Ok(r) => r,
                Err(_) => Err(WorkerError::Meta("heartbeat timed out".into())),
            };
            match result {
                Ok(resp) => {
                    last_ok_sent = sent;
                    for control in resp.tasks {
                        let Some(r) = running.get(&control.task_id) else {
                            continue;
                        };
                        match control.action.as_str() {
                            "abort" => {
                                warn!(task_id = control.task_id, reason = %control.reason, "aborting task");
                                r.abort.cancel();
                            }
                            "stop" => r.stop.cancel(),
                            _ => {}
                        }
                    }
                }
                Err(e) => {
                    if last_ok_sent.elapsed() > fence_after && !running.is_empty() {
                        warn!(error = %e, "no heartbeat within the lease: aborting every running task");
                        for r in running.values() {
                            r.abort.cancel();
                        }
                    }
                    continue;
                }
            }
        }
        let free = (config.slots as usize).saturating_sub(running.len());
        if free == 0 {
            continue;
        }
        let req = AcquireTaskRequest {
            worker_id,
            free_slots: free as u32,
        };
        let acquired = match client
            .call(|mut c| {
                let r = req;
                async move { c.acquire_task(r).await }
            })
            .await
        {
            Ok(r) => r.assignments,
            Err(_) => continue,
        };
        for bytes in acquired {
            let a: Assignment = match decode(&bytes) {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "undecodable assignment");
                    continue;
                }
            };
            let ctx = TaskCtx {
                client: client.clone(),
                worker_id,
                task_id: a.task_id,
                attempt: a.attempt,
                abort: shutdown.child_token(),
                stop: CancellationToken::new(),
                progress: Arc::new(Progress::default()),
            };
            running.insert(
                a.task_id,
                Running {
                    attempt: a.attempt,
                    abort: ctx.abort.clone(),
                    stop: ctx.stop.clone(),
                    progress: ctx.progress.clone(),
                },
            );
            let span = tracing::info_span!("task", task_id = a.task_id, attempt = a.attempt, tenant_id = %a.tenant_id, job_id = %a.job_id, kind = a.spec.kind());
            let key = (a.task_id, a.attempt);
            let handle = tasks.spawn(execute(ctx, a).instrument(span));
            spawned.insert(handle.id(), key);
        }
    }
    for r in running.values() {
        r.abort.cancel();
    }
    let deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(deadline);
    while !tasks.is_empty() {
        tokio::select! {
            _ = &mut deadline => { tasks.abort_all(); break; }
            _ = tasks.join_next() => {}
        }
    }
    info!(worker_id, "worker stopped");
    Ok(())
}

async fn execute(ctx: TaskCtx, a: Assignment) -> (u64, u32) {
    let is_archive = matches!(a.spec, TaskSpec::Archive { .. });
    info!("task started");
    let outcome = match run_spec(&ctx, a.spec).await {
        Ok(o) => o,
        Err(WorkerError::Cancelled) | Err(WorkerError::Stale(_)) => {
            info!("task stopped without reporting (cancelled or fenced)");
            return (a.task_id, a.attempt);
        }
        Err(e) => {
            warn!(error = %e, "task failed");
            if is_archive && e.is_retryable() {
                // Do not spin: the archive task comes straight back to a worker.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            TaskOutcome::Failed {
                reason: e.to_string(),
                retryable: e.is_retryable(),
            }
        }
    };
    if let Err(e) = report(&ctx, &outcome).await {
        warn!(error = %e, "could not report the task outcome; the lease will expire and the task will be retried");
    } else {
        info!("task reported");
    }
    (a.task_id, a.attempt)
}

async fn report(ctx: &TaskCtx, outcome: &TaskOutcome) -> Result<()> {
    let bytes = encode(outcome).map_err(|e| WorkerError::Invalid(e.to_string()))?;
    let req = ReportTaskRequest {
        task_id: ctx.task_id,
        attempt: ctx.attempt,
        worker_id: ctx.worker_id,
        outcome: bytes,
    };
    ctx.client
        .call(|mut c| {
            let r = req.clone();
            async move { c.report_task(r).await }
        })
        .await
        .map(|_| ())
}

async fn run_spec(ctx: &TaskCtx, spec: TaskSpec) -> Result<TaskOutcome> {
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
        } => {
            let args = crate::restore::RestoreArgs {
                dest: dest_uri,
                tenant,
                to: to.into(),
                until_scn,
                until_time_ms: None,
                backup_set,
            };
            let info = crate::restore::restore(&args, &ctx.abort).await?;
            Ok(TaskOutcome::Restored {
                backup_set_id: info.backup_set_id,
                until_scn: backstop_common::Scn(info.until_scn),
                data_bytes: info.data_bytes,
            })
        }
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
    }
}
