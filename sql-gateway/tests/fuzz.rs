//! Property tests: the statement parser and the MySQL connection handler never panic
//! and never hang, whatever they are fed. CI runs a short pass; for a long run:
//! `PROPTEST_CASES=1000000 cargo nextest run -p backstop-sql-gateway --test fuzz`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use backstop_client::{MetaClient, Route};
use backstop_sql_gateway::errpacket::ErrorRewriter;
use backstop_sql_gateway::shim::Backend;
use backstop_sql_gateway::statement;
use opensrv_mysql::AsyncMysqlIntermediary;
use proptest::prelude::*;
use tokio::io::AsyncWriteExt;

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Words that steer inputs into the grammar's deeper branches.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "ALTER",
            "SYSTEM",
            "SET",
            "BACKUP",
            "INCREMENTAL",
            "DATABASE",
            "ARCHIVELOG",
            "NOARCHIVELOG",
            "TENANT",
            "=",
            ",",
            ";",
            "VALIDATE",
            "BACKUPSET",
            "BACKUPPIECE",
            "COPY",
            "CANCEL",
            "CREATE",
            "DROP",
            "USER",
            "IF",
            "NOT",
            "EXISTS",
            "SOURCE",
            "COMMENT",
            "IDENTIFIED",
            "BY",
            "@",
            "'%'",
            "WITH",
            "ACTIVE",
            "(",
            ")",
            "/*",
            "*/",
            "--",
            "'",
            "\"",
            "`",
        ])
        .prop_map(str::to_string),
        "[a-z_]{1,8}",
        "'[^']{0,12}'",
        "[0-9]{1,22}",
    ]
}

proptest! {
    #![proptest_config(cases(5_000))]

    #[test]
    fn the_parser_never_panics_on_any_text(s in "\\PC{0,200}") {
        let _ = statement::parse(&s);
    }

    #[test]
    fn the_parser_never_panics_on_near_statements(words in prop::collection::vec(token(), 0..16)) {
        let _ = statement::parse(&words.join(" "));
    }
}

proptest! {
    #![proptest_config(cases(300))]

    /// Arbitrary bytes as a client's first packets: the handler answers or closes,
    /// within a bound, without panicking.
    #[test]
    fn the_connection_handler_survives_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            // Nothing listens there: a login gives up after 200 ms of retries.
            let meta = MetaClient::with(vec!["127.0.0.1:1".into()], Route::Members, Duration::from_millis(200));
            let backend = Backend::new(meta, 1, Default::default(), Default::default(), Default::default());
            let (mut client, server) = tokio::io::duplex(64 * 1024);
            let (sr, sw) = tokio::io::split(server);
            let serve = tokio::spawn(AsyncMysqlIntermediary::run_on(backend, sr, ErrorRewriter::new(sw)));
            let _ = client.write_all(&bytes).await;
            // The client goes away: the handler must notice and end.
            drop(client);
            let _ = tokio::time::timeout(Duration::from_secs(5), serve).await.expect("the handler must not hang");
        });
    }
}
