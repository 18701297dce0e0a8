//! The work rules as pure functions: fencing, leases, bounded retries, preconditions.

use backstop_common::params::Param;
use backstop_common::task::{ArchiveProgress, FileEntry, TaskOutcome};
use backstop_common::{Code, Scn};

use super::*;
use crate::command::{Command, Reply, Request, Response, WorkCommand};

fn req(command: Command) -> Request {
    Request {
        time_ms: 1_000,
        command,
    }
}

fn work(state: &mut MetaState, w: WorkCommand) -> Response {
    state.apply(&req(Command::Work(w))).0
}

fn ok(r: Response) -> Reply {
    match r {
        Response::Ok(reply) => reply,
        Response::Err { code, message } => panic!("{code}: {message}"),
    }
}

fn err(r: Response) -> Code {
    match r {
        Response::Err { code, .. } => code,
        Response::Ok(reply) => panic!("expected an error, got {reply:?}"),
    }
}

/// A cluster with tenant t1, a backup_dest and two workers.
fn setup() -> MetaState {
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
                worker_id,
                addr: format!("w{worker_id}"),
                slots: 2,
                tenants: vec![],
            },
        ));
    }
    s
}

fn assign(s: &mut MetaState, task_id: u64, worker_id: u64) -> u32 {
    match ok(work(s, WorkCommand::AssignTask { task_id, worker_id })) {
        Reply::Assigned(a) => a.attempt,
        other => panic!("{other:?}"),
    }
}

fn checkpoint(s: &mut MetaState, task_id: u64, attempt: u32, worker_id: u64, scn: u64) -> Response {
    let progress = ArchiveProgress {
        round_id: 1,
        piece_id: 0,
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

fn start_archive(s: &mut MetaState) -> u64 {
    ok(work(
        s,
        WorkCommand::StartArchive {
            tenant: "t1".into(),
        },
    ));
    let task = s.assignable_tasks(1)[0];
    let attempt = assign(s, task, 1);
    ok(checkpoint(s, task, attempt, 1, 100));
    task
}

#[test]
fn reports_from_stale_attempts_or_other_workers_are_refused() {
    let mut s = setup();
    let task = start_archive(&mut s);
    assert_eq!(
        s.current_round(TenantId(1001)).unwrap().status,
        RoundStatus::Doing
    );
    assert_eq!(
        err(checkpoint(&mut s, task, 1, 2, 200)),
        Code::TaskStale,
        "wrong worker"
    );
    // The lease of attempt 1 expires; attempt 2 goes to worker 2.
    ok(work(
        &mut s,
        WorkCommand::ExpireTask {
            task_id: task,
            attempt: 1,
            reason: "silent".into(),
        },
    ));
    assert_eq!(assign(&mut s, task, 2), 2);
    // The zombie attempt 1 wakes up: everything it says is refused.
    assert_eq!(err(checkpoint(&mut s, task, 1, 1, 300)), Code::TaskStale);
    let outcome = TaskOutcome::ArchiveStopped {
        checkpoint_scn: Scn(300),
    };
    assert_eq!(
        err(work(
            &mut s,
            WorkCommand::CompleteTask {
                task_id: task,
                attempt: 1,
                worker_id: 1,
                outcome
            }
        )),
        Code::TaskStale
    );
    // Attempt 2 resumes from the committed checkpoint.
    ok(checkpoint(&mut s, task, 2, 2, 250));
    assert_eq!(
        s.current_round(TenantId(1001)).unwrap().checkpoint_scn,
        Scn(250)
    );
    // A checkpoint may never move back.
    assert_eq!(
        err(checkpoint(&mut s, task, 2, 2, 240)),
        Code::InvalidArgument
    );
}

#[test]
fn backup_preconditions_follow_oceanbase() {
    let mut s = setup();
    let start = |s: &mut MetaState, incremental| {
        work(
            s,
            WorkCommand::StartBackup {
                tenant: "t1".into(),
                incremental,
            },
        )
    };
    assert_eq!(
        err(start(&mut s, false)),
        Code::BackupCanNotStart,
        "archive not DOING"
    );
    start_archive(&mut s);
    assert_eq!(
        err(start(&mut s, true)),
        Code::BackupCanNotStart,
        "no base for an incremental"
    );
    ok(start(&mut s, false));
    assert_eq!(err(start(&mut s, false)), Code::BackupInProgress);
    assert_eq!(
        err(s
            .apply(&req(Command::DropTenant {
                name: "t1".into(),
                if_exists: false
            }))
            .0),
        Code::BackupInProgress,
        "a tenant with running jobs cannot be dropped"
    );
}

#[test]
fn a_backup_runs_prepare_copy_finalize_and_an_incremental_bases_on_it() {
    let mut s = setup();
    start_archive(&mut s);
    ok(work(
        &mut s,
        WorkCommand::StartBackup {
            tenant: "t1".into(),
            incremental: false,
        },
    ));
    let run = |s: &mut MetaState, outcome: TaskOutcome| {
        let task = s.assignable_tasks(2)[0];
        let attempt = assign(s, task, 2);
        ok(work(
            s,
            WorkCommand::CompleteTask {
                task_id: task,
                attempt,
                worker_id: 2,
                outcome,
            },
        ));
    };
    let files: Vec<FileEntry> = (0..40)
        .map(|i| FileEntry {
            path: format!("f{i}"),
            size: 20 << 20,
        })
        .collect();
    run(
        &mut s,
        TaskOutcome::Prepared {
            start_replay_scn: Scn(500),
            files,
        },
    );
    let copies = s.assignable_tasks(2);
    assert_eq!(copies.len(), 4, "800 MiB in 256 MiB parts");
    for _ in copies {
        run(
            &mut s,
            TaskOutcome::Copied {
                input_bytes: 10,
                output_bytes: 5,
            },
        );
    }
    run(
        &mut s,
        TaskOutcome::Finalized {
            min_restore_scn: Scn(900),
            input_bytes: 40,
            output_bytes: 20,
            file_count: 40,
            manifest_checksum: "abc".into(),
        },
    );
    let set = s.work.sets.values().next().unwrap();
    assert_eq!(
        (set.status, set.file_status.as_str()),
        (SetStatus::Success, "AVAILABLE")
    );
    assert_eq!(
        (set.start_replay_scn, set.min_restore_scn),
        (Scn(500), Scn(900))
    );
    assert!(
        s.work
            .jobs
            .values()
            .any(|j| matches!(j.kind, JobKind::Backup { .. }) && j.status == JobStatus::Finished)
    );
    ok(work(
        &mut s,
        WorkCommand::StartBackup {
            tenant: "t1".into(),
            incremental: true,
        },
    ));
    let inc = s.work.sets.values().find(|x| x.backup_set_id == 2).unwrap();
    assert_eq!(
        (inc.backup_type, inc.base_set_id),
        (backstop_common::task::BackupType::Incremental, Some(1))
    );
}

#[test]
fn a_task_that_keeps_failing_fails_its_job_after_bounded_attempts() {
    let mut s = setup();
    start_archive(&mut s);
    ok(work(
        &mut s,
        WorkCommand::StartBackup {
            tenant: "t1".into(),
            incremental: false,
        },
    ));
    let task = s.assignable_tasks(1)[0];
    for attempt in 1..=MAX_ATTEMPTS {
        assert_eq!(assign(&mut s, task, 1), attempt);
        let outcome = TaskOutcome::Failed {
            reason: "storage: connection refused".into(),
            retryable: true,
        };
        ok(work(
            &mut s,
            WorkCommand::CompleteTask {
                task_id: task,
                attempt,
                worker_id: 1,
                outcome,
            },
        ));
    }
    assert!(s.assignable_tasks(1).is_empty());
    let job = s
        .work
        .jobs
        .values()
        .find(|j| matches!(j.kind, JobKind::Backup { .. }))
        .unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.comment.contains("connection refused"));
    let set = s.work.sets.values().next().unwrap();
    assert_eq!(
        (set.status, set.file_status.as_str()),
        (SetStatus::Failed, "INCOMPLETE")
    );
}

#[test]
fn noarchivelog_stops_through_the_worker_and_freezes_pieces() {
    let mut s = setup();
    let task = start_archive(&mut s);
    ok(work(
        &mut s,
        WorkCommand::StopArchive {
            tenant: "t1".into(),
        },
    ));
    assert_eq!(
        s.current_round(TenantId(1001)).unwrap().status,
        RoundStatus::Stopping
    );
    let outcome = TaskOutcome::ArchiveStopped {
        checkpoint_scn: Scn(400),
    };
    ok(work(
        &mut s,
        WorkCommand::CompleteTask {
            task_id: task,
            attempt: 1,
            worker_id: 1,
            outcome,
        },
    ));
    let round = s.current_round(TenantId(1001)).unwrap();
    assert_eq!(
        (round.status, round.checkpoint_scn),
        (RoundStatus::Stop, Scn(400))
    );
    assert!(
        s.work
            .pieces
            .values()
            .all(|p| p.status == PieceStatus::Frozen)
    );
    // A new round can start afterwards.
    ok(work(
        &mut s,
        WorkCommand::StartArchive {
            tenant: "t1".into(),
        },
    ));
    assert_eq!(s.current_round(TenantId(1001)).unwrap().round_id, 2);
}
