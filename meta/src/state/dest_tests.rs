//! Unit tests of `dest.rs`.

use backstop_common::Code;
use backstop_common::params::Param;
use backstop_common::task::TaskSpec;
use backstop_common::{BackupSetId, CopyId};

use crate::command::Command;
use crate::state::test_support::*;
use crate::state::*;

/// Reproduced end to end: a complete copy 1, then a tenant-level copy of the same set
/// to the same `backup_backup_dest` got copy 20001 and wrote into the same directory;
/// its cancel deleted copy 1's objects while copy 1 stayed AVAILABLE.
#[test]
fn a_tenant_level_copy_to_the_same_root_reuses_its_copy_id_and_is_a_no_op() {
    let mut s = with_full_backup();
    ok(set_copy(&mut s, None, None, &[]));
    copied(&mut s);
    assert_eq!(
        s.work.sets[&(T1, BackupSetId(1), CopyId(1))].file_status,
        "AVAILABLE"
    );
    // Tenant level, the parameter's destination: the same root keeps copy_id 1, and the
    // set is already complete there, so the job ends at once with REACH_COPY_LIMIT.
    ok(set_copy(&mut s, None, None, &["t1"]));
    assert_eq!(
        copy_job(&s).result.as_deref(),
        Some("OB_BACKUP_BACKUP_REACH_COPY_LIMIT")
    );
    // The same root named explicitly, by a cluster-level job: the same.
    ok(set_copy(&mut s, None, Some("file:///copy"), &[]));
    assert_eq!(
        copy_job(&s).result.as_deref(),
        Some("OB_BACKUP_BACKUP_REACH_COPY_LIMIT")
    );
    assert_eq!(
        err(set_copy(&mut s, Some(1), None, &["t1"])),
        Code::BackupBackupCanNotStart,
        "set 1 already has its copy at this root"
    );
    assert!(
        s.work
            .sets
            .keys()
            .all(|(_, _, c)| *c == CopyId(0) || *c == CopyId(1)),
        "no second copy id at one root: {:?}",
        s.work.sets.keys().collect::<Vec<_>>()
    );
    assert!(
        s.work
            .tasks
            .values()
            .all(|t| !matches!(t.spec, TaskSpec::Clean { .. })),
        "nothing was cleaned"
    );
    assert_eq!(
        s.work.sets[&(T1, BackupSetId(1), CopyId(1))].file_status,
        "AVAILABLE"
    );
}

/// Changing `backup_dest` while archiving let new sets land at the new destination
/// while their log kept going to the old one.
#[test]
fn backup_dest_cannot_move_while_a_tenant_archives_to_it() {
    let mut s = setup();
    let archive = start_archive(&mut s);
    let set_dest = |s: &mut MetaState, v: &str| {
        s.apply(&req(Command::SetParameter {
            param: Param::BackupDest,
            tenant: None,
            value: v.into(),
        }))
        .0
    };
    assert_eq!(
        err(set_dest(&mut s, "file:///elsewhere")),
        Code::BackupInProgress
    );
    // The same root (an S3 key rotation would be this) is not a move.
    ok(set_dest(&mut s, "file:///dest"));
    noarchivelog(&mut s, archive, 110);
    ok(set_dest(&mut s, "file:///elsewhere"));
}
