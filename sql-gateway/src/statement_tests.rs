//! Unit tests of `statement.rs`.

use super::*;
use crate::ast::ManageCall;
use backstop_common::CopyId;
use backstop_proto::meta::BackupVerb;

#[test]
fn parses_the_statements_case_insensitively() {
    assert_eq!(
        parse("alter system set backup_dest = 'file:///x' tenant = t1;").unwrap(),
        Some(Statement::SetParameter {
            name: "backup_dest".into(),
            value: "file:///x".into(),
            tenant: Some("t1".into())
        })
    );
    assert_eq!(
        parse("ALTER SYSTEM SET backup_dest 'file:///x'").unwrap(),
        Some(Statement::SetParameter {
            name: "backup_dest".into(),
            value: "file:///x".into(),
            tenant: None
        })
    );
    assert_eq!(
        parse("Alter System Archivelog").unwrap(),
        Some(Statement::Archivelog {
            enable: true,
            tenants: vec![]
        })
    );
    assert_eq!(
        parse("ALTER SYSTEM BACKUP INCREMENTAL DATABASE TENANT = a, b").unwrap(),
        Some(Statement::BackupDatabase {
            incremental: true,
            tenants: vec!["a".into(), "b".into()]
        })
    );
    assert_eq!(
        parse("create tenant if not exists t1 source = 'dir:///d' comment 'c'").unwrap(),
        Some(Statement::CreateTenant {
            name: "t1".into(),
            source: "dir:///d".into(),
            comment: "c".into(),
            if_not_exists: true,
            root_password: None,
        })
    );
    assert_eq!(
        parse("CREATE TENANT t2 SOURCE 'dir:///d' ROOT PASSWORD = 'pw' COMMENT 'c'").unwrap(),
        Some(Statement::CreateTenant {
            name: "t2".into(),
            source: "dir:///d".into(),
            comment: "c".into(),
            if_not_exists: false,
            root_password: Some("pw".into()),
        })
    );
    assert_eq!(
        parse("alter tenant pg1 source = 'postgresql://u@h:5432/d?pgdata=/p'").unwrap(),
        Some(Statement::AlterTenantSource {
            name: "pg1".into(),
            source: "postgresql://u@h:5432/d?pgdata=/p".into(),
        })
    );
    assert!(parse("ALTER TENANT pg1 SOURCE").is_err());
    assert!(matches!(
        parse("ALTER SYSTEM DELETE OBSOLETE BACKUP").unwrap(),
        Some(Statement::NotYet(_))
    ));
    // Each statement is its own variant; the call it makes is what matters here.
    let manage = |sql: &str| match parse(sql).map(|s| s.and_then(Statement::manage_call)) {
        Ok(Some(ManageCall {
            verb,
            tenants,
            id,
            max_backup_times,
            with_active,
            dest,
            copy_id,
        })) => (
            verb,
            tenants,
            id,
            max_backup_times,
            with_active,
            dest,
            copy_id,
        ),
        other => panic!("{sql}: {other:?}"),
    };
    assert_eq!(
        manage("alter system cancel backup backupset;").0,
        BackupVerb::CancelBackupBackupset
    );
    assert_eq!(
        manage("ALTER SYSTEM CANCEL BACKUP BACKUPPIECE").0,
        BackupVerb::CancelBackupBackuppiece
    );
    assert_eq!(
        manage("ALTER SYSTEM CANCEL BACKUP TENANT = t1").1,
        vec!["t1".to_string()]
    );
    assert_eq!(
        manage("ALTER SYSTEM CANCEL ALL BACKUP FORCE").0,
        BackupVerb::CancelAllBackupForce
    );
    assert_eq!(
        manage("ALTER SYSTEM STOP BACKUP ARCHIVELOG").0,
        BackupVerb::StopBackupArchivelog
    );
    assert_eq!(
        manage("ALTER SYSTEM SUSPEND BACKUP").0,
        BackupVerb::SuspendBackup
    );
    let all = manage(
        "ALTER SYSTEM BACKUP BACKUPSET ALL NOT BACKED UP 2 TIMES TENANT t1 BACKUP_BACKUP_DEST = 'file:///c'",
    );
    assert_eq!(
        (all.0, all.2, all.3, all.5.as_str()),
        (BackupVerb::BackupBackupset, 0, Some(2), "file:///c")
    );
    assert_eq!(manage("ALTER SYSTEM BACKUP BACKUPSET = 7").2, 7);
    let piece = manage("ALTER SYSTEM BACKUP BACKUPPIECE ALL WITH ACTIVE PIECE");
    assert_eq!((piece.0, piece.4), (BackupVerb::BackupBackuppiece, true));
    assert!(manage("ALTER SYSTEM BACKUP BACKUPPIECE ALL WITH ACTIVE").4);
    let v = manage("ALTER SYSTEM VALIDATE BACKUPSET 3 COPY 1");
    assert_eq!((v.0, v.2, v.6), (BackupVerb::ValidateCopy, 3, CopyId(1)));
    let d = manage("alter system delete backupset 7 copy 2 tenant = t1;");
    assert_eq!(
        (d.0, d.1.as_slice(), d.2, d.6),
        (
            BackupVerb::DeleteBackupset,
            &["t1".to_string()][..],
            7,
            CopyId(2)
        )
    );
    let d = manage("ALTER SYSTEM DELETE BACKUPSET 7");
    assert_eq!((d.0, d.2, d.6), (BackupVerb::DeleteBackupset, 7, CopyId(0)));
    assert!(parse("ALTER SYSTEM BACKUP BACKUPSET ALL NOT BACKED 2 TIMES").is_err());
    assert!(parse("ALTER SYSTEM START BACKUP").is_err());
    assert_eq!(
        parse("ALTER SYSTEM ARCHIVELOG TENANT_ID = 1001").unwrap(),
        Some(Statement::Archivelog {
            enable: true,
            tenants: vec!["#1001".into()]
        })
    );
    assert_eq!(parse("select 1").unwrap(), None);
    assert_eq!(
        parse("CREATE USER 'alice'@'%' IDENTIFIED BY 'pw'").unwrap(),
        Some(Statement::CreateUser {
            name: "alice".into(),
            password: "pw".into(),
            if_not_exists: false
        })
    );
    assert_eq!(
        parse("alter user bob identified by 'x';").unwrap(),
        Some(Statement::AlterUser {
            name: "bob".into(),
            password: "x".into()
        })
    );
    assert_eq!(
        parse("DROP USER IF EXISTS 'bob'@'localhost'").unwrap(),
        Some(Statement::DropUser {
            name: "bob".into(),
            if_exists: true
        })
    );
}

#[test]
fn syntax_errors_say_where() {
    let e = parse("ALTER SYSTEM BACKUP DATABSE").unwrap_err();
    assert_eq!(e.errno, 1064);
    assert!(e.message.contains("DATABSE"), "{}", e.message);
    assert_eq!(
        parse("ALTER SYSTEM SET backup_dest = 'x' extra")
            .unwrap_err()
            .errno,
        1064
    );
    assert_eq!(
        parse("ALTER SYSTEM SET x = 'unterminated")
            .unwrap_err()
            .errno,
        1064
    );
}

#[test]
fn passwords_and_grants_parse_in_mysqls_spellings() {
    assert_eq!(
        parse("SET PASSWORD = 'a'").unwrap(),
        Some(Statement::SetPassword {
            name: None,
            password: "a".into()
        })
    );
    assert_eq!(
        parse("set password for 'bob'@'%' = PASSWORD('b');").unwrap(),
        Some(Statement::SetPassword {
            name: Some("bob".into()),
            password: "b".into()
        })
    );
    assert_eq!(
        parse("GRANT BACKUP_ADMIN ON *.* TO 'alice'@'%'").unwrap(),
        Some(Statement::Grant {
            privilege: "BACKUP_ADMIN".into(),
            name: "alice".into(),
            grant: true
        })
    );
    assert_eq!(
        parse("revoke backup_admin on *.* from alice").unwrap(),
        Some(Statement::Grant {
            privilege: "backup_admin".into(),
            name: "alice".into(),
            grant: false
        })
    );
    let err = parse("GRANT BACKUP_ADMIN ON db.* TO alice").unwrap_err();
    assert_eq!(err.errno, 1064, "{}", err.message);
    let err = parse("SET PASSWORD FOR bob 'zq9secret'").unwrap_err();
    assert!(!err.message.contains("zq9secret"), "{}", err.message);
}
