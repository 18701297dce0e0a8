//! Old destinations keep restoring. Each `tests/fixtures/format-N/` (in this crate)
//! holds a small destination written by one storage format (`docs/FORMAT.md`: a full
//! backup set, a frozen piece, and an open piece whose manifest is a version-2 base
//! plus journal entries, left by a worker killed with SIGKILL) and, as the oracle, the
//! source's `workload/` shape and digests:
//! - `format-1`: sets of format version 1, every block compressed alone, manifests
//!   pretty JSON (2026-12-01);
//! - `format-3`: sets of format version 3, blocks compressed together in frames, set
//!   and part manifests zstd-compressed JSON (2026-12-06).
//!
//! A format change that breaks destinations already written fails here.
//!
//! The current format's fixture is written once by `write_the_format_fixture`
//! (ignored; run by hand with
//! `cargo nextest run -p backstop --run-ignored only -E 'test(write_the_format_fixture)'`),
//! and never rewritten for a format change: a new format gets a new fixture beside it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::path::{Path, PathBuf};
use std::time::Duration;

use backstop_workload::{self as workload, Shape};
use harness::{Cluster, restore, start_load, wait_for};
use serde_json::{Value, json};

/// Every committed fixture, oldest first.
const FIXTURES: [&str; 2] = ["format-1", "format-3"];
/// The fixture `write_the_format_fixture` writes: this build's format.
const CURRENT: &str = "format-3";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Copies a directory tree (files and directories only).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Every `manifest.d` journal directory under `dir`, with its entry count.
fn journals(dir: &Path) -> Vec<(PathBuf, usize)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "manifest.d") {
                let n = std::fs::read_dir(&p).map(|d| d.count()).unwrap_or(0);
                out.push((p, n));
            } else {
                out.extend(journals(&p));
            }
        }
    }
    out
}

/// The directory named `name` under `dir`, searched depth first.
fn find(dir: &Path, name: &str) -> PathBuf {
    fn walk(dir: &Path, name: &str) -> Option<PathBuf> {
        for e in std::fs::read_dir(dir).ok()?.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == name) {
                    return Some(p);
                }
                if let Some(found) = walk(&p, name) {
                    return Some(found);
                }
            }
        }
        None
    }
    walk(dir, name).unwrap_or_else(|| panic!("no {name} under {}", dir.display()))
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

#[test]
fn destinations_written_by_the_committed_format_still_restore() {
    for name in FIXTURES {
        restores_and_validates(name);
    }
}

fn restores_and_validates(name: &str) {
    let fx = fixture(name);
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fx.join("expected.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest_dir = dir.path().join("dest");
    copy_tree(&fx.join("dest"), &dest_dir);
    // The fixture holds what it says: an open piece with a base and journal entries.
    assert!(
        journals(&dest_dir).iter().any(|(_, n)| *n >= 2),
        "{name}: the fixture has an open, journaled piece"
    );
    // And the format it is named for: format 3 packs blocks into frames.
    let set_manifest = find(&dest_dir, "backup_set_1_full").join("manifest");
    let m = backstop_testkit::manifest_json("manifest", &std::fs::read(&set_manifest).unwrap())
        .unwrap();
    let framed = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["blocks"].as_array().unwrap())
        .filter(|b| b["loc"]["frame_len"].as_u64().is_some_and(|n| n > 0))
        .count();
    assert_eq!(
        framed > 0,
        name != "format-1",
        "{name}: {framed} blocks in frames"
    );
    let dest = format!("file://{}", dest_dir.display());
    let to = dir.path().join("restored");
    let info = restore(&dest, "fx", &to, &[]).unwrap();
    assert_eq!(info["backup_set_id"], expected["backup_set_id"], "{info}");
    assert_eq!(info["until_scn"], expected["until_scn"], "{info}");
    let v = workload::verify(&to, &fx.join("source"), None).unwrap();
    assert_eq!(v.scn, u(&expected, "verified_scn"));
    assert!(v.pages > 0 && v.records > 0, "{v:?}");
    // And the offline validate reads every object of the old format: the set, the two
    // frozen pieces and the open one.
    for what in [
        ["--backup-set", "1"],
        ["--piece", "1/1"],
        ["--piece", "1/2"],
        ["--piece", "1/3"],
    ] {
        let out = std::process::Command::new(harness::BIN)
            .args(["validate", "--dest", &dest, "--tenant", "fx"])
            .args(what)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: validate {what:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
#[ignore = "writes the committed fixture; see the module docs"]
fn write_the_format_fixture() {
    let out = fixture(CURRENT);
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(dir.path(), 1, 2000);
    let src = dir.path().join("fx");
    workload::init(&src, Shape::of_size(128 << 10, 2), 11).unwrap();
    let dest_dir = dir.path().join("dest");
    let dest = format!("file://{}", dest_dir.display());
    c.setup_tenant("fx", &src, &dest, true);
    c.start_archive("fx");
    // Two page writes a second: a few KiB of log per piece.
    let load = start_load(&src, 2 * workload::RECORD as u64);
    std::thread::sleep(Duration::from_millis(1500));
    let set = c.backup("fx", false);
    wait_for("a frozen piece and an open journaled one", 90, || {
        let pieces = c.ctl(&["pieces", "--tenant", "fx"]);
        let frozen = pieces
            .as_array()?
            .iter()
            .any(|p| p["status"] == "FROZEN" && p["copy_id"] == 0);
        let journaled = journals(&dest_dir).iter().any(|(_, n)| *n >= 3);
        (frozen && journaled).then_some(())
    });
    c.kill_worker(0);
    load.finish();
    let _ = std::fs::remove_dir_all(&out);
    copy_tree(&dest_dir, &out.join("dest"));
    for f in ["shape", "digests.bin"] {
        std::fs::create_dir_all(out.join("source/workload")).unwrap();
        std::fs::copy(
            src.join("workload").join(f),
            out.join("source/workload").join(f),
        )
        .unwrap();
    }
    let to = dir.path().join("restored");
    let info = restore(
        &format!("file://{}", out.join("dest").display()),
        "fx",
        &to,
        &[],
    )
    .unwrap();
    let v = workload::verify(&to, &out.join("source"), None).unwrap();
    let expected = json!({
        "backup_set_id": set["backup_set_id"],
        "until_scn": info["until_scn"],
        "verified_scn": v.scn,
    });
    std::fs::write(
        out.join("expected.json"),
        serde_json::to_string_pretty(&expected).unwrap() + "\n",
    )
    .unwrap();
}
