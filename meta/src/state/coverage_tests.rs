//! Unit tests of `coverage.rs`.

use backstop_common::task::TaskOutcome;
use backstop_common::{BackupSetId, CopyId, TaskId, WorkerId};

use crate::command::WorkCommand;
use crate::state::test_support::*;
use crate::state::*;

/// NOARCHIVELOG while a backup ran: the set's range was never archived, yet it used to
/// finish AVAILABLE.
#[test]
fn a_backup_whose_log_was_not_archived_fails_with_the_reason() {
    let mut s = setup();
    let archive = start_archive(&mut s);
    start_and_prepare(&mut s, false, 100);
    noarchivelog(&mut s, archive, 110);
    copy_part(&mut s);
    finalize(&mut s, 150);
    let job = s
        .work
        .jobs
        .values()
        .find(|j| matches!(j.kind, JobKind::Backup { .. }))
        .unwrap();
    assert_eq!(
        job.status,
        JobStatus::Cleaning,
        "the partial set is cleaned"
    );
    assert!(job.comment.contains("[100, 150]"), "{}", job.comment);
    assert!(job.comment.contains("STOP at SCN 110"), "{}", job.comment);
    run_next(
        &mut s,
        TaskOutcome::Cleaned {
            deleted: 3,
            failed: vec![],
        },
    );
    let job = s
        .work
        .jobs
        .values()
        .find(|j| matches!(j.kind, JobKind::Backup { .. }))
        .unwrap();
    assert_eq!(
        (job.status, job.result.as_deref()),
        (JobStatus::Failed, Some(LOG_COVERAGE_BROKEN))
    );
    let set = &s.work.sets[&(T1, BackupSetId(1), CopyId(0))];
    assert_eq!(set.file_status, "INCOMPLETE");
}

/// A round going INTERRUPTED while a set waits for its log fails the set too.
#[test]
fn a_round_interrupted_while_a_set_waits_for_its_log_fails_the_backup() {
    let mut s = setup();
    let archive = start_archive(&mut s);
    start_and_prepare(&mut s, false, 100);
    copy_part(&mut s);
    finalize(&mut s, 150);
    let job = copy_or_backup_job(&s);
    assert_eq!(job.status, JobStatus::Doing);
    assert!(
        job.comment.contains("waiting for the archive"),
        "{}",
        job.comment
    );
    ok(work(
        &mut s,
        WorkCommand::CompleteTask {
            task_id: TaskId(archive),
            attempt: 1,
            worker_id: WorkerId(1),
            outcome: TaskOutcome::Interrupted {
                reason: "segment 0.log was removed before it was archived".into(),
            },
        },
    ));
    let job = copy_or_backup_job(&s);
    assert_eq!(job.status, JobStatus::Cleaning);
    assert!(job.comment.contains("INTERRUPTED"), "{}", job.comment);
    assert!(job.comment.contains("removed before"), "{}", job.comment);
}
