//! The worker process: registers with the meta leader, heartbeats its running
//! attempts (progress in, cancel/stop out), acquires tasks while it has free slots,
//! runs each in its own task with a cancellation token, and reports the outcome.
//!
//! Self-fencing: an attempt none of whose heartbeats succeeded for 3/4 of a lease
//! (counted from when the last good one was sent) is aborted by a timer, and every
//! write of a shared key checks the same deadline first
//! ([`TaskCtx::check_fence`]), because the leader gives the task to another worker
//! once the lease runs out and this one must have stopped writing by then.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backstop_common::codec::{decode, encode};
use backstop_common::task::{Assignment, TaskOutcome, TaskSpec};
use backstop_proto::worker::{
    AcquireTaskRequest, HeartbeatRequest, RegisterWorkerRequest, ReportTaskRequest, TaskAction,
    TaskControl, TaskProgress,
};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, warn};

use crate::archive::{ArchiveArgs, run_archive};
use crate::backup::{self, CopyArgs, FinalizeArgs};
use crate::client::MetaClient;
use crate::copy;
use crate::ctx::{AttemptLease, Progress, TaskCtx};
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

/// How long after the last successful heartbeat was sent an attempt stops writing:
/// 3/4 of the lease, leaving a quarter (and at least 50 ms) for writes in flight and
/// clock-rate differences before the leader can reassign the task.
pub fn fence_after(lease: Duration) -> Duration {
    (lease * 3 / 4).min(lease.saturating_sub(Duration::from_millis(50)))
}

/// Why an attempt was stopped by its job: the heartbeat's `TASK_ACTION_CANCEL` or
/// `TASK_ACTION_SUSPEND`, reported as `TaskOutcome::Canceled` / `Suspended`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum EndedBy {
    /// Not by its job: a lost lease or shutdown; nothing is reported.
    Nothing = 0,
    /// The job was cancelled.
    Cancel = 1,
    /// The job was suspended.
    Suspend = 2,
}

/// An [`EndedBy`] shared by the heartbeat loop and the running attempt.
#[derive(Debug, Default)]
struct EndedByCell(AtomicU8);

impl EndedByCell {
    fn set(&self, why: EndedBy) {
        self.0.store(why as u8, Ordering::SeqCst);
    }

    fn get(&self) -> EndedBy {
        match self.0.load(Ordering::SeqCst) {
            1 => EndedBy::Cancel,
            2 => EndedBy::Suspend,
            _ => EndedBy::Nothing,
        }
    }
}

struct Running {
    attempt: u32,
    /// A follower (archive, continuous archive copy): mostly idle and never ending on
    /// its own, so it does not take one of the worker's slots.
    follower: bool,
    abort: CancellationToken,
    stop: CancellationToken,
    ended_by: Arc<EndedByCell>,
    progress: Arc<Progress>,
    lease: Arc<AttemptLease>,
    checkpoint_now: Arc<AtomicBool>,
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
            .worker(|mut c| {
                let r = req.clone();
                async move { c.register_worker(r).await }
            })
            .await
            .map_err(WorkerError::from)
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
    let fence_after = fence_after(lease);
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
        // The leader grants the leases after it receives this call.
        let granted = Instant::now();
        let acquired = match client
            .worker(|mut c| {
                let r = req;
                async move { c.acquire_task(r).await }
            })
            .await
            .map_err(WorkerError::from)
        {
            Ok(r) => r.assignments,
            Err(_) => continue,
        };
        // Only a new attempt changes what the heartbeat carries: waking it for nothing
        // would abandon its outstanding call every poll, and no renewal would ever
        // come back (the timer fence would then abort every long task).
        let new_attempts = !acquired.is_empty();
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
                lease: Arc::new(AttemptLease::new(granted, fence_after)),
                checkpoint_now: Arc::new(AtomicBool::new(false)),
            };
            let ended_by = Arc::new(EndedByCell::default());
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
                    lease: ctx.lease.clone(),
                    checkpoint_now: ctx.checkpoint_now.clone(),
                },
            );
            let span = tracing::info_span!("task", task_id = a.task_id, attempt = a.attempt, tenant_id = %a.tenant_id, job_id = %a.job_id, kind = a.spec.kind());
            let key = (a.task_id, a.attempt);
            let handle = tasks.spawn(execute(ctx, a, ended_by).instrument(span));
            spawned.insert(handle.id(), key);
        }
        if new_attempts {
            changed.notify_one();
        }
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
/// Self-fencing is timer-driven: an attempt is aborted as soon as `fence_after` has
/// passed since the last successful heartbeat that included it was *sent* (the
/// leader counts its lease from when it received that heartbeat), even while a call
/// is still outstanding, so the attempt stops before the leader can hand its task to
/// another worker.
async fn heartbeat_loop(
    client: Arc<MetaClient>,
    worker_id: u64,
    running: RunningMap,
    changed: Arc<Notify>,
    lease: Duration,
    beat: Duration,
    shutdown: CancellationToken,
) {
    loop {
        fence_expired(&running, Instant::now());
        let fence_at = next_fence(&running);
        let (tasks, leases): (Vec<TaskProgress>, Vec<Arc<AttemptLease>>) = lock(&running)
            .iter()
            .map(|(id, r)| {
                (
                    TaskProgress {
                        task_id: *id,
                        attempt: r.attempt,
                        bytes_done: r.progress.done.load(Ordering::Relaxed),
                        bytes_total: r.progress.total.load(Ordering::Relaxed),
                    },
                    r.lease.clone(),
                )
            })
            .unzip();
        if tasks.is_empty() {
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
        let call = client.worker(|mut c| {
            let r = req.clone();
            async move { c.heartbeat(r).await }
        });
        let call = tokio::time::timeout(beat + lease / 4, call);
        tokio::pin!(call);
        let result = loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                // New or ended attempts: the next call carries the new set. This one
                // is not abandoned (a long poll answers within a beat): abandoning
                // calls whenever tasks start or end would starve every lease of its
                // renewals, and the fence would abort them all.
                _ = changed.notified() => {}
                // A lease runs out while the call is outstanding: fence at once (the
                // next turn of the loop aborts what expired and asks again).
                _ = sleep_until_some(fence_at) => break None,
                r = &mut call => break Some(match r {
                    Ok(r) => r.map_err(WorkerError::from),
                    Err(_) => Err(WorkerError::Meta("heartbeat timed out".into())),
                }),
            }
        };
        let Some(result) = result else { continue };
        match result {
            Ok(resp) => {
                for l in &leases {
                    l.renew(sent);
                }
                apply_controls(&running, resp.tasks);
            }
            Err(e) => {
                debug!(error = %e, "heartbeat failed");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = sleep_until_some(next_fence(&running)) => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        }
    }
}

/// Carries out the leader's answer for each running attempt.
fn apply_controls(running: &RunningMap, controls: Vec<TaskControl>) {
    let map = lock(running);
    for control in controls {
        let Some(r) = map.get(&control.task_id) else {
            continue;
        };
        if r.attempt != control.attempt {
            continue;
        }
        match control.action() {
            TaskAction::Abort => {
                warn!(task_id = control.task_id, reason = %control.reason, "aborting task");
                r.abort.cancel();
            }
            TaskAction::Cancel => {
                info!(
                    task_id = control.task_id,
                    "job cancelled: stopping the task"
                );
                r.ended_by.set(EndedBy::Cancel);
                r.abort.cancel();
            }
            TaskAction::Suspend => {
                info!(
                    task_id = control.task_id,
                    "job suspended: stopping the task"
                );
                r.ended_by.set(EndedBy::Suspend);
                r.abort.cancel();
            }
            TaskAction::Stop => r.stop.cancel(),
            // A finished backup waits for the archive to cover it: commit what is
            // read now. Never stops or aborts the task.
            TaskAction::Checkpoint => r.checkpoint_now.store(true, Ordering::SeqCst),
            TaskAction::Continue => {}
        }
    }
}

/// The earliest fence deadline of the attempts not aborted yet.
fn next_fence(running: &RunningMap) -> Option<Instant> {
    lock(running)
        .values()
        .filter(|r| !r.abort.is_cancelled())
        .map(|r| r.lease.deadline())
        .min()
}

/// Aborts every attempt whose lease may be gone at `now`.
fn fence_expired(running: &RunningMap, now: Instant) {
    for (task_id, r) in lock(running).iter() {
        if !r.abort.is_cancelled() && !r.lease.held_at(now) {
            warn!(
                task_id,
                attempt = r.attempt,
                "no heartbeat within the fence time: aborting the task before its lease can move"
            );
            r.abort.cancel();
        }
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn execute(ctx: TaskCtx, a: Assignment, ended_by: Arc<EndedByCell>) -> (u64, u32) {
    let is_follower = matches!(
        a.spec,
        TaskSpec::Archive { .. } | TaskSpec::ArchiveCopy { .. }
    );
    info!("task started");
    let outcome = match run_spec(&ctx, a.spec).await {
        Ok(o) => o,
        Err(WorkerError::Cancelled) | Err(WorkerError::Stale(_)) => match ended_by.get() {
            EndedBy::Cancel => TaskOutcome::Canceled,
            EndedBy::Suspend => TaskOutcome::Suspended,
            EndedBy::Nothing => {
                info!("task stopped without reporting (cancelled or fenced)");
                return (a.task_id, a.attempt);
            }
        },
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
        .worker(|mut c| {
            let r = req.clone();
            async move { c.report_task(r).await }
        })
        .await
        .map_err(WorkerError::from)
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

#[cfg(test)]
#[path = "runtime_tests.rs"]
mod tests;
