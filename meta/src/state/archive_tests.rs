//! Unit tests of `archive.rs`.

use backstop_common::Scn;
use backstop_common::task::TaskOutcome;
use backstop_common::{RoundId, TaskId, WorkerId};

use crate::command::WorkCommand;
use crate::state::test_support::*;
use crate::state::*;

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
            task_id: TaskId(task),
            attempt: 1,
            worker_id: WorkerId(1),
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
    assert_eq!(
        s.current_round(TenantId(1001)).unwrap().round_id,
        RoundId(2)
    );
}

/// A `dir://` tenant whose log segments are not named by their start SCN retried its
/// archive task every second, forever, with the round at BEGINNING and no reason. A
/// permanent error now gets bounded attempts, then the round is INTERRUPTED with it.
#[test]
fn a_permanent_archive_error_interrupts_the_round_after_bounded_attempts() {
    let mut s = setup();
    ok(work(
        &mut s,
        WorkCommand::StartArchive {
            tenant: "t1".into(),
        },
    ));
    let task = s.assignable_tasks(WorkerId(1))[0];
    let reason = "log segments 1.log and 2.log are not contiguous";
    for attempt in 1..=MAX_ATTEMPTS {
        assert_eq!(assign(&mut s, task, WorkerId(1)), attempt);
        ok(work(
            &mut s,
            WorkCommand::CompleteTask {
                task_id: task,
                attempt,
                worker_id: WorkerId(1),
                outcome: TaskOutcome::Failed {
                    reason: reason.into(),
                    retryable: false,
                },
            },
        ));
        let round = s.current_round(T1).unwrap();
        if attempt < MAX_ATTEMPTS {
            assert_eq!(round.status, RoundStatus::Beginning);
            assert!(round.comment.contains(reason), "{}", round.comment);
        }
    }
    let round = s.current_round(T1).unwrap();
    assert_eq!(round.status, RoundStatus::Interrupted);
    assert!(round.comment.contains(reason), "{}", round.comment);
    assert!(
        s.assignable_tasks(WorkerId(1)).is_empty(),
        "no more retries"
    );
    // A transient error still retries without end.
    ok(work(
        &mut s,
        WorkCommand::StopArchive {
            tenant: "t1".into(),
        },
    ));
    ok(work(
        &mut s,
        WorkCommand::StartArchive {
            tenant: "t1".into(),
        },
    ));
    let task = s.assignable_tasks(WorkerId(1))[0];
    for attempt in 1..=MAX_ATTEMPTS + 2 {
        assert_eq!(assign(&mut s, task, WorkerId(1)), attempt);
        ok(work(
            &mut s,
            WorkCommand::CompleteTask {
                task_id: task,
                attempt,
                worker_id: WorkerId(1),
                outcome: TaskOutcome::Failed {
                    reason: "storage: 503".into(),
                    retryable: true,
                },
            },
        ));
    }
    assert_eq!(s.current_round(T1).unwrap().status, RoundStatus::Beginning);
}
