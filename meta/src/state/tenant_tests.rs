//! Unit tests of the tenant, parameter and user rules in `mod.rs`.

use super::*;

fn req(command: Command) -> Request {
    Request {
        time_ms: 1000,
        command,
    }
}

fn create(name: &str) -> Request {
    req(Command::CreateTenant {
        name: name.to_string(),
        source: "dir:///x".to_string(),
        comment: String::new(),
        if_not_exists: false,
        root_password: backstop_common::auth::PasswordHash::new(""),
    })
}

#[test]
fn tenant_ids_start_at_1001_and_names_are_unique_case_insensitively() {
    let mut s = MetaState::default();
    let (r, _) = s.apply(&create("t1"));
    assert!(matches!(r, Response::Ok(Reply::Tenant(ref t)) if t.tenant_id == TenantId(1001)));
    let (r, touched) = s.apply(&create("T1"));
    assert!(
        matches!(
            r,
            Response::Err {
                code: Code::EntryExist,
                ..
            }
        ),
        "{r:?}"
    );
    assert_eq!(touched, vec![Touched::Cluster]);
    let (r, _) = s.apply(&create("t2"));
    assert!(matches!(r, Response::Ok(Reply::Tenant(ref t)) if t.tenant_id == TenantId(1002)));
}

#[test]
fn clock_never_goes_back() {
    let mut s = MetaState::default();
    s.apply(&Request {
        time_ms: 5000,
        command: Command::DropTenant {
            name: "x".into(),
            if_exists: true,
        },
    });
    let (r, _) = s.apply(&Request {
        time_ms: 10,
        ..create("t1")
    });
    let Response::Ok(Reply::Tenant(t)) = r else {
        panic!("{r:?}")
    };
    assert_eq!(t.create_time_ms, 5000);
}

#[test]
fn sys_cannot_be_dropped_and_unknown_tenants_are_typed_errors() {
    let mut s = MetaState::default();
    let (r, _) = s.apply(&req(Command::DropTenant {
        name: "SYS".into(),
        if_exists: false,
    }));
    assert!(matches!(
        r,
        Response::Err {
            code: Code::NotSupported,
            ..
        }
    ));
    let (r, _) = s.apply(&req(Command::DropTenant {
        name: "nope".into(),
        if_exists: false,
    }));
    assert!(matches!(
        r,
        Response::Err {
            code: Code::EntryNotExist,
            ..
        }
    ));
    let (r, _) = s.apply(&req(Command::SetParameter {
        param: Param::BackupDest,
        tenant: Some("nope".into()),
        value: "file:///a".into(),
    }));
    assert!(matches!(
        r,
        Response::Err {
            code: Code::EntryNotExist,
            ..
        }
    ));
}

#[test]
fn destination_rules_follow_oceanbase() {
    let mut s = MetaState::default();
    let set = |p: Param, v: &str| {
        req(Command::SetParameter {
            param: p,
            tenant: None,
            value: v.into(),
        })
    };
    let (r, _) = s.apply(&set(Param::BackupBackupDest, "file:///copy"));
    assert!(
        matches!(
            r,
            Response::Err {
                code: Code::NotSupported,
                ..
            }
        ),
        "{r:?}"
    );
    assert!(matches!(
        s.apply(&set(Param::BackupDest, "file:///primary")).0,
        Response::Ok(_)
    ));
    let (r, _) = s.apply(&set(Param::BackupBackupDest, "file:///primary"));
    assert!(
        matches!(
            r,
            Response::Err {
                code: Code::InvalidBackupDest,
                ..
            }
        ),
        "{r:?}"
    );
    assert!(matches!(
        s.apply(&set(Param::BackupBackupDest, "file:///copy")).0,
        Response::Ok(_)
    ));
    let (r, _) = s.apply(&set(Param::BackupDest, "file:///other"));
    assert!(
        matches!(
            r,
            Response::Err {
                code: Code::NotSupported,
                ..
            }
        ),
        "{r:?}"
    );
    assert!(matches!(
        s.apply(&set(Param::BackupBackupDest, "")).0,
        Response::Ok(_)
    ));
    assert!(matches!(
        s.apply(&set(Param::BackupDest, "file:///other")).0,
        Response::Ok(_)
    ));
    assert_eq!(
        s.param(Param::BackupDest, Some(TenantId(1001))),
        "file:///other"
    );
}

mod source {
    use crate::command::{Command, Reply, Response, WorkCommand};
    use crate::state::test_support::*;
    use crate::state::*;
    use backstop_common::Code;
    const PG_A: &str = "postgresql://bk@127.0.0.1:5432/postgres?pgdata=/a";
    const PG_B: &str = "postgresql://bk@127.0.0.1:5433/postgres?pgdata=/b";

    fn set_source(s: &mut MetaState, source: &str, id: Option<(u64, u32)>) -> Response {
        s.apply(&req(Command::SetTenantSource {
            name: "t1".into(),
            source: source.into(),
            identity: id.map(|(system_identifier, timeline)| SourceIdentity {
                system_identifier,
                timeline,
            }),
        }))
        .0
    }

    #[test]
    fn a_new_timeline_of_the_same_system_opens_the_next_incarnation_once_the_tenant_is_idle() {
        let mut s = setup();
        // t1 as a PostgreSQL tenant whose create recorded its identity.
        s.tenants.get_mut(&T1).unwrap().source = PG_A.into();
        ok(set_source(&mut s, PG_A, Some((7, 1))));
        assert_eq!(
            s.tenants[&T1].identity,
            Some(SourceIdentity {
                system_identifier: 7,
                timeline: 1
            })
        );
        let archive = start_archive(&mut s);
        backup(&mut s, false, 100, 150);
        // Busy: neither another source nor a new timeline while the archive runs.
        assert_eq!(
            err(set_source(&mut s, PG_B, Some((7, 2)))),
            Code::BackupInProgress
        );
        assert_eq!(
            err(set_source(&mut s, PG_A, Some((7, 2)))),
            Code::BackupInProgress
        );
        // Another database, or another source kind: refused whatever the state.
        assert_eq!(
            err(set_source(&mut s, PG_A, Some((8, 1)))),
            Code::InvalidArgument
        );
        assert_eq!(
            err(set_source(&mut s, "dir:///x", None)),
            Code::InvalidArgument
        );
        assert_eq!(s.tenants[&T1].incarnation, 1);
        noarchivelog(&mut s, archive, 200);
        let Reply::Tenant(t) = ok(set_source(&mut s, PG_B, Some((7, 2)))) else {
            panic!()
        };
        assert_eq!((t.incarnation, t.source.as_str()), (2, PG_B));
        // Checking the same cluster again changes nothing.
        ok(set_source(&mut s, PG_B, Some((7, 2))));
        assert_eq!(s.tenants[&T1].incarnation, 2);
        // New rounds go to incarnation 2; an incremental never reaches back to a
        // set of incarnation 1.
        ok(work(
            &mut s,
            WorkCommand::StartArchive {
                tenant: "t1".into(),
            },
        ));
        let round = s.work.rounds.values().max_by_key(|r| r.round_id).unwrap();
        assert_eq!(round.dest.incarnation, 2);
        let r = work(
            &mut s,
            WorkCommand::StartBackup {
                tenant: "t1".into(),
                incremental: true,
            },
        );
        assert_eq!(err(r), Code::BackupCanNotStart);
    }
}
