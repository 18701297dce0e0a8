//! Unit tests of `delete.rs`.

use backstop_common::Code;
use backstop_common::task::TaskOutcome;
use backstop_common::{BackupSetId, CopyId, WorkerId};

use crate::command::{Reply, WorkCommand};
use crate::state::test_support::*;
use crate::state::*;

/// `DELETE BACKUPSET n COPY k` was accepted while a cluster-level copy job (which
/// carries the sys tenant) had an incremental on `n` queued.
#[test]
fn delete_is_refused_while_a_cluster_level_copy_job_works_for_the_tenant() {
    let mut s = with_full_backup();
    ok(set_copy(&mut s, Some(1), None, &[]));
    copied(&mut s);
    let inc = backup(&mut s, true, 300, 320);
    let second = backup(&mut s, true, 400, 420);
    assert!(second > inc);
    ok(set_copy(&mut s, None, None, &[]));
    assert_eq!(copy_job(&s).tenant_id, TenantId::SYS);
    assert_eq!(
        err(delete_set(&mut s, 1, CopyId(1))),
        Code::BackupInProgress
    );
    assert_eq!(
        err(delete_set(&mut s, 1, CopyId(0))),
        Code::BackupInProgress
    );
}

/// Right after a failed-over set finalized it had a scrub pending; a `DELETE
/// BACKUPSET` in that window was swallowed by the scrub and the set stayed at the
/// destination, unaccounted for.
#[test]
fn a_delete_is_never_swallowed_by_a_pending_scrub() {
    let mut s = with_full_backup();
    let dest = s.work.sets[&(T1, BackupSetId(1), CopyId(0))].dest.clone();
    s.scrub_later(dest, "data/backup_set_1_full".into(), 1_000);
    ok(delete_set(&mut s, 1, CopyId(0)));
    assert_eq!(s.work.leftovers.len(), 1);
    let l = s.work.leftovers.values().next().unwrap();
    assert!(!l.item.keep_referenced, "the scrub became the delete");
    assert_eq!(l.item.index.as_deref(), Some("info/backup_set_1"));
    ok(work(&mut s, WorkCommand::StartCleaner));
    let clean = s.assignable_tasks(WorkerId(2))[0];
    let items = clean_items(&s, clean.0);
    assert!(!items[0].keep_referenced);
    assert_eq!(items[0].index.as_deref(), Some("info/backup_set_1"));
    let attempt = assign(&mut s, clean, WorkerId(2));
    ok(work(
        &mut s,
        WorkCommand::CompleteTask {
            task_id: clean,
            attempt,
            worker_id: WorkerId(2),
            outcome: TaskOutcome::Cleaned {
                deleted: 3,
                failed: vec![],
            },
        },
    ));
    assert_eq!(
        s.work.sets[&(T1, BackupSetId(1), CopyId(0))].file_status,
        "DELETED"
    );
    assert!(s.work.leftovers.is_empty());
    let _ = Reply::Done;
}
