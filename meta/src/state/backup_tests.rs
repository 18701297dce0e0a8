//! Unit tests of `backup.rs`.

use backstop_common::task::{FileEntry, TaskOutcome, TaskSpec};
use backstop_common::{BackupSetId, CopyId, TaskId, WorkerId};
use backstop_common::{Code, Scn};

use crate::command::{Command, WorkCommand};
use crate::state::test_support::*;
use crate::state::*;
use backstop_common::task::Control;

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
    let archive = start_archive(&mut s);
    ok(work(
        &mut s,
        WorkCommand::StartBackup {
            tenant: "t1".into(),
            incremental: false,
        },
    ));
    let run = |s: &mut MetaState, outcome: TaskOutcome| {
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
    let copies = s.assignable_tasks(WorkerId(2));
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
    // The archive is at 100: the set waits for its log up to 900.
    let set = s.work.sets.values().next().unwrap();
    assert_eq!(set.status, SetStatus::Doing);
    assert_eq!(s.task_control(TaskId(archive)), Some(Control::Checkpoint));
    ok(checkpoint(&mut s, TaskId(archive), 1, WorkerId(1), 900));
    assert_eq!(s.task_control(TaskId(archive)), None);
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
    let inc = s
        .work
        .sets
        .values()
        .find(|x| x.backup_set_id == BackupSetId(2))
        .unwrap();
    assert_eq!(
        (inc.backup_type, inc.base_set_id),
        (
            backstop_common::task::BackupType::Incremental,
            Some(BackupSetId(1))
        )
    );
}

#[test]
fn a_finalize_that_finds_the_hot_backup_gone_starts_the_set_again_from_prepare() {
    let mut s = setup();
    let archive = start_archive(&mut s);
    ok(checkpoint(&mut s, TaskId(archive), 1, WorkerId(1), 500));
    start_and_prepare(&mut s, false, 100);
    copy_part(&mut s);
    let restart = |s: &mut MetaState| {
        run_next(
            s,
            TaskOutcome::Restart {
                reason: "no hot backup is held".into(),
            },
        )
    };
    restart(&mut s);
    let set = &s.work.sets[&(T1, BackupSetId(1), CopyId(0))];
    assert_eq!(set.status, SetStatus::Doing);
    assert!(set.comment.contains("no hot backup"), "{}", set.comment);
    // The new prepare, then a copy whose part follows the first generation's.
    run_next(
        &mut s,
        TaskOutcome::Prepared {
            start_replay_scn: Scn(150),
            files: vec![FileEntry {
                path: "f".into(),
                size: 10,
            }],
        },
    );
    let parts: Vec<u32> = s
        .work
        .tasks
        .values()
        .filter_map(|t| match t.spec {
            TaskSpec::BackupCopy { part, .. } => Some(part),
            _ => None,
        })
        .collect();
    assert_eq!(parts, vec![0, 1]);
    copy_part(&mut s);
    // The finalize merges only the current generation's part.
    let fin = s.assignable_tasks(WorkerId(2))[0];
    let TaskSpec::BackupFinalize {
        parts,
        start_replay_scn,
        ..
    } = &s.work.tasks[&fin].spec
    else {
        panic!("{:?}", s.work.tasks[&fin].spec)
    };
    assert_eq!((parts.clone(), *start_replay_scn), (vec![(1, 1)], Scn(150)));
    finalize(&mut s, 170);
    assert_eq!(
        s.work.sets[&(T1, BackupSetId(1), CopyId(0))].status,
        SetStatus::Success
    );
}

#[test]
fn a_backup_restarted_too_often_fails_with_the_reason() {
    let mut s = setup();
    start_archive(&mut s);
    start_and_prepare(&mut s, false, 100);
    for n in 0..3 {
        copy_part(&mut s);
        run_next(
            &mut s,
            TaskOutcome::Restart {
                reason: "connection ended".into(),
            },
        );
        if n < 2 {
            run_next(
                &mut s,
                TaskOutcome::Prepared {
                    start_replay_scn: Scn(100),
                    files: vec![FileEntry {
                        path: "f".into(),
                        size: 10,
                    }],
                },
            );
        }
    }
    let job = s
        .work
        .jobs
        .values()
        .find(|j| matches!(j.kind, JobKind::Backup { .. }))
        .unwrap();
    assert!(job.comment.contains("started again 3 times"), "{job:?}");
    assert_ne!(job.status, JobStatus::Doing);
}

#[test]
fn a_postgresql_backup_copies_and_finalizes_where_its_prepare_ran() {
    let mut s = setup();
    s.tenants.get_mut(&T1).unwrap().source =
        "postgresql://bk@127.0.0.1:5432/postgres?pgdata=/a".into();
    start_archive(&mut s);
    start_and_prepare(&mut s, false, 100);
    // The prepare ran on worker 2: its copy waits for worker 2.
    assert!(s.assignable_tasks(WorkerId(1)).is_empty());
    let copy = s.assignable_tasks(WorkerId(2))[0];
    assert!(matches!(
        s.work.tasks[&copy].spec,
        TaskSpec::BackupCopy { .. }
    ));
    // Worker 2 restarted (it registers again): the hot backup died with it, so any
    // worker may take the task (its finalize will start the set again).
    let r = s.apply(&crate::command::Request {
        time_ms: 5_000,
        command: Command::Work(WorkCommand::RegisterWorker {
            worker_id: WorkerId(2),
            addr: "w2".into(),
            slots: 2,
            tenants: vec![],
        }),
    });
    ok(r.0);
    assert_eq!(s.assignable_tasks(WorkerId(1)), vec![copy]);
}

#[test]
fn a_lease_lost_where_the_postgresql_hot_backup_lives_starts_the_set_again() {
    let mut s = setup();
    s.tenants.get_mut(&T1).unwrap().source =
        "postgresql://bk@127.0.0.1:5432/postgres?pgdata=/a".into();
    start_archive(&mut s);
    start_and_prepare(&mut s, false, 100);
    let copy = s.assignable_tasks(WorkerId(2))[0];
    let attempt = assign(&mut s, copy, WorkerId(2));
    ok(work(
        &mut s,
        WorkCommand::ExpireTask {
            task_id: copy,
            attempt,
            reason: "lease expired".into(),
        },
    ));
    // The copy is over; a new prepare waits for any worker.
    assert_eq!(s.work.tasks[&copy].status, TaskStatus::Failed);
    let next = s.assignable_tasks(WorkerId(1));
    assert_eq!(next.len(), 1);
    assert!(matches!(
        s.work.tasks[&TaskId(next[0].0)].spec,
        TaskSpec::BackupPrepare { .. }
    ));
    assert!(
        s.work.sets[&(T1, BackupSetId(1), CopyId(0))]
            .comment
            .contains("held the hot backup")
    );
}
