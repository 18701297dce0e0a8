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
