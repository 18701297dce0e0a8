//! Helpers for the state machine's unit tests: a cluster with tenant `t1`, a
//! `backup_dest` and two workers, and the steps of each job kind as one call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use backstop_common::params::Param;
use backstop_common::task::{ArchiveProgress, CleanItem, FileEntry, TaskOutcome, TaskSpec};
use backstop_common::{BackupSetId, CopyId, PieceId, RoundId, TaskId, WorkerId};
use backstop_common::{Code, Scn};

use crate::command::{Command, Reply, Request, Response, WorkCommand};
use crate::state::*;

pub(crate) fn req(command: Command) -> Request {
    Request {
        time_ms: 1_000,
        command,
    }
}

pub(crate) fn work(state: &mut MetaState, w: WorkCommand) -> Response {
    state.apply(&req(Command::Work(w))).0
}

pub(crate) fn ok(r: Response) -> Reply {
    match r {
        Response::Ok(reply) => reply,
        Response::Err { code, message } => panic!("{code}: {message}"),
    }
}

pub(crate) fn err(r: Response) -> Code {
    match r {
        Response::Err { code, .. } => code,
        Response::Ok(reply) => panic!("expected an error, got {reply:?}"),
    }
}

/// A cluster with tenant t1, a backup_dest and two workers.
pub(crate) fn setup() -> MetaState {
    let mut s = MetaState::default();
    let init = Command::InitCluster {
        cluster_name: "c".into(),
        cluster_id: 7,
        root_password: backstop_common::auth::PasswordHash::new(""),
    };
    ok(s.apply(&req(init)).0);
    ok(s.apply(&req(Command::CreateTenant {
        name: "t1".into(),
        source: "dir:///src/t1".into(),
        comment: String::new(),
        if_not_exists: false,
        root_password: backstop_common::auth::PasswordHash::new(""),
    }))
    .0);
    ok(s.apply(&req(Command::SetParameter {
        param: Param::BackupDest,
        tenant: None,
        value: "file:///dest".into(),
    }))
    .0);
    for worker_id in [1, 2] {
        ok(work(
            &mut s,
            WorkCommand::RegisterWorker {
                worker_id: WorkerId(worker_id),
                addr: format!("w{worker_id}"),
                slots: 2,
                tenants: vec![],
            },
        ));
    }
    s
}

pub(crate) fn assign(s: &mut MetaState, task_id: TaskId, worker_id: WorkerId) -> u32 {
    match ok(work(s, WorkCommand::AssignTask { task_id, worker_id })) {
        Reply::Assigned(a) => a.attempt,
        other => panic!("{other:?}"),
    }
}

pub(crate) fn checkpoint(
    s: &mut MetaState,
    task_id: TaskId,
    attempt: u32,
    worker_id: WorkerId,
    scn: u64,
) -> Response {
    let progress = ArchiveProgress {
        round_id: RoundId(1),
        piece_id: PieceId(0),
        checkpoint_scn: Scn(scn),
        input_bytes: 0,
        output_bytes: 0,
        lag_ms: 0,
        switch_to: None,
        frozen_piece: None,
    };
    work(
        s,
        WorkCommand::ArchiveCheckpoint {
            task_id,
            attempt,
            worker_id,
            progress,
        },
    )
}

pub(crate) fn start_archive(s: &mut MetaState) -> u64 {
    ok(work(
        s,
        WorkCommand::StartArchive {
            tenant: "t1".into(),
        },
    ));
    let task = s.assignable_tasks(WorkerId(1))[0];
    let attempt = assign(s, task, WorkerId(1));
    ok(checkpoint(s, task, attempt, WorkerId(1), 100));
    task.0
}

/// Runs the next assignable task on worker 2 with `outcome`.
pub(crate) fn run_next(s: &mut MetaState, outcome: TaskOutcome) -> u64 {
    let task = s.assignable_tasks(WorkerId(2))[0];
    let attempt = assign(s, task, WorkerId(2));
    ok(work(
        s,
        WorkCommand::CompleteTask {
            task_id: task,
            attempt,
            worker_id: WorkerId(2),
            outcome,
        },
    ));
    task.0
}

/// Starts a data backup of t1 and runs its prepare on worker 2 at `start_replay_scn`
/// (one 10-byte file, one part).
pub(crate) fn start_and_prepare(s: &mut MetaState, incremental: bool, start_replay_scn: u64) {
    ok(work(
        s,
        WorkCommand::StartBackup {
            tenant: "t1".into(),
            incremental,
        },
    ));
    run_next(
        s,
        TaskOutcome::Prepared {
            start_replay_scn: Scn(start_replay_scn),
            files: vec![FileEntry {
                path: "f".into(),
                size: 10,
            }],
        },
    );
}

/// Runs the backup's one copy part on worker 2.
pub(crate) fn copy_part(s: &mut MetaState) {
    run_next(
        s,
        TaskOutcome::Copied {
            input_bytes: 10,
            output_bytes: 5,
        },
    );
}

/// Runs the backup's finalize on worker 2 with `min_restore_scn`.
pub(crate) fn finalize(s: &mut MetaState, min_restore_scn: u64) {
    run_next(
        s,
        TaskOutcome::Finalized {
            min_restore_scn: Scn(min_restore_scn),
            input_bytes: 10,
            output_bytes: 5,
            file_count: 1,
            manifest_checksum: "abc".into(),
        },
    );
}

/// Archive running and one successful full backup (set 1).
pub(crate) fn with_full_backup() -> MetaState {
    let mut s = setup();
    let archive = start_archive(&mut s);
    // The archive covers the set's log [100, 120].
    ok(checkpoint(&mut s, TaskId(archive), 1, WorkerId(1), 200));
    start_and_prepare(&mut s, false, 100);
    copy_part(&mut s);
    finalize(&mut s, 120);
    ok(s.apply(&req(Command::SetParameter {
        param: Param::BackupBackupDest,
        tenant: None,
        value: "file:///copy".into(),
    }))
    .0);
    s
}

pub(crate) fn set_copy(
    s: &mut MetaState,
    id: Option<u64>,
    dest: Option<&str>,
    tenants: &[&str],
) -> Response {
    work(
        s,
        WorkCommand::StartSetCopy {
            selection: CopySelection {
                tenants: tenants.iter().map(|t| t.to_string()).collect(),
                id,
                max_backup_times: None,
                dest: dest.map(str::to_string),
            },
        },
    )
}

pub(crate) fn copy_job(s: &MetaState) -> &JobRecord {
    s.work
        .jobs
        .values()
        .rfind(|j| matches!(j.kind, JobKind::SetCopy { .. }))
        .unwrap()
}

/// Starts a set copy, leases its task to worker 2 and cancels the copy job; returns the
/// task, its attempt and the cancel command.
pub(crate) fn copy_then_cancel(s: &mut MetaState) -> (u64, u32, WorkCommand) {
    ok(set_copy(s, None, None, &[]));
    let task = s.assignable_tasks(WorkerId(2))[0];
    let attempt = assign(s, task, WorkerId(2));
    let cancel = WorkCommand::CancelJobs {
        target: crate::command::CancelTarget::SetCopy,
        tenants: vec![],
    };
    ok(work(s, cancel.clone()));
    (task.0, attempt, cancel)
}

/// Worker 2 reports that the cancelled `task` stopped.
pub(crate) fn report_canceled(s: &mut MetaState, task: u64, attempt: u32) {
    ok(work(
        s,
        WorkCommand::CompleteTask {
            task_id: TaskId(task),
            attempt,
            worker_id: WorkerId(2),
            outcome: TaskOutcome::Canceled,
        },
    ));
}

pub(crate) const T1: TenantId = TenantId(1001);

pub(crate) fn copied(s: &mut MetaState) {
    run_next(
        s,
        TaskOutcome::SetCopied {
            input_bytes: 5,
            output_bytes: 5,
            reused_objects: 0,
        },
    );
}

/// Runs a whole data backup of t1 (archive task 1 on worker 1 must be running):
/// prepare at `start`, one part, finalize at `end`, then the archive checkpoints past
/// `end` so the set is AVAILABLE. Returns the set id.
pub(crate) fn backup(s: &mut MetaState, incremental: bool, start: u64, end: u64) -> u64 {
    start_and_prepare(s, incremental, start);
    copy_part(s);
    finalize(s, end);
    ok(checkpoint(s, TaskId(1), 1, WorkerId(1), end + 10));
    let id = s.work.sets.keys().map(|(_, id, _)| *id).max().unwrap();
    assert_eq!(s.work.sets[&(T1, id, CopyId(0))].file_status, "AVAILABLE");
    id.0
}

/// `NOARCHIVELOG` for t1, and its archive task (attempt 1 on worker 1) stops at `scn`.
pub(crate) fn noarchivelog(s: &mut MetaState, archive: u64, scn: u64) {
    ok(work(
        s,
        WorkCommand::StopArchive {
            tenant: "t1".into(),
        },
    ));
    ok(work(
        s,
        WorkCommand::CompleteTask {
            task_id: TaskId(archive),
            attempt: 1,
            worker_id: WorkerId(1),
            outcome: TaskOutcome::ArchiveStopped {
                checkpoint_scn: Scn(scn),
            },
        },
    ));
}

pub(crate) fn clean_items(s: &MetaState, task: u64) -> Vec<CleanItem> {
    match &s.work.tasks[&TaskId(task)].spec {
        TaskSpec::Clean { items, .. } => items.clone(),
        other => panic!("{other:?}"),
    }
}

pub(crate) fn delete_set(s: &mut MetaState, id: u64, copy: CopyId) -> Response {
    work(
        s,
        WorkCommand::DeleteBackupSet {
            tenants: vec![],
            backup_set_id: BackupSetId(id),
            copy_id: copy,
        },
    )
}

pub(crate) fn copy_or_backup_job(s: &MetaState) -> &JobRecord {
    s.work
        .jobs
        .values()
        .find(|j| matches!(j.kind, JobKind::Backup { .. }))
        .unwrap()
}
