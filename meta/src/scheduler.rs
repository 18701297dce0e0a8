//! The leader's soft state for running tasks (lease deadlines, latest progress) and
//! the loop that turns it into Raft commands: expired leases become `ExpireTask`,
//! progress is persisted in batches at most once per second. A new leader starts
//! every running task with a fresh lease.
//!
//! The scheduler does not know the node it runs on: it asks a [`Replica`] (which
//! `MetaNode` implements in `node/mod.rs`) whether it leads, what the local catalog
//! holds, and to propose commands. The node depends on the scheduler, not the
//! other way round.

use backstop_common::{TaskId, WorkerId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tracing::{debug, info, warn};

use crate::command::{Command, Reply, WorkCommand};
use crate::error::MetaError;
use crate::state::{MetaState, TaskStatus};

/// What the scheduler needs from the meta node it runs on.
pub trait Replica: Send + Sync + 'static {
    /// This node's id (for logs).
    fn node_id(&self) -> u64;
    /// Whether the node has begun shutting down: the loop then returns.
    fn is_shutting_down(&self) -> bool;
    /// Whether this node is the Raft leader now.
    fn leads(&self) -> impl Future<Output = bool> + Send;
    /// Proposes `command` through Raft and returns the state machine's reply, or its
    /// refusal ([`MetaError`] with the refusal's code).
    fn propose(&self, command: Command) -> impl Future<Output = Result<Reply, MetaError>> + Send;
    /// Runs `f` on this node's applied catalog (the leader's is current).
    fn read_applied<T: Send>(
        &self,
        f: impl FnOnce(&MetaState) -> T + Send,
    ) -> impl Future<Output = T> + Send;
}

/// Lease and progress of one running attempt.
#[derive(Debug, Clone)]
struct Lease {
    attempt: u32,
    worker_id: WorkerId,
    deadline: Instant,
    bytes_done: u64,
    bytes_total: u64,
    dirty: bool,
    /// The lease ran out and `ExpireTask` is being committed: heartbeats are refused.
    expired: bool,
}

/// Leader-local lease table.
#[derive(Debug, Default)]
pub struct Leases {
    inner: Mutex<HashMap<TaskId, Lease>>,
}

/// What a heartbeat learns about one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseCheck {
    /// The lease is extended.
    Held,
    /// The attempt is no longer current: the worker must stop.
    Lost,
}

impl Leases {
    /// Starts (or restarts) the lease of a freshly assigned attempt.
    pub async fn grant(&self, task_id: TaskId, attempt: u32, worker_id: WorkerId, lease: Duration) {
        self.inner.lock().await.insert(
            task_id,
            Lease {
                attempt,
                worker_id,
                deadline: Instant::now() + lease,
                bytes_done: 0,
                bytes_total: 0,
                dirty: false,
                expired: false,
            },
        );
    }

    /// A heartbeat for `(task, attempt)` from `worker`: extends the lease if it is the
    /// current holder (as the catalog says), records progress.
    pub async fn heartbeat(
        &self,
        task_id: TaskId,
        attempt: u32,
        worker_id: WorkerId,
        current: bool,
        progress: (u64, u64),
        lease: Duration,
    ) -> LeaseCheck {
        let mut leases = self.inner.lock().await;
        if !current {
            return LeaseCheck::Lost;
        }
        let fresh = Lease {
            attempt,
            worker_id,
            deadline: Instant::now() + lease,
            bytes_done: 0,
            bytes_total: 0,
            dirty: false,
            expired: false,
        };
        let entry = leases.entry(task_id).or_insert(fresh.clone());
        // The catalog says this attempt is current: an older entry is out of date.
        if entry.attempt < attempt {
            *entry = fresh;
        }
        if entry.expired || entry.attempt != attempt || entry.worker_id != worker_id {
            return LeaseCheck::Lost;
        }
        entry.deadline = Instant::now() + lease;
        if (entry.bytes_done, entry.bytes_total) != progress {
            entry.bytes_done = progress.0;
            entry.bytes_total = progress.1;
            entry.dirty = true;
        }
        LeaseCheck::Held
    }
}

/// Runs while the node lives; acts only while it leads.
pub async fn run<N: Replica>(node: Arc<N>, leases: Arc<Leases>, lease: Duration) {
    let mut was_leader = false;
    let mut last_flush = Instant::now();
    let mut housekeeping = Housekeeping::default();
    loop {
        if node.is_shutting_down() {
            return;
        }
        let leader = node.leads().await;
        if leader && !was_leader {
            info!(
                node_id = node.node_id(),
                "leading: every running task gets a fresh lease"
            );
            leases.inner.lock().await.clear();
        }
        was_leader = leader;
        if leader && let Err(e) = tick(&*node, &leases, lease, &mut last_flush).await {
            debug!(error = %e, "scheduler tick");
        }
        if leader {
            housekeeping.run(&*node).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The cleaner and the backup policies, at most once a second, with a back-off per
/// kind of command after a refusal (a refused command still takes a log entry).
#[derive(Default)]
struct Housekeeping {
    last: Option<Instant>,
    backoff: std::collections::HashMap<String, Instant>,
}

impl Housekeeping {
    async fn run<N: Replica>(&mut self, node: &N) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last = Some(Instant::now());
        let now_ms = crate::clock::now_ms();
        let due = node
            .read_applied(|s| crate::policy::due_commands(s, now_ms))
            .await;
        self.backoff.retain(|_, until| *until > Instant::now());
        for (key, cmd) in due {
            if self.backoff.contains_key(&key) {
                continue;
            }
            match node.propose(cmd).await {
                Ok(_) => debug!(key, "housekeeping command applied"),
                Err(e) => {
                    info!(key, error = %e, "housekeeping command refused; backing off for 30 s");
                    self.backoff
                        .insert(key, Instant::now() + Duration::from_secs(30));
                }
            }
        }
    }
}

async fn tick<N: Replica>(
    node: &N,
    leases: &Leases,
    lease: Duration,
    last_flush: &mut Instant,
) -> Result<(), MetaError> {
    let running: Vec<(TaskId, u32, Option<WorkerId>)> = node
        .read_applied(|s| {
            s.work
                .tasks
                .values()
                .filter(|t| t.status == TaskStatus::Running)
                .map(|t| (t.task_id, t.attempt, t.worker_id))
                .collect()
        })
        .await;
    let now = Instant::now();
    let mut expired = Vec::new();
    let mut progress = Vec::new();
    {
        let mut table = leases.inner.lock().await;
        // Keep leases of running attempts, and of newer attempts granted after the
        // snapshot was taken; never downgrade an entry to an older attempt.
        table.retain(|id, l| running.iter().any(|(t, a, _)| t == id && *a <= l.attempt));
        for (task_id, attempt, worker) in &running {
            let entry = table.entry(*task_id).or_insert(Lease {
                attempt: *attempt,
                worker_id: worker.unwrap_or_default(),
                deadline: now + lease,
                bytes_done: 0,
                bytes_total: 0,
                dirty: false,
                expired: false,
            });
            if entry.attempt != *attempt || entry.expired {
                continue;
            }
            if entry.deadline <= now {
                entry.expired = true;
                expired.push((*task_id, *attempt, entry.worker_id));
            } else if entry.dirty && last_flush.elapsed() >= Duration::from_secs(1) {
                entry.dirty = false;
                progress.push((*task_id, *attempt, entry.bytes_done, entry.bytes_total));
            }
        }
    }
    for (task_id, attempt, worker_id) in expired {
        warn!(
            task_id = task_id.0,
            attempt,
            worker_id = worker_id.0,
            "lease expired; the task will move"
        );
        let cmd = Command::Work(WorkCommand::ExpireTask {
            task_id,
            attempt,
            reason: format!(
                "worker {worker_id} stopped heartbeating (lease {} ms)",
                lease.as_millis()
            ),
        });
        if let Err(e) = node.propose(cmd).await {
            debug!(task_id = task_id.0, error = %e, "expire task; will try again");
            // Try again on the next tick.
            if let Some(entry) = leases.inner.lock().await.get_mut(&task_id)
                && entry.attempt == attempt
            {
                entry.expired = false;
            }
        }
    }
    if !progress.is_empty() {
        *last_flush = Instant::now();
        node.propose(Command::Work(WorkCommand::UpdateProgress {
            entries: progress,
        }))
        .await?;
    }
    Ok(())
}
