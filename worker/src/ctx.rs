//! What a running task holds: its fencing token, cancellation and progress.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use backstop_common::codec::encode;
use backstop_common::task::ArchiveProgress;
use backstop_proto::worker::ReportArchiveRequest;
use tokio_util::sync::CancellationToken;

use crate::client::MetaClient;
use crate::error::{Result, WorkerError};

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

/// One running attempt.
#[derive(Clone)]
pub struct TaskCtx {
    /// Meta client.
    pub client: Arc<MetaClient>,
    /// This worker.
    pub worker_id: u64,
    /// Task.
    pub task_id: u64,
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
}

impl TaskCtx {
    /// Errors with `Cancelled` once aborted.
    pub fn check(&self) -> Result<()> {
        if self.abort.is_cancelled() {
            return Err(WorkerError::Cancelled);
        }
        Ok(())
    }

    /// Commits an archive checkpoint (fenced by this attempt).
    pub async fn report_archive(&self, progress: &ArchiveProgress) -> Result<()> {
        let bytes = encode(progress).map_err(|e| WorkerError::Invalid(e.to_string()))?;
        let req = ReportArchiveRequest {
            task_id: self.task_id,
            attempt: self.attempt,
            worker_id: self.worker_id,
            progress: bytes,
        };
        self.client
            .call(|mut c| {
                let r = req.clone();
                async move { c.report_archive(r).await }
            })
            .await
            .map(|_| ())
    }
}
