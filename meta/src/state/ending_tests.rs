//! Unit tests of `ending.rs`.

use backstop_common::Scn;
use backstop_common::task::{FileEntry, TaskOutcome, TaskSpec};
use backstop_common::{BackupSetId, CopyId, TaskId, WorkerId};

use crate::command::{Reply, WorkCommand};
use crate::state::test_support::*;
use crate::state::*;
use backstop_common::task::Control;

#[test]
fn cancel_stops_running_copies_cleans_and_moves_the_job_to_history() {
    let mut s = with_full_backup();
    let (task, attempt, cancel) = copy_then_cancel(&mut s);
    assert_eq!(copy_job(&s).status, JobStatus::Canceling);
    assert_eq!(s.task_control(TaskId(task)), Some(Control::Cancel));
    // A second cancel while the first is under way changes nothing.
    ok(work(&mut s, cancel.clone()));
    report_canceled(&mut s, task, attempt);
    assert_eq!(copy_job(&s).status, JobStatus::Cleaning);
    let clean = s.assignable_tasks(WorkerId(2))[0];
    match &s.work.tasks[&clean].spec {
        TaskSpec::Clean { dest, items } => {
            assert_eq!(dest.uri, "file:///copy");
            assert_eq!(items[0].dir, "data/backup_set_1_full");
            assert_eq!(items[0].index.as_deref(), Some("info/backup_set_1"));
        }
        other => panic!("{other:?}"),
    }
    run_next(
        &mut s,
        TaskOutcome::Cleaned {
            deleted: 4,
            failed: vec![],
        },
    );
    let job = copy_job(&s);
    assert_eq!(
        (job.status, job.result.as_deref()),
        (JobStatus::Canceled, Some("OB_CANCELED"))
    );
    assert_eq!(
        s.work.sets[&(TenantId(1001), BackupSetId(1), CopyId(1))].file_status,
        "INCOMPLETE"
    );
    // Nothing live: cancelling again is a no-op, and a new copy starts over.
    assert_eq!(ok(work(&mut s, cancel)), Reply::Jobs(vec![]));
    ok(set_copy(&mut s, None, None, &[]));
    assert_eq!(
        s.work.sets[&(TenantId(1001), BackupSetId(1), CopyId(1))].file_status,
        "COPYING"
    );
}

#[test]
fn a_copy_that_completes_while_being_cancelled_stays_available() {
    let mut s = with_full_backup();
    ok(set_copy(&mut s, None, None, &[]));
    let task = s.assignable_tasks(WorkerId(2))[0];
    let attempt = assign(&mut s, task, WorkerId(2));
    ok(work(
        &mut s,
        WorkCommand::CancelJobs {
            target: crate::command::CancelTarget::SetCopy,
            tenants: vec![],
        },
    ));
    ok(work(
        &mut s,
        WorkCommand::CompleteTask {
            task_id: task,
            attempt,
            worker_id: WorkerId(2),
            outcome: TaskOutcome::SetCopied {
                input_bytes: 5,
                output_bytes: 5,
                reused_objects: 0,
            },
        },
    ));
    assert_eq!(copy_job(&s).status, JobStatus::Canceled);
    assert_eq!(
        s.work.sets[&(TenantId(1001), BackupSetId(1), CopyId(1))].file_status,
        "AVAILABLE"
    );
    assert!(
        s.assignable_tasks(WorkerId(2)).is_empty(),
        "nothing to clean"
    );
}

#[test]
fn a_lost_worker_during_cancel_ends_the_job_through_its_lease() {
    let mut s = with_full_backup();
    ok(set_copy(&mut s, None, None, &[]));
    let task = s.assignable_tasks(WorkerId(2))[0];
    let attempt = assign(&mut s, task, WorkerId(2));
    ok(work(
        &mut s,
        WorkCommand::CancelJobs {
            target: crate::command::CancelTarget::SetCopy,
            tenants: vec![],
        },
    ));
    ok(work(
        &mut s,
        WorkCommand::ExpireTask {
            task_id: task,
            attempt,
            reason: "gone".into(),
        },
    ));
    assert_eq!(copy_job(&s).status, JobStatus::Cleaning);
}

#[test]
fn cancel_all_force_ends_everything_at_once_and_leaves_the_rest_to_the_cleaner() {
    let mut s = with_full_backup();
    ok(set_copy(&mut s, None, None, &[]));
    let task = s.assignable_tasks(WorkerId(2))[0];
    assign(&mut s, task, WorkerId(2));
    ok(work(
        &mut s,
        WorkCommand::CancelAllForce {
            clean_after_ms: 10_000,
        },
    ));
    assert_eq!(copy_job(&s).status, JobStatus::Canceled);
    assert_eq!(s.work.tasks[&task].status, TaskStatus::Canceled);
    assert_eq!(s.work.leftovers.len(), 1);
    // Not due yet (the fenced attempt may hold its lease until then).
    assert!(crate::policy::due_commands(&s, 1_000).is_empty());
    assert_eq!(crate::policy::due_commands(&s, 11_000).len(), 1);
    ok(work(&mut s, WorkCommand::StartCleaner));
    // The leader clock in these tests is 1 000 ms: not due, no cleaner job.
    assert!(s.assignable_tasks(WorkerId(2)).is_empty());
}

#[test]
fn suspend_stops_running_parts_and_resume_continues_with_the_finished_ones_kept() {
    let mut s = setup();
    start_archive(&mut s);
    ok(work(
        &mut s,
        WorkCommand::StartBackup {
            tenant: "t1".into(),
            incremental: false,
        },
    ));
    let files: Vec<FileEntry> = (0..20)
        .map(|i| FileEntry {
            path: format!("f{i}"),
            size: 30 << 20,
        })
        .collect();
    run_next(
        &mut s,
        TaskOutcome::Prepared {
            start_replay_scn: Scn(10),
            files,
        },
    );
    let parts = s.assignable_tasks(WorkerId(2));
    assert!(parts.len() >= 2);
    // One part done, one running when SUSPEND comes.
    run_next(
        &mut s,
        TaskOutcome::Copied {
            input_bytes: 1,
            output_bytes: 1,
        },
    );
    let running = s.assignable_tasks(WorkerId(2))[0];
    let attempt = assign(&mut s, running, WorkerId(2));
    ok(work(
        &mut s,
        WorkCommand::SuspendBackup {
            suspend: true,
            tenants: vec![],
        },
    ));
    assert_eq!(s.task_control(running), Some(Control::Suspend));
    assert!(
        s.assignable_tasks(WorkerId(2)).is_empty(),
        "nothing runs while suspended"
    );
    ok(work(
        &mut s,
        WorkCommand::CompleteTask {
            task_id: running,
            attempt,
            worker_id: WorkerId(2),
            outcome: TaskOutcome::Suspended,
        },
    ));
    assert_eq!(s.work.tasks[&running].status, TaskStatus::Pending);
    ok(work(
        &mut s,
        WorkCommand::SuspendBackup {
            suspend: false,
            tenants: vec![],
        },
    ));
    let again = s.assignable_tasks(WorkerId(2));
    assert!(again.contains(&running), "the stopped part runs again");
    let done = s
        .work
        .tasks
        .values()
        .filter(|t| matches!(t.spec, TaskSpec::BackupCopy { .. }) && t.status == TaskStatus::Done)
        .count();
    assert_eq!(done, 1, "the finished part is kept");
}
