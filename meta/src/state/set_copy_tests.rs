//! Unit tests of `set_copy.rs`.

use backstop_common::Code;
use backstop_common::task::{TaskOutcome, TaskSpec};
use backstop_common::{BackupSetId, CopyId, WorkerId};

use crate::command::WorkCommand;
use crate::state::test_support::*;
use crate::state::*;

#[test]
fn a_backupset_copy_runs_once_at_a_time_and_records_its_copy() {
    let mut s = with_full_backup();
    ok(set_copy(&mut s, None, None, &[]));
    assert_eq!(
        err(set_copy(&mut s, None, None, &[])),
        Code::Eagain,
        "one backupset copy job at a time"
    );
    let row = &s.work.sets[&(TenantId(1001), BackupSetId(1), CopyId(1))];
    assert_eq!(
        (row.file_status.as_str(), row.copy_id),
        ("COPYING", CopyId(1))
    );
    run_next(
        &mut s,
        TaskOutcome::SetCopied {
            input_bytes: 5,
            output_bytes: 5,
            reused_objects: 0,
        },
    );
    assert_eq!(copy_job(&s).status, JobStatus::Finished);
    assert_eq!(
        s.work.sets[&(TenantId(1001), BackupSetId(1), CopyId(1))].file_status,
        "AVAILABLE"
    );
    // Nothing left to copy: the job ends at once with REACH_COPY_LIMIT.
    ok(set_copy(&mut s, None, None, &[]));
    assert_eq!(
        copy_job(&s).result.as_deref(),
        Some("OB_BACKUP_BACKUP_REACH_COPY_LIMIT")
    );
    assert_eq!(
        err(set_copy(&mut s, Some(1), None, &[])),
        Code::BackupBackupCanNotStart,
        "set 1 already has this copy"
    );
    assert_eq!(
        err(set_copy(&mut s, Some(9), None, &["t1"])),
        Code::BackupBackupCanNotStart
    );
    // Copy id levels: an explicit destination, then a tenant-level job.
    ok(set_copy(&mut s, None, Some("file:///other"), &[]));
    assert!(
        s.work
            .sets
            .contains_key(&(TenantId(1001), BackupSetId(1), CopyId(10_001)))
    );
    run_next(
        &mut s,
        TaskOutcome::SetCopied {
            input_bytes: 5,
            output_bytes: 5,
            reused_objects: 0,
        },
    );
    ok(set_copy(&mut s, None, Some("file:///third"), &["t1"]));
    assert!(
        s.work
            .sets
            .contains_key(&(TenantId(1001), BackupSetId(1), CopyId(30_001)))
    );
}

/// The base's copy was deleted: a later `BACKUP BACKUPSET ALL` copies the base again
/// before the incremental, instead of counting the deleted copy as copied.
#[test]
fn an_incremental_is_copied_only_after_its_base_is_complete_at_the_copy() {
    let mut s = with_full_backup();
    ok(set_copy(&mut s, Some(1), None, &[]));
    copied(&mut s);
    ok(delete_set(&mut s, 1, CopyId(1)));
    ok(work(&mut s, WorkCommand::StartCleaner));
    run_next(
        &mut s,
        TaskOutcome::Cleaned {
            deleted: 3,
            failed: vec![],
        },
    );
    assert_eq!(
        s.work.sets[&(T1, BackupSetId(1), CopyId(1))].file_status,
        "DELETED"
    );
    let inc = backup(&mut s, true, 300, 320);
    assert_eq!(
        s.work.sets[&(T1, BackupSetId(inc), CopyId(0))].base_set_id,
        Some(BackupSetId(1))
    );
    ok(set_copy(&mut s, None, None, &[]));
    let first = s.assignable_tasks(WorkerId(2))[0];
    assert!(
        matches!(
            s.work.tasks[&first].spec,
            TaskSpec::CopySet {
                backup_set_id: BackupSetId(1),
                ..
            }
        ),
        "the base is copied again first"
    );
    assert!(
        !s.work.sets.contains_key(&(T1, BackupSetId(inc), CopyId(1))),
        "the incremental waits for its base"
    );
    copied(&mut s);
    assert_eq!(
        s.work.sets[&(T1, BackupSetId(1), CopyId(1))].file_status,
        "AVAILABLE"
    );
    assert_eq!(
        s.work.sets[&(T1, BackupSetId(inc), CopyId(1))].file_status,
        "COPYING"
    );
    copied(&mut s);
    assert_eq!(
        s.work.sets[&(T1, BackupSetId(inc), CopyId(1))].file_status,
        "AVAILABLE"
    );
    assert_eq!(copy_job(&s).status, JobStatus::Finished);
}

/// The set-copy queue skipped a base whose directory the cleaner held and then copied
/// the incremental anyway. Now the incremental is held back, with the reason in the job.
#[test]
fn an_incremental_whose_base_copy_is_skipped_is_held_back_with_the_reason() {
    let mut s = with_full_backup();
    let inc = backup(&mut s, true, 300, 320);
    // A cancelled copy of set 1 leaves its directory to the cleaner, which is at it.
    let (task, attempt, _) = copy_then_cancel(&mut s);
    report_canceled(&mut s, task, attempt);
    run_next(
        &mut s,
        TaskOutcome::Cleaned {
            deleted: 0,
            failed: vec!["data/backup_set_1_full/manifest".into()],
        },
    );
    ok(work(&mut s, WorkCommand::StartCleaner));
    assert!(s.work.leftovers.values().all(|l| l.claimed_by.is_some()));
    ok(set_copy(&mut s, None, None, &[]));
    let job = copy_job(&s);
    assert_eq!(job.status, JobStatus::Finished, "nothing could be copied");
    assert!(
        job.comment
            .contains(&format!("set {inc} of tenant 1001 held back")),
        "{}",
        job.comment
    );
    assert!(!s.work.sets.contains_key(&(T1, BackupSetId(inc), CopyId(1))));
}
