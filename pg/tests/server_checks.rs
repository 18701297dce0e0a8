//! `backstop_pg::check` against real PostgreSQL servers started here as the
//! `postgres` user (initdb and postgres refuse root): what `CREATE TENANT … SOURCE =
//! 'postgresql://…'` accepts, and the clear error for each thing a DBA must fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use backstop_common::source::PgSource;
use backstop_pg::{PgError, check};
use backstop_testkit::pg::PgServer;

fn uri(s: &PgServer, user: &str, pgdata: &Path) -> PgSource {
    PgSource::parse(&format!(
        "postgresql://{user}@/postgres?host={}&port={}&pgdata={}",
        s.root.display(),
        s.port,
        pgdata.display()
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_can_be_protected_is_accepted_and_each_problem_has_its_own_error() {
    let mut s = PgServer::init("wal_level = replica").unwrap();
    s.start(30).unwrap();

    let info = check(&uri(&s, "postgres", &s.pgdata), true).await.unwrap();
    assert_ne!(info.system_identifier, 0);
    assert_eq!(info.timeline, 1);
    assert_eq!(info.wal_segment_size, 16 * 1024 * 1024);
    assert!(info.server_version_num >= 150000, "{info:?}");

    // pgdata that is not the server's data directory.
    let err = check(&uri(&s, "postgres", Path::new("/var/tmp")), true)
        .await
        .unwrap_err();
    assert!(matches!(err, PgError::DataDirectory { .. }), "{err}");
    assert!(err.to_string().contains("SHOW data_directory"), "{err}");

    // A role without REPLICATION.
    let out = s
        .psql("CREATE ROLE plain LOGIN; GRANT pg_read_all_settings TO plain")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = check(&uri(&s, "plain", &s.pgdata), true).await.unwrap_err();
    assert!(matches!(err, PgError::NoReplication { .. }), "{err}");
    assert!(
        err.to_string().contains("ALTER ROLE plain REPLICATION"),
        "{err}"
    );

    // A server that is down.
    s.stop();
    let err = check(&uri(&s, "postgres", &s.pgdata), true)
        .await
        .unwrap_err();
    assert!(matches!(err, PgError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("cannot connect"), "{err}");

    // wal_level = minimal.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(s.pgdata.join("postgresql.conf"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"\nwal_level = minimal\nmax_wal_senders = 0\n").unwrap();
    s.start(30).unwrap();
    let err = check(&uri(&s, "postgres", &s.pgdata), true)
        .await
        .unwrap_err();
    assert!(matches!(err, PgError::WalLevel { .. }), "{err}");
    assert!(err.to_string().contains("wal_level = replica"), "{err}");
}
