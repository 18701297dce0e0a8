//! Golden SQL tests: each `tests/cases/NAME.sql` runs statement by statement through
//! the real `mysql` client against a fresh `backstop standalone`; the transcript must
//! equal `tests/cases/NAME.out`. `BACKSTOP_BLESS=1` rewrites the `.out` files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::path::Path;
use std::process::Command;

use harness::{free_port, spawn, wait_for};

fn statements(sql: &str) -> Vec<String> {
    let body: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    body.split(";\n")
        .map(|s| s.trim().trim_end_matches(';').trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn transcript(port: u16, sql: &str) -> String {
    let mut out = String::new();
    for stmt in statements(sql) {
        let r = Command::new("mysql")
            .args([
                "-h127.0.0.1",
                &format!("-P{port}"),
                "-uroot@sys",
                "--batch",
                "--raw",
                "--skip-ssl",
                "-e",
                &stmt,
            ])
            .output()
            .expect("the mysql client");
        out.push_str(&format!("> {stmt};\n"));
        out.push_str(&String::from_utf8_lossy(&r.stdout));
        let err = String::from_utf8_lossy(&r.stderr);
        // "ERROR 9002 (HY000) at line 1: …" → "ERROR 9002 (HY000): …"
        out.push_str(&err.replace(" at line 1", ""));
    }
    out
}

#[test]
fn golden_sql_cases() {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut names: Vec<String> = std::fs::read_dir(&cases)
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".sql")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 5, "{names:?}");
    let bless = std::env::var("BACKSTOP_BLESS").is_ok();
    let mut failures = Vec::new();
    for name in names {
        let dir = tempfile::tempdir().unwrap();
        let meta = format!("127.0.0.1:{}", free_port());
        let port = free_port();
        let _p = spawn(
            &[
                "standalone",
                "--data-dir",
                dir.path().join("bs").to_str().unwrap(),
                "--listen",
                &meta,
                "--sql-listen",
                &format!("127.0.0.1:{port}"),
            ],
            &dir.path().join("log"),
        );
        wait_for("the gateway", 30, || {
            let ok = Command::new("mysql")
                .args([
                    "-h127.0.0.1",
                    &format!("-P{port}"),
                    "-uroot@sys",
                    "--skip-ssl",
                    "-e",
                    "SHOW TENANTS",
                ])
                .output()
                .ok()?
                .status
                .success();
            ok.then_some(())
        });
        let sql = std::fs::read_to_string(cases.join(format!("{name}.sql"))).unwrap();
        let got = transcript(port, &sql);
        let expected_path = cases.join(format!("{name}.out"));
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            failures.push(format!(
                "--- {name}.out (expected)\n{expected}\n+++ got\n{got}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "golden mismatches (BACKSTOP_BLESS=1 to accept):\n{}",
        failures.join("\n")
    );
}
