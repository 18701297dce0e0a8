//! The heartbeat loop: progress of every running attempt in, the leader's
//! `TaskAction` for each out, carried out here; and the self-fence timer that aborts
//! attempts whose lease may have run out.

use super::{POLL, RunningMap, lock};
use crate::client::MetaClient;
use crate::ctx::AttemptLease;
use crate::error::WorkerError;
use backstop_common::{TaskId, WorkerId};
use backstop_proto::worker::{HeartbeatRequest, TaskAction, TaskControl, TaskProgress};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Why an attempt was stopped by its job: the heartbeat's `TASK_ACTION_CANCEL` or
/// `TASK_ACTION_SUSPEND`, reported as `TaskOutcome::Canceled` / `Suspended`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum EndedBy {
    /// Not by its job: a lost lease or shutdown; nothing is reported.
    Nothing = 0,
    /// The job was cancelled.
    Cancel = 1,
    /// The job was suspended.
    Suspend = 2,
}

/// An [`EndedBy`] shared by the heartbeat loop and the running attempt.
#[derive(Debug, Default)]
pub(super) struct EndedByCell(AtomicU8);

impl EndedByCell {
    pub(super) fn set(&self, why: EndedBy) {
        self.0.store(why as u8, Ordering::SeqCst);
    }

    pub(super) fn get(&self) -> EndedBy {
        match self.0.load(Ordering::SeqCst) {
            1 => EndedBy::Cancel,
            2 => EndedBy::Suspend,
            _ => EndedBy::Nothing,
        }
    }
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
pub(super) async fn heartbeat_loop(
    client: Arc<MetaClient>,
    worker_id: WorkerId,
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
                        task_id: id.0,
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
            worker_id: worker_id.0,
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
pub(super) fn apply_controls(running: &RunningMap, controls: Vec<TaskControl>) {
    let map = lock(running);
    for control in controls {
        let Some(r) = map.get(&TaskId(control.task_id)) else {
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
pub(super) fn next_fence(running: &RunningMap) -> Option<Instant> {
    lock(running)
        .values()
        .filter(|r| !r.abort.is_cancelled())
        .map(|r| r.lease.deadline())
        .min()
}

/// Aborts every attempt whose lease may be gone at `now`.
pub(super) fn fence_expired(running: &RunningMap, now: Instant) {
    for (task_id, r) in lock(running).iter() {
        if !r.abort.is_cancelled() && !r.lease.held_at(now) {
            warn!(
                %task_id,
                attempt = r.attempt,
                "no heartbeat within the fence time: aborting the task before its lease can move"
            );
            r.abort.cancel();
        }
    }
}

pub(super) async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
