//! What a running task holds: its fencing token, its lease as this worker sees it,
//! cancellation and progress.

use backstop_common::{TaskId, WorkerId};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use backstop_common::codec::encode;
use backstop_common::task::ArchiveProgress;
use backstop_proto::worker::ReportArchiveRequest;
use tokio_util::sync::CancellationToken;

use crate::client::MetaClient;
use crate::error::{Result, WorkerError};
use crate::storage::TenantStore;

/// Progress counters read by the heartbeat loop.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes done.
    pub done: AtomicU64,
    /// Bytes to do (0 = unknown).
    pub total: AtomicU64,
}

impl Progress {
    /// Adds `n` done bytes.
    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
}

/// An attempt's lease as this worker sees it: renewed by every successful heartbeat
/// that included the attempt, counted from when that heartbeat was *sent* (the leader
/// counts from when it received it, which is later). The attempt may keep writing
/// shared keys only while less than `fence_after` has passed since the last renewal;
/// after that the leader may already be handing the task to another worker.
#[derive(Debug)]
pub struct AttemptLease {
    epoch: Instant,
    /// Milliseconds after `epoch` of the last renewal (rounded down: conservative).
    renewed_ms: AtomicU64,
    fence_after: Duration,
}

impl AttemptLease {
    /// A lease granted by a request sent at `granted` (the acquire call), fenced
    /// `fence_after` after each renewal.
    pub fn new(granted: Instant, fence_after: Duration) -> AttemptLease {
        AttemptLease {
            epoch: granted,
            renewed_ms: AtomicU64::new(0),
            fence_after,
        }
    }

    /// Records a successful heartbeat for this attempt, sent at `sent`. Never moves the
    /// renewal back.
    pub fn renew(&self, sent: Instant) {
        let ms = sent.saturating_duration_since(self.epoch).as_millis() as u64;
        self.renewed_ms.fetch_max(ms, Ordering::SeqCst);
    }

    /// The instant at which this worker must stop writing for the attempt.
    pub fn deadline(&self) -> Instant {
        self.epoch
            + Duration::from_millis(self.renewed_ms.load(Ordering::SeqCst))
            + self.fence_after
    }

    /// Whether the lease is still safely held at `now`.
    pub fn held_at(&self, now: Instant) -> bool {
        now < self.deadline()
    }
}

/// One running attempt.
#[derive(Clone)]
pub struct TaskCtx {
    /// Meta client.
    pub client: Arc<MetaClient>,
    /// This worker.
    pub worker_id: WorkerId,
    /// Task.
    pub task_id: TaskId,
    /// Fencing token.
    pub attempt: u32,
    /// Fires when the attempt must stop at once (lease lost, job ended, shutdown).
    pub abort: CancellationToken,
    /// Fires when a long-running task should finish gracefully (NOARCHIVELOG).
    pub stop: CancellationToken,
    /// Progress.
    pub progress: Arc<Progress>,
    /// Bytes per second a copy task may move (0 = unlimited).
    pub copy_rate: u64,
    /// The attempt's lease, renewed by the heartbeat loop.
    pub lease: Arc<AttemptLease>,
    /// Set by the heartbeat action `checkpoint` (a finished backup waits for the
    /// archive): an archive commits what it has read at once. Cleared by the archive
    /// when it commits.
    pub checkpoint_now: Arc<AtomicBool>,
    /// The worker was started with `--allow-hooks`: it runs tenants' hook commands.
    pub allow_hooks: bool,
    /// Where this worker may write on its host (`--allow-path`).
    pub allowed_paths: Arc<crate::paths::AllowedPaths>,
}

impl TaskCtx {
    /// Errors with `Cancelled` once aborted.
    pub fn check(&self) -> Result<()> {
        if self.abort.is_cancelled() {
            return Err(WorkerError::Cancelled);
        }
        Ok(())
    }

    /// Call right before writing or deleting a shared key (manifest, marker, index):
    /// errors with `Cancelled` once aborted, and with `Stale` once the lease may have
    /// been lost (no heartbeat for this attempt succeeded within the fence time), so a
    /// zombie attempt stops before it overwrites its successor's keys.
    pub fn check_fence(&self) -> Result<()> {
        self.check()?;
        if !self.lease.held_at(Instant::now()) {
            return Err(WorkerError::Stale(format!(
                "task {} attempt {}: no heartbeat succeeded within {} ms; the lease may be gone",
                self.task_id,
                self.attempt,
                self.lease.fence_after.as_millis()
            )));
        }
        Ok(())
    }

    /// Writes a shared key (manifest, marker, index entry) after [`Self::check_fence`].
    ///
    /// Errors: `Cancelled`, `Stale` (see `check_fence`), `Storage` from the put.
    pub async fn put_shared(&self, store: &TenantStore, key: &str, data: Bytes) -> Result<()> {
        self.check_fence()?;
        store.put(key, data, &self.abort).await
    }

    /// Commits an archive checkpoint (fenced by this attempt).
    pub async fn report_archive(&self, progress: &ArchiveProgress) -> Result<()> {
        let bytes = encode(progress).map_err(|e| WorkerError::Invalid(e.to_string()))?;
        let req = ReportArchiveRequest {
            task_id: self.task_id.0,
            attempt: self.attempt,
            worker_id: self.worker_id.0,
            progress: bytes,
        };
        self.client
            .worker(|mut c| {
                let r = req.clone();
                async move { c.report_archive(r).await }
            })
            .await
            .map_err(WorkerError::from)
            .map(|_| ())
    }
}
