//! The worker process: registers with the meta leader, heartbeats its running
//! attempts (progress in, cancel/stop out), acquires tasks while it has free slots,
//! runs each in its own task with a cancellation token, and reports the outcome.
//!
//! Self-fencing: an attempt none of whose heartbeats succeeded for 3/4 of a lease
//! (counted from when the last good one was sent) is aborted by a timer, and every
//! write of a shared key checks the same deadline first
//! ([`TaskCtx::check_fence`]), because the leader gives the task to another worker
//! once the lease runs out and this one must have stopped writing by then.
//!
//! - `heartbeat.rs`: heartbeats, the leader's controls, the self-fence;
//! - `tasks.rs`: running one attempt and reporting it;
//! - this file: the worker's configuration, registration and acquire loop.

use crate::client::MetaClient;
use crate::ctx::{AttemptLease, Progress, TaskCtx};
use crate::error::{Result, WorkerError};
use backstop_common::codec::decode;
use backstop_common::task::{Assignment, TaskSpec};
use backstop_common::{TaskId, WorkerId};
use backstop_proto::worker::{AcquireTaskRequest, RegisterWorkerRequest};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, warn};

mod heartbeat;
mod tasks;

use self::heartbeat::{EndedByCell, heartbeat_loop};
use self::tasks::execute;

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
    /// TLS to the meta service (`--tls-ca/--tls-cert/--tls-key`, a `worker`
    /// certificate); `None` for plaintext to a meta node on loopback.
    pub tls: Option<backstop_client::Tls>,
    /// Run tenants' `begin_backup`/`end_backup` hook commands (`--allow-hooks`);
    /// without it a backup of a tenant with hooks fails with a clear error.
    pub allow_hooks: bool,
    /// Roots under which tasks may write `file://` destinations and restore targets
    /// (`--allow-path`); the data dir is always one.
    pub allow_paths: Vec<PathBuf>,
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

type RunningMap = Arc<Mutex<HashMap<TaskId, Running>>>;

fn lock(running: &RunningMap) -> std::sync::MutexGuard<'_, HashMap<TaskId, Running>> {
    // A panic while holding this lock cannot leave the map inconsistent (every
    // critical section is a single insert, remove or read), so a poisoned lock is
    // still usable.
    running.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs a worker until `shutdown` fires.
pub async fn run_worker(config: WorkerConfig, shutdown: CancellationToken) -> Result<()> {
    let worker_id = worker_id(&config.data_dir)?;
    let allowed_paths = Arc::new(crate::paths::AllowedPaths::new(
        std::iter::once(config.data_dir.clone()).chain(config.allow_paths.iter().cloned()),
    )?);
    info!(roots = ?allowed_paths.roots(), "file:// destinations and restore targets allowed under these roots");
    let client = MetaClient::secured(
        config.meta.clone(),
        backstop_client::Route::Leader,
        std::time::Duration::from_secs(10),
        backstop_client::Security {
            tls: config.tls.clone(),
            login: None,
        },
    );
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
        %worker_id,
        slots = config.slots,
        lease_ms = reg.lease_ms,
        "worker registered"
    );
    let running: RunningMap = Arc::new(Mutex::new(HashMap::new()));
    let changed = Arc::new(Notify::new());
    let beats = tokio::spawn(heartbeat_loop(
        client.clone(),
        WorkerId(worker_id),
        running.clone(),
        changed.clone(),
        lease,
        beat,
        shutdown.clone(),
    ));
    let mut tasks: JoinSet<(TaskId, u32)> = JoinSet::new();
    let mut spawned: HashMap<tokio::task::Id, (TaskId, u32)> = HashMap::new();
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
                worker_id: WorkerId(worker_id),
                task_id: a.task_id,
                attempt: a.attempt,
                abort: shutdown.child_token(),
                stop: CancellationToken::new(),
                progress: Arc::new(Progress::default()),
                copy_rate: config.copy_rate,
                lease: Arc::new(AttemptLease::new(granted, fence_after)),
                checkpoint_now: Arc::new(AtomicBool::new(false)),
                allow_hooks: config.allow_hooks,
                allowed_paths: allowed_paths.clone(),
            };
            let ended_by = Arc::new(EndedByCell::default());
            lock(&running).insert(
                TaskId(a.task_id.0),
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
            let span = tracing::info_span!("task", task_id = %a.task_id, attempt = a.attempt, tenant_id = %a.tenant_id, job_id = %a.job_id, kind = a.spec.kind());
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

#[cfg(test)]
mod tests;
