//! The worker process: registers with the meta leader, heartbeats its running
//! attempts (progress in, cancel/stop out), acquires tasks while it has free slots,
//! runs each in its own task with a cancellation token, and reports the outcome.
//!
//! Self-fencing: if no heartbeat succeeds for a whole lease, every running attempt
//! is aborted, because the leader has given (or will give) those tasks to another
//! worker and this one must not keep writing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backstop_common::codec::{decode, encode};
use backstop_common::task::{Assignment, TaskOutcome, TaskSpec};
use backstop_proto::worker::{
    AcquireTaskRequest, HeartbeatRequest, RegisterWorkerRequest, ReportTaskRequest, TaskProgress,
};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, warn};

use crate::archive::{ArchiveArgs, run_archive};
use crate::backup::{self, CopyArgs, FinalizeArgs};
use crate::client::MetaClient;
use crate::copy;
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
    /// Bytes per second of each copy task (0 = unlimited).
    pub copy_rate: u64,
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

/// Why an attempt was stopped by its job (heartbeat actions `cancel`, `suspend`).
const ENDED_BY_NONE: u8 = 0;
const ENDED_BY_CANCEL: u8 = 1;
const ENDED_BY_SUSPEND: u8 = 2;

struct Running {
    attempt: u32,
    /// A follower (archive, continuous archive copy): mostly idle and never ending on
    /// its own, so it does not take one of the worker's slots.
    follower: bool,
    abort: CancellationToken,
    stop: CancellationToken,
    ended_by: Arc<AtomicU8>,
    progress: Arc<Progress>,
}

type RunningMap = Arc<Mutex<HashMap<u64, Running>>>;

fn lock(running: &RunningMap) -> std::sync::MutexGuard<'_, HashMap<u64, Running>> {
    // A panic while holding this lock cannot leave the map inconsistent (every
    // critical section is a single insert, remove or read), so a poisoned lock is
    // still usable.
    running.lock().unwrap_or_else(|p| p.into_inner())
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
    let running: RunningMap = Arc::new(Mutex::new(HashMap::new()));
    let changed = Arc::new(Notify::new());
    let beats = tokio::spawn(heartbeat_loop(
        client.clone(),
        worker_id,
        running.clone(),
        changed.clone(),
        lease,
        beat,
        shutdown.clone(),
    ));
    let mut tasks: JoinSet<(u64, u32)> = JoinSet::new();
    let mut spawned: HashMap<tokio::task::Id, (u64, u32)> = HashMap::new();
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
                if let Some((task_id, attempt)) = finished {
                    let mut map = lock(&running);
                    if map.get(&task_id).is_some_and(|r| r.attempt == attempt) {
                        map.remove(&task_id);
                    }
                }
                changed.notify_one();
                continue;
            }
            _ = tokio::time::sleep(POLL) => {}
        }
        // Followers do not count: a worker with 2 slots archiving and copying the
        // archive must still take backups.
        let busy = lock(&running).values().filter(|r| !r.follower).count();
        let free = (config.slots as usize).saturating_sub(busy);
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
                copy_rate: config.copy_rate,
            };
            let ended_by = Arc::new(AtomicU8::new(ENDED_BY_NONE));
            lock(&running).insert(
                a.task_id,
                Running {
                    attempt: a.attempt,
                    follower: matches!(
                        a.spec,
                        TaskSpec::Archive { .. } | TaskSpec::ArchiveCopy { .. }
                    ),
                    abort: ctx.abort.clone(),
                    stop: ctx.stop.clone(),
                    ended_by: ended_by.clone(),
                    progress: ctx.progress.clone(),
                },
            );
            let span = tracing::info_span!("task", task_id = a.task_id, attempt = a.attempt, tenant_id = %a.tenant_id, job_id = %a.job_id, kind = a.spec.kind());
            let key = (a.task_id, a.attempt);
            let handle = tasks.spawn(execute(ctx, a, ended_by).instrument(span));
            spawned.insert(handle.id(), key);
        }
        changed.notify_one();
    }
    for r in lock(&running).values() {
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
    beats.abort();
    info!(worker_id, "worker stopped");
    Ok(())
}

/// Heartbeats the running attempts: each call renews their leases and is a long poll
/// (up to one heartbeat interval) that answers at once when a job asks one of them
/// to stop, so a cancel reaches the attempt within milliseconds. A call is re-issued
/// when the set of running attempts changes.
///
/// Self-fencing: if no heartbeat succeeds for 3/4 of a lease (counted from when the
/// last successful one was *sent*; the leader counts from when it received it),
/// every running attempt is aborted before the leader can hand its task to another
/// worker.
async fn heartbeat_loop(
    client: Arc<MetaClient>,
    worker_id: u64,
    running: RunningMap,
    changed: Arc<Notify>,
    lease: Duration,
    beat: Duration,
    shutdown: CancellationToken,
) {
    let mut last_ok_sent = Instant::now();
    let fence_after = lease * 3 / 4;
    loop {
        let tasks: Vec<TaskProgress> = lock(&running)
            .iter()
            .map(|(id, r)| TaskProgress {
                task_id: *id,
                attempt: r.attempt,
                bytes_done: r.progress.done.load(Ordering::Relaxed),
                bytes_total: r.progress.total.load(Ordering::Relaxed),
            })
            .collect();
        if tasks.is_empty() {
            last_ok_sent = Instant::now();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = changed.notified() => {}
                _ = tokio::time::sleep(beat) => {}
            }
            continue;
        }
        let req = HeartbeatRequest {
            worker_id,
            tasks,
            wait_ms: beat.as_millis() as u64,
        };
        let sent = Instant::now();
        let call = client.call(|mut c| {
            let r = req.clone();
            async move { c.heartbeat(r).await }
        });
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            // New or ended attempts: ask again with the new set (the leases of the
            // others were renewed when this call was sent).
            _ = changed.notified() => continue,
            r = tokio::time::timeout(beat + lease / 4, call) => match r {
                Ok(r) => r,
                Err(_) => Err(WorkerError::Meta("heartbeat timed out".into())),
            },
        };
        match result {
            Ok(resp) => {
                last_ok_sent = sent;
                let map = lock(&running);
                for control in resp.tasks {
                    let Some(r) = map.get(&control.task_id) else {
                        continue;
                    };
                    if r.attempt != control.attempt {
                        continue;
                    }
                    match control.action.as_str() {
                        "abort" => {
                            warn!(task_id = control.task_id, reason = %control.reason, "aborting task");
                            r.abort.cancel();
                        }
                        "cancel" => {
                            info!(
                                task_id = control.task_id,
                                "job cancelled: stopping the task"
                            );
                            r.ended_by.store(ENDED_BY_CANCEL, Ordering::SeqCst);
                            r.abort.cancel();
                        }
                        "suspend" => {
                            info!(
                                task_id = control.task_id,
                                "job suspended: stopping the task"
                            );
                            r.ended_by.store(ENDED_BY_SUSPEND, Ordering::SeqCst);
                            r.abort.cancel();
                        }
                        "stop" => r.stop.cancel(),
                        _ => {}
                    }
                }
            }
            Err(e) => {
                if last_ok_sent.elapsed() > fence_after {
                    let map = lock(&running);
                    if !map.is_empty() {
                        warn!(error = %e, "no heartbeat within the lease: aborting every running task");
                        for r in map.values() {
                            r.abort.cancel();
                        }
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        }
    }
}

async fn execute(ctx: TaskCtx, a: Assignment, ended_by: Arc<AtomicU8>) -> (u64, u32) {
    let is_follower = matches!(
        a.spec,
        TaskSpec::Archive { .. } | TaskSpec::ArchiveCopy { .. }
    );
    info!("task started");
    let outcome = match run_spec(&ctx, a.spec).await {
        Ok(o) => o,
        Err(WorkerError::Cancelled) | Err(WorkerError::Stale(_)) => {
            match ended_by.load(Ordering::SeqCst) {
                ENDED_BY_CANCEL => TaskOutcome::Canceled,
                ENDED_BY_SUSPEND => TaskOutcome::Suspended,
                _ => {
                    info!("task stopped without reporting (cancelled or fenced)");
                    return (a.task_id, a.attempt);
                }
            }
        }
        Err(e) => {
            warn!(error = %e, "task failed");
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
    if let Err(e) = report(&ctx, &outcome).await {
        warn!(error = %e, "could not report the task outcome; the lease will expire and the task will be retried");
    } else {
        info!("task reported");
    }
    (a.task_id, a.attempt)
}

async fn report(ctx: &TaskCtx, outcome: &TaskOutcome) -> Result<()> {
    backstop_common::failpoint!("task::before_commit", WorkerError::Meta);
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
