//! Unit tests of `dispatch.rs`.

use backstop_common::task::{TaskOutcome, TaskSpec};
use backstop_common::{Code, Scn};
use backstop_common::{TaskId, WorkerId};

use crate::command::WorkCommand;
use crate::state::test_support::*;
use crate::state::*;

#[test]
fn reports_from_stale_attempts_or_other_workers_are_refused() {
    let mut s = setup();
    let task = start_archive(&mut s);
    assert_eq!(
        s.current_round(TenantId(1001)).unwrap().status,
        RoundStatus::Doing
    );
    assert_eq!(
        err(checkpoint(&mut s, TaskId(task), 1, WorkerId(2), 200)),
        Code::TaskStale,
        "wrong worker"
    );
    // The lease of attempt 1 expires; attempt 2 goes to worker 2.
    ok(work(
        &mut s,
        WorkCommand::ExpireTask {
            task_id: TaskId(task),
            attempt: 1,
            reason: "silent".into(),
        },
    ));
    assert_eq!(assign(&mut s, TaskId(task), WorkerId(2)), 2);
    // The zombie attempt 1 wakes up: everything it says is refused.
    assert_eq!(
        err(checkpoint(&mut s, TaskId(task), 1, WorkerId(1), 300)),
        Code::TaskStale
    );
    let outcome = TaskOutcome::ArchiveStopped {
        checkpoint_scn: Scn(300),
    };
    assert_eq!(
        err(work(
            &mut s,
            WorkCommand::CompleteTask {
                task_id: TaskId(task),
                attempt: 1,
                worker_id: WorkerId(1),
                outcome
            }
        )),
        Code::TaskStale
    );
    // Attempt 2 resumes from the committed checkpoint.
    ok(checkpoint(&mut s, TaskId(task), 2, WorkerId(2), 250));
    assert_eq!(
        s.current_round(TenantId(1001)).unwrap().checkpoint_scn,
        Scn(250)
    );
    // A checkpoint may never move back.
    assert_eq!(
        err(checkpoint(&mut s, TaskId(task), 2, WorkerId(2), 240)),
        Code::InvalidArgument
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
    let task = s.assignable_tasks(WorkerId(1))[0];
    for attempt in 1..=MAX_ATTEMPTS {
        assert_eq!(assign(&mut s, task, WorkerId(1)), attempt);
        let outcome = TaskOutcome::Failed {
            reason: "storage: connection refused".into(),
            retryable: true,
        };
        ok(work(
            &mut s,
            WorkCommand::CompleteTask {
                task_id: task,
                attempt,
                worker_id: WorkerId(1),
                outcome,
            },
        ));
    }
    // The job cleans what it left (one clean task), then fails.
    let job = s
        .work
        .jobs
        .values()
        .find(|j| matches!(j.kind, JobKind::Backup { .. }))
        .unwrap();
    assert_eq!(job.status, JobStatus::Cleaning);
    let clean = s.assignable_tasks(WorkerId(1));
    assert_eq!(clean.len(), 1);
    assert!(matches!(
        s.work.tasks[&TaskId(clean[0].0)].spec,
        TaskSpec::Clean { .. }
    ));
    let attempt = assign(&mut s, TaskId(clean[0].0), WorkerId(1));
    ok(work(
        &mut s,
        WorkCommand::CompleteTask {
            task_id: TaskId(clean[0].0),
            attempt,
            worker_id: WorkerId(1),
            outcome: TaskOutcome::Cleaned {
                deleted: 3,
                failed: vec![],
            },
        },
    ));
    assert!(s.assignable_tasks(WorkerId(1)).is_empty());
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
