//! `WorkerService`: registration, task leases, heartbeats and reports. Acquire and
//! heartbeat need the leader's soft state, so a follower answers `OB_NOT_MASTER`
//! with the leader's address; reports are plain writes and may go anywhere.

use backstop_common::{TaskId, WorkerId};
use std::sync::Arc;

use backstop_common::Code;
use std::time::Duration;

use backstop_common::task::{ArchiveProgress, Control, CopyProgress, TaskOutcome};
use backstop_proto::LEADER_ADDR_KEY;
use backstop_proto::worker::worker_service_server::WorkerService;
use backstop_proto::worker::*;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::codec::{decode, encode};
use crate::command::{Command, Reply, WorkCommand};
use crate::error::MetaError;
use crate::node::MetaNode;
use crate::scheduler::LeaseCheck;
use crate::state::{JobKind, RoundStatus, TaskStatus};

/// Serves workers.
pub struct WorkerSvc {
    node: Arc<MetaNode>,
}

impl WorkerSvc {
    pub(crate) fn new(node: Arc<MetaNode>) -> Self {
        Self { node }
    }

    async fn require_leader(&self) -> Result<(), Status> {
        if self.node.raft().current_leader().await == Some(self.node.id()) {
            return Ok(());
        }
        let status = self.node.status().await;
        let mut s =
            MetaError::no_leader(format!("node {} is not the leader", self.node.id())).to_status();
        if let Ok(v) = MetadataValue::try_from(status.leader_addr.as_str()) {
            s.metadata_mut().insert(LEADER_ADDR_KEY, v);
        }
        Err(s)
    }
}

fn control_msg(p: &TaskProgress, lost: bool, control: Option<Control>) -> TaskControl {
    let (action, reason) = match (lost, control) {
        (true, _) | (false, Some(Control::Abort)) => {
            (TaskAction::Abort, "the lease of this attempt is gone")
        }
        (false, Some(Control::Cancel)) => (TaskAction::Cancel, "the job was cancelled"),
        (false, Some(Control::Suspend)) => (TaskAction::Suspend, "the job was suspended"),
        (false, Some(Control::Checkpoint)) => (
            TaskAction::Checkpoint,
            "a finished data backup waits for its log: commit a checkpoint now",
        ),
        (false, Some(Control::Stop)) => (
            TaskAction::Stop,
            "stop requested (NOARCHIVELOG or STOP BACKUP ARCHIVELOG)",
        ),
        (false, None | Some(Control::Continue)) => (TaskAction::Continue, ""),
    };
    TaskControl {
        task_id: p.task_id,
        attempt: p.attempt,
        action: action.into(),
        reason: reason.to_string(),
    }
}

impl WorkerSvc {
    /// An answer carrying the leader's time (`LEADER_TIME_KEY`, ms since the epoch):
    /// never behind an applied command's time, so workers can stamp archive
    /// checkpoints with a clock that agrees with the catalog's.
    async fn with_leader_time<T>(&self, msg: T) -> Response<T> {
        let applied = self.node.read_local(|s| s.last_time_ms).await;
        let ms = applied.max(crate::clock::now_ms());
        let mut resp = Response::new(msg);
        if let Ok(v) = ms.to_string().parse() {
            resp.metadata_mut()
                .insert(backstop_proto::LEADER_TIME_KEY, v);
        }
        resp
    }
}

fn bad_payload(what: &str, e: impl std::fmt::Display) -> Status {
    MetaError::invalid(format!("decode {what}: {e}")).to_status()
}

#[tonic::async_trait]
impl WorkerService for WorkerSvc {
    async fn register_worker(
        &self,
        request: Request<RegisterWorkerRequest>,
    ) -> Result<Response<RegisterWorkerResponse>, Status> {
        let req = request.into_inner();
        if req.worker_id == 0 || req.slots == 0 {
            return Err(MetaError::invalid("worker_id and slots must be greater than 0").into());
        }
        self.node
            .write(Command::Work(WorkCommand::RegisterWorker {
                worker_id: WorkerId(req.worker_id),
                addr: req.addr,
                slots: req.slots.min(256),
                tenants: req.tenants,
            }))
            .await?;
        let lease = self.node.task_lease();
        Ok(Response::new(RegisterWorkerResponse {
            lease_ms: lease.as_millis() as u64,
            heartbeat_ms: (lease.as_millis() as u64 / 5).max(50),
        }))
    }

    async fn acquire_task(
        &self,
        request: Request<AcquireTaskRequest>,
    ) -> Result<Response<AcquireTaskResponse>, Status> {
        self.require_leader().await?;
        let req = request.into_inner();
        let (candidates, registered) = self
            .node
            .read_local(|s| {
                (
                    s.assignable_tasks(WorkerId(req.worker_id)),
                    s.work.workers.contains_key(&WorkerId(req.worker_id)),
                )
            })
            .await;
        if !registered {
            return Err(MetaError::new(
                Code::EntryNotExist,
                format!("worker {} is not registered", req.worker_id),
            )
            .into());
        }
        let mut assignments = Vec::new();
        for task_id in candidates.into_iter().take(req.free_slots as usize) {
            let cmd = Command::Work(WorkCommand::AssignTask {
                task_id,
                worker_id: WorkerId(req.worker_id),
            });
            match self.node.write(cmd).await {
                Ok(Reply::Assigned(a)) => {
                    self.node
                        .leases()
                        .grant(
                            a.task_id,
                            a.attempt,
                            WorkerId(req.worker_id),
                            self.node.task_lease(),
                        )
                        .await;
                    assignments.push(encode(&*a).map_err(|e| MetaError::internal(e.to_string()))?);
                }
                Ok(_) => {}
                Err(e) if e.code == Code::TaskStale => {}
                // Assignments already committed must reach the worker: hand out what
                // we have; a later acquire picks up the rest.
                Err(e) if !assignments.is_empty() => {
                    tracing::debug!(error = %e, "acquire stopped early");
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Response::new(AcquireTaskResponse { assignments }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        self.require_leader().await?;
        let req = request.into_inner();
        let lease = self.node.task_lease();
        let worker_id = req.worker_id;
        let controls = |s: &crate::state::MetaState| -> Vec<(bool, Option<Control>)> {
            req.tasks
                .iter()
                .map(|p| {
                    let Some(t) = s.work.tasks.get(&TaskId(p.task_id)) else {
                        return (false, None);
                    };
                    let current = t.status == TaskStatus::Running
                        && t.attempt == p.attempt
                        && t.worker_id == Some(WorkerId(worker_id));
                    let stopping = s.work.jobs.get(&t.job_id).is_some_and(|j| match j.kind {
                        JobKind::Archive { round_id } => s
                            .work
                            .rounds
                            .get(&(t.tenant_id, round_id))
                            .is_some_and(|r| r.status == RoundStatus::Stopping),
                        _ => false,
                    });
                    let control = match s.task_control(TaskId(p.task_id)) {
                        Some(Control::Checkpoint) | None if stopping => Some(Control::Stop),
                        c => c,
                    };
                    (current, control)
                })
                .collect()
        };
        let states = self.node.read_local(controls).await;
        let mut tasks = Vec::new();
        for (p, (current, control)) in req.tasks.iter().zip(&states) {
            let check = self
                .node
                .leases()
                .heartbeat(
                    TaskId(p.task_id),
                    p.attempt,
                    WorkerId(req.worker_id),
                    *current,
                    (p.bytes_done, p.bytes_total),
                    lease,
                )
                .await;
            tasks.push(control_msg(p, check == LeaseCheck::Lost, *control));
        }
        // Long poll: answer as soon as an applied command asks one of these tasks to
        // stop, so a cancel reaches the worker in milliseconds, not at the next beat.
        let wait = Duration::from_millis(req.wait_ms.min(lease.as_millis() as u64 / 2));
        // A `checkpoint` request does not end the wait by itself (it is answered, and
        // the next call waits while it stays the same); a stop of any kind, a lost
        // attempt or any change does.
        let urgent = |st: &[(bool, Option<Control>)]| {
            st.iter()
                .any(|(current, control)| !current || control.is_some_and(Control::stops))
        };
        if !wait.is_zero()
            && tasks
                .iter()
                .all(|t| matches!(t.action(), TaskAction::Continue | TaskAction::Checkpoint))
            && !tasks.is_empty()
        {
            let mut metrics = self.node.raft().metrics();
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    changed = metrics.changed() => {
                        if changed.is_err() {
                            break;
                        }
                    }
                }
                let now_states = self.node.read_local(controls).await;
                if urgent(&now_states) || now_states != states {
                    tasks = req
                        .tasks
                        .iter()
                        .zip(&now_states)
                        .map(|(p, (current, control))| control_msg(p, !current, *control))
                        .collect();
                    break;
                }
            }
        }
        Ok(self.with_leader_time(HeartbeatResponse { tasks }).await)
    }

    async fn report_archive(
        &self,
        request: Request<ReportArchiveRequest>,
    ) -> Result<Response<ReportResponse>, Status> {
        let req = request.into_inner();
        let progress: ArchiveProgress =
            decode(&req.progress).map_err(|e| bad_payload("archive progress", e))?;
        self.node
            .write(Command::Work(WorkCommand::ArchiveCheckpoint {
                task_id: TaskId(req.task_id),
                attempt: req.attempt,
                worker_id: WorkerId(req.worker_id),
                progress,
            }))
            .await?;
        Ok(self.with_leader_time(ReportResponse {}).await)
    }

    async fn report_copy(
        &self,
        request: Request<ReportArchiveRequest>,
    ) -> Result<Response<ReportResponse>, Status> {
        let req = request.into_inner();
        let progress: CopyProgress =
            decode(&req.progress).map_err(|e| bad_payload("copy progress", e))?;
        self.node
            .write(Command::Work(WorkCommand::CopyCheckpoint {
                task_id: TaskId(req.task_id),
                attempt: req.attempt,
                worker_id: WorkerId(req.worker_id),
                progress,
            }))
            .await?;
        Ok(self.with_leader_time(ReportResponse {}).await)
    }

    async fn report_task(
        &self,
        request: Request<ReportTaskRequest>,
    ) -> Result<Response<ReportResponse>, Status> {
        let req = request.into_inner();
        let outcome: TaskOutcome =
            decode(&req.outcome).map_err(|e| bad_payload("task outcome", e))?;
        self.node
            .write(Command::Work(WorkCommand::CompleteTask {
                task_id: TaskId(req.task_id),
                attempt: req.attempt,
                worker_id: WorkerId(req.worker_id),
                outcome,
            }))
            .await?;
        Ok(self.with_leader_time(ReportResponse {}).await)
    }
}
