//! Unit tests of `archive_copy.rs`.

use backstop_common::task::TaskOutcome;
use backstop_common::{Code, Scn};
use backstop_common::{CopyId, PieceId, RoundId, WorkerId};

use crate::command::WorkCommand;
use crate::state::test_support::*;
use crate::state::*;
use backstop_common::task::Control;

#[test]
fn stop_backup_archivelog_pauses_and_start_resumes_one_follower_at_a_time() {
    let mut s = with_full_backup();
    let start = WorkCommand::SetArchiveCopy {
        enable: true,
        tenants: vec![],
    };
    ok(work(&mut s, start.clone()));
    let c = &s.work.archive_copies[&(TenantId(1001), CopyId(1))];
    assert_eq!(c.status, CopyArchiveStatus::Doing);
    let task = s.assignable_tasks(WorkerId(2))[0];
    let attempt = assign(&mut s, task, WorkerId(2));
    let progress = backstop_common::task::CopyProgress {
        round_id: RoundId(1),
        piece_id: PieceId(0),
        start_scn: Scn(100),
        checkpoint_scn: Scn(150),
        frozen: false,
        bytes: 50,
        lag_ms: 7,
    };
    ok(work(
        &mut s,
        WorkCommand::CopyCheckpoint {
            task_id: task,
            attempt,
            worker_id: WorkerId(2),
            progress,
        },
    ));
    assert_eq!(
        s.work.pieces[&(TenantId(1001), RoundId(1), PieceId(0), CopyId(1))].checkpoint_scn,
        Scn(150)
    );
    ok(work(
        &mut s,
        WorkCommand::SetArchiveCopy {
            enable: false,
            tenants: vec![],
        },
    ));
    assert_eq!(
        s.work.archive_copies[&(TenantId(1001), CopyId(1))].status,
        CopyArchiveStatus::Paused
    );
    assert_eq!(s.task_control(task), Some(Control::Stop));
    // START while the old follower is still finishing: the new one waits for it.
    ok(work(&mut s, start));
    assert!(s.assignable_tasks(WorkerId(2)).is_empty());
    ok(work(
        &mut s,
        WorkCommand::CompleteTask {
            task_id: task,
            attempt,
            worker_id: WorkerId(2),
            outcome: TaskOutcome::ArchiveCopyStopped,
        },
    ));
    assert_eq!(s.assignable_tasks(WorkerId(2)).len(), 1);
    // Piece copies and the continuous copy exclude each other.
    assert_eq!(
        err(work(
            &mut s,
            WorkCommand::StartPieceCopy {
                selection: CopySelection {
                    tenants: vec![],
                    id: None,
                    max_backup_times: None,
                    dest: None,
                },
                with_active: false,
            },
        )),
        Code::NotSupported
    );
}
