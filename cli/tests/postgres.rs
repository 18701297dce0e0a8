//! PostgreSQL tenants end to end, with a real server started here and `pgbench` as
//! the workload: the WAL archive, a full and two incremental hot backups taken while
//! pgbench runs, and restores to marker LSNs and to times, each started with a plain
//! `postgres -D DIR` and checked against what was recorded at the target.
//!
//! Longer than the house's ~600 lines on purpose: every file in `cli/tests/` is its
//! own test binary (one more link of the whole dependency tree in CI), and these
//! tests share this file's fixtures and checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backstop_pg::Lsn;
use backstop_testkit::pg::{PgServer, chown_postgres};
use harness::{Cluster, restore, wait_for};
use serde_json::Value;

/// What the cluster held at one quiet moment (no pgbench running): the marker row
/// just committed and the WAL insert position right after it.
#[derive(Debug, Clone)]
struct Mark {
    id: i64,
    lsn: u64,
    sum: i64,
    history: i64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn mark(pg: &PgServer, id: i64) -> Mark {
    // Committed on its own (one psql -c string is one transaction), then read.
    pg.query(&format!("INSERT INTO markers VALUES ({id})"))
        .unwrap();
    let out = pg
        .query(
            "SELECT pg_current_wal_insert_lsn(), \
                    (SELECT sum(abalance) FROM pgbench_accounts), \
                    (SELECT count(*) FROM pgbench_history)",
        )
        .unwrap();
    let f: Vec<&str> = out.lines().last().unwrap().split('|').collect();
    Mark {
        id,
        lsn: Lsn::parse(f[0]).unwrap().0,
        sum: f[1].parse().unwrap(),
        history: f[2].parse().unwrap(),
    }
}

/// A burst of pgbench (2 clients, `secs` seconds, at most 150 transactions a second
/// so an incremental has pages left unchanged to reference).
fn bench(pg: &PgServer, secs: u32) {
    let out = pg
        .pgbench(&["-n", "-c", "2", "-R", "150", "-T", &secs.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pgbench: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start_backup(c: &Cluster, incremental: bool) -> u64 {
    let mut args = vec!["backup", "--tenant", "pg1"];
    if incremental {
        args.push("--incremental");
    }
    c.ctl(&args)["job_ids"][0].as_u64().unwrap()
}

fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// `backstop restore` of tenant `pg1` into `to`, given to `postgres`, with `extra`
/// arguments (a target); panics with the error.
fn restore_pg(dest: &str, to: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["--owner", "postgres"];
    args.extend_from_slice(extra);
    restore(dest, "pg1", to, &args).unwrap_or_else(|e| panic!("restore {extra:?}: {e}"))
}

/// `ctl restore --owner postgres` through the cluster: a RESTORE job run by a
/// worker. Returns the finished job row.
fn restore_by_job(c: &Cluster, to: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["restore", "--tenant", "pg1", "--owner", "postgres", "--to"];
    args.push(to.to_str().unwrap());
    args.extend_from_slice(extra);
    let jobs = c.ctl(&args);
    let job = jobs["job_ids"][0].clone();
    wait_for("restore job", 120, || {
        let all = c.ctl(&["jobs", "--all"]);
        let j = all.as_array()?.iter().find(|j| j["job_id"] == job)?.clone();
        assert_ne!(j["status"], "FAILED", "ctl restore {extra:?}: {j}");
        (j["status"] == "FINISH").then_some(j)
    })
}

/// Starts PostgreSQL on a restored directory and reads what a DBA would check.
fn restored_state(dir: &Path, sock: &Path) -> (Vec<i64>, i64, i64) {
    let (ids, sum, history, _) = restored_state_and(dir, sock, &[]);
    (ids, sum, history)
}

/// [`restored_state`], and the answers to `extra` queries on the restored cluster.
fn restored_state_and(
    dir: &Path,
    sock: &Path,
    extra: &[&str],
) -> (Vec<i64>, i64, i64, Vec<String>) {
    std::fs::create_dir_all(sock).unwrap();
    chown_postgres(sock).unwrap();
    let mut s = PgServer::on(dir, sock);
    s.start(120)
        .unwrap_or_else(|e| panic!("restored cluster {}: {e}", dir.display()));
    wait_for("promotion", 60, || {
        (s.query("SELECT pg_is_in_recovery()").ok()? == "f").then_some(())
    });
    let ids: Vec<i64> = s
        .query("SELECT id FROM markers ORDER BY id")
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let sum = s
        .query("SELECT sum(abalance) FROM pgbench_accounts")
        .unwrap()
        .parse()
        .unwrap();
    let history = s
        .query("SELECT count(*) FROM pgbench_history")
        .unwrap()
        .parse()
        .unwrap();
    let answers = extra.iter().map(|q| s.query(q).unwrap()).collect();
    // It accepts writes: the restore promoted it.
    s.query("CREATE TABLE after_restore (x int)").unwrap();
    s.stop();
    (ids, sum, history, answers)
}

/// `pgbench -i -s scale` and the `markers` table on a running server.
fn load(pg: &PgServer, scale: u32) {
    let out = pg
        .pgbench(&["-i", "-q", "-s", &scale.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    pg.query("CREATE TABLE markers (id int PRIMARY KEY)")
        .unwrap();
}

/// A test's world: a fresh PostgreSQL server (with `conf`, `pgbench -i -s scale` and
/// a `markers` table) and a Backstop cluster (one worker with `worker_env`) that
/// protects it as tenant `pg1`, archiving to `file://DIR/dest`.
fn protected(
    dir: &Path,
    conf: &str,
    hba_without_replication: bool,
    scale: u32,
    worker_env: &[(&str, &str)],
) -> (PgServer, Cluster, String) {
    // The restored data directories live under `dir` and postgres must reach them.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut pg = PgServer::init(conf).unwrap();
    if hba_without_replication {
        let hba = pg.pgdata.join("pg_hba.conf");
        let kept: Vec<String> = std::fs::read_to_string(&hba)
            .unwrap()
            .lines()
            .filter(|l| !l.contains("replication"))
            .map(str::to_string)
            .collect();
        std::fs::write(&hba, kept.join("\n") + "\n").unwrap();
    }
    pg.start(60).unwrap();
    load(&pg, scale);
    let c = Cluster::start_env(dir, 1, 3000, worker_env);
    let dest = format!("file://{}/dest", dir.display());
    c.ctl(&["tenant", "create", "pg1", "--source", &pg.uri("postgres")]);
    c.ctl(&["param", "set", "backup_dest", &dest]);
    c.ctl(&[
        "param",
        "set",
        "backup_dest_option",
        "log_archive_checkpoint_interval=1s&log_archive_piece_switch_interval=10s",
    ]);
    c.start_archive("pg1");
    (pg, c, dest)
}

#[test]
fn a_full_and_two_incrementals_under_pgbench_restore_exactly_to_lsns_and_times() {
    let dir = tempfile::tempdir().unwrap();
    let (pg, c, dest) = protected(
        dir.path(),
        "wal_level = replica\nmax_wal_size = 256MB",
        false,
        10,
        &[],
    );
    assert_eq!(
        pg.query("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'backstop_%'")
            .unwrap(),
        "1",
        "ARCHIVELOG creates the archive's slot"
    );
    wait_for(
        "the archive to stream over the replication protocol",
        30,
        || {
            (pg.query(
                "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'backstop'",
            )
            .ok()?
                == "1")
                .then_some(())
        },
    );

    let mut marks: Vec<Mark> = Vec::new();
    let mut times: Vec<(u64, usize)> = Vec::new();
    let mut sets: Vec<Value> = Vec::new();
    for (i, incremental) in [false, true, true].into_iter().enumerate() {
        let job = start_backup(&c, incremental);
        // pgbench runs while the backup copies; markers are taken between bursts.
        for k in 0..2 {
            bench(&pg, 2);
            marks.push(mark(&pg, (i * 10 + k) as i64));
        }
        sets.push(c.wait_set_of_job("pg1", job));
        bench(&pg, 1);
        marks.push(mark(&pg, (i * 10 + 5) as i64));
        std::thread::sleep(Duration::from_millis(1500));
        // Nothing commits around this time: the cluster at this time is the one at
        // the marker just taken.
        times.push((now_ms(), marks.len() - 1));
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        pg.query(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = 'backstop' AND query LIKE 'SELECT pg_backup_start%'"
        )
        .unwrap(),
        "0",
        "no hot backup is left open on the server"
    );
    let last = marks.last().unwrap().lsn;
    c.wait_archived("pg1", last);
    assert_eq!(sets[1]["backup_type"], "I");
    assert_eq!(sets[2]["base_set_id"], sets[1]["backup_set_id"]);
    assert!(
        num(&sets[1], "output_bytes") < num(&sets[0], "output_bytes") / 2,
        "an incremental stores changed blocks only: full {} vs incremental {}",
        sets[0]["output_bytes"],
        sets[1]["output_bytes"]
    );

    // Five LSN targets: after each set's end, and between.
    let first_ok = marks
        .iter()
        .position(|m| m.lsn >= num(&sets[0], "min_restore_scn"))
        .unwrap();
    let picks = [
        first_ok,
        first_ok + 1,
        marks.len() / 2,
        marks.len() - 2,
        marks.len() - 1,
    ];
    for (n, &p) in picks.iter().enumerate() {
        let m = &marks[p];
        let to = dir.path().join(format!("restore{n}"));
        let target = Lsn(m.lsn).to_string();
        let info = restore_pg(&dest, &to, &["--until-scn", &target]);
        assert_eq!(num(&info, "until_scn"), m.lsn);
        assert_eq!(info["until_lsn"], target.as_str());
        let (ids, sum, history) = restored_state(&to, &dir.path().join(format!("sock{n}")));
        let want: Vec<i64> = marks[..=p].iter().map(|m| m.id).collect();
        assert_eq!(ids, want, "markers restored to {target}");
        assert_eq!((sum, history), (m.sum, m.history), "state at {target}");
    }
    // Two time targets: exactly the transactions committed by then (PostgreSQL's
    // recovery_target_time, found in the archived WAL's commit records).
    for (n, (t, at)) in times.iter().take(2).enumerate() {
        let to = dir.path().join(format!("time{n}"));
        let info = restore_pg(&dest, &to, &["--until-time", &t.to_string()]);
        let (ids, sum, history) = restored_state(&to, &dir.path().join(format!("tsock{n}")));
        let want: Vec<i64> = marks[..=*at].iter().map(|m| m.id).collect();
        assert_eq!(ids, want, "markers restored to time {t}: {info}");
        assert_eq!(
            (sum, history),
            (marks[*at].sum, marks[*at].history),
            "state at time {t}"
        );
        assert!(num(&info, "until_scn") > marks[*at].lsn, "{info}");
    }
    // A target the archive does not cover fails before anything is written.
    let far = Lsn(last + (1 << 30)).to_string();
    let err = restore(
        &dest,
        "pg1",
        &dir.path().join("far"),
        &["--until-scn", &far],
    )
    .unwrap_err();
    assert!(
        err.contains("no complete backup set") || err.contains("restores to"),
        "{err}"
    );
    assert!(!dir.path().join("far/base").exists());

    // Backup-of-backup: the sets and the WAL copied to backup_backup_dest restore
    // alone, with backup_dest deleted.
    let bk2 = dir.path().join("bk2");
    c.ctl(&[
        "param",
        "set",
        "backup_backup_dest",
        &format!("file://{}", bk2.display()),
    ]);
    c.ctl(&["copy", "set"]);
    let newest = num(&sets[2], "backup_set_id");
    wait_for("the set copies", 120, || {
        let rows = c.try_ctl(&["sets"])?;
        let copied = rows
            .as_array()?
            .iter()
            .filter(|s| s["copy_id"] == 1 && s["file_status"] == "AVAILABLE")
            .count();
        let newest_done = rows.as_array()?.iter().any(|s| {
            s["backup_set_id"] == newest && s["copy_id"] == 1 && s["file_status"] == "AVAILABLE"
        });
        (newest_done && copied == 3).then_some(())
    });
    c.ctl(&["copy", "start"]);
    wait_for("the WAL copy to reach the last marker", 120, || {
        let copies = c.try_ctl(&["copies"])?;
        let row = copies["copies"].as_array()?.first()?.clone();
        (row["checkpoint_scn"].as_u64()? >= last).then_some(())
    });
    c.ctl(&["copy", "stop"]);
    std::fs::remove_dir_all(dir.path().join("dest")).unwrap();
    let m = marks.last().unwrap();
    let to = dir.path().join("from_copy");
    let info = restore_pg(
        &format!("file://{}", bk2.display()),
        &to,
        &["--until-scn", &Lsn(m.lsn).to_string()],
    );
    assert_eq!(num(&info, "until_scn"), m.lsn);
    let (ids, sum, history) = restored_state(&to, &dir.path().join("sock_copy"));
    assert_eq!(ids, marks.iter().map(|m| m.id).collect::<Vec<_>>());
    assert_eq!((sum, history), (m.sum, m.history));

    // NOARCHIVELOG drops the slot.
    c.ctl(&["noarchivelog", "--tenant", "pg1"]);
    wait_for("slot dropped", 60, || {
        (pg.query("SELECT count(*) FROM pg_replication_slots").ok()? == "0").then_some(())
    });
}

/// Waits until a backup's copy task runs.
fn wait_copying(c: &Cluster) {
    wait_for("the backup to copy", 30, || {
        let tasks = c.try_ctl(&["tasks"])?;
        tasks
            .as_array()?
            .iter()
            .any(|t| t["task_type"] == "BACKUP_COPY" && t["status"] == "DOING")
            .then_some(())
    });
}

fn job_status(c: &Cluster, job: u64) -> Option<String> {
    let jobs = c.try_ctl(&["jobs", "--all"])?;
    let j = jobs
        .as_array()?
        .iter()
        .find(|j| j["job_id"] == job)?
        .clone();
    Some(j["status"].as_str()?.to_string())
}

fn open_backups(pg: &PgServer) -> String {
    pg.query(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE application_name = 'backstop' AND query LIKE 'SELECT pg_backup_start%'",
    )
    .unwrap()
}

/// A worker killed while it streams, a backup cancelled while it copies, and a slot
/// the server invalidated while no worker ran: each ends the way a DBA expects, and
/// what completes restores exactly.
#[test]
fn a_killed_worker_a_cancelled_backup_and_an_invalidated_slot() {
    let dir = tempfile::tempdir().unwrap();
    // Every backup object upload waits 1.5 s, so a backup is still copying when the
    // cancel comes.
    let (pg, mut c, dest) = protected(
        dir.path(),
        "wal_level = replica\nmax_slot_wal_keep_size = 64MB",
        false,
        2,
        &[("FAILPOINTS", "backup::before_upload=sleep(1500)")],
    );

    // 1. SIGKILL the worker while it streams; a new one resumes on the same slot.
    bench(&pg, 1);
    c.kill_worker(0);
    bench(&pg, 2);
    let m1 = mark(&pg, 1);
    c.add_worker();
    c.wait_archived("pg1", m1.lsn);
    assert_eq!(
        pg.query("SELECT count(*) FROM pg_replication_slots")
            .unwrap(),
        "1",
        "the slot is reused"
    );

    // 2. Cancel a backup while it copies: the job is CANCELED and the server has no
    //    backup left in progress.
    let job = start_backup(&c, false);
    wait_copying(&c);
    let asked = std::time::Instant::now();
    c.ctl(&["cancel", "backup", "--tenant", "pg1"]);
    wait_for("the cancelled backup to end", 30, || {
        (job_status(&c, job)? == "CANCELED").then_some(())
    });
    let took = asked.elapsed();
    wait_for("no backup in progress on the server", 10, || {
        (open_backups(&pg) == "0").then_some(())
    });
    assert!(took < Duration::from_secs(10), "cancel took {took:?}");

    // 3. SIGKILL the worker while a full backup copies: its pg_backup_start
    //    connection dies with it, so the server aborts that backup; the set starts
    //    again from its prepare on the new worker, completes and restores exactly.
    let job = start_backup(&c, false);
    wait_copying(&c);
    c.kill_worker(1);
    c.add_worker();
    let set = c.wait_set_of_job("pg1", job);
    assert!(
        set["comment"]
            .as_str()
            .unwrap_or_default()
            .contains("started again from prepare"),
        "{set}"
    );
    wait_for("no backup in progress on the server", 10, || {
        (open_backups(&pg) == "0").then_some(())
    });
    bench(&pg, 1);
    let m2 = mark(&pg, 2);
    c.wait_archived("pg1", m2.lsn);
    assert!(num(&set, "min_restore_scn") <= m2.lsn);
    let to = dir.path().join("r1");
    restore_pg(&dest, &to, &["--until-scn", &Lsn(m2.lsn).to_string()]);
    let (ids, sum, history) = restored_state(&to, &dir.path().join("s1"));
    assert_eq!(ids, vec![1, 2]);
    assert_eq!((sum, history), (m2.sum, m2.history));

    // The views show the LSNs where a DBA looks for them, through the mysql client.
    let (_gw, mysql) = harness::mysql::start_gateway(dir.path(), &c.meta);
    let rows = mysql.rows(&format!(
        "SELECT MIN_RESTORE_SCN, MIN_RESTORE_LSN FROM oceanbase.CDB_OB_BACKUP_SET_FILES WHERE BS_KEY = {}",
        num(&set, "backup_set_id")
    ));
    let min = num(&set, "min_restore_scn");
    assert_eq!(rows, vec![vec![min.to_string(), Lsn(min).to_string()]]);
    let rows = mysql.rows(
        "SELECT CHECKPOINT_SCN, CHECKPOINT_LSN FROM oceanbase.CDB_OB_BACKUP_ARCHIVELOG WHERE TENANT_ID <> 1",
    );
    let ck: u64 = rows[0][0].parse().unwrap();
    assert_eq!(rows[0][1], Lsn(ck).to_string());

    // 4. No worker runs while the server writes more WAL than max_slot_wal_keep_size
    //    and checkpoints: the slot is invalidated and the round goes INTERRUPTED
    //    with the reason; a new round starts on a new slot.
    c.kill_worker(2);
    for i in 0..6 {
        pg.query(&format!("INSERT INTO markers VALUES ({})", 100 + i))
            .unwrap();
        pg.query("SELECT pg_switch_wal()").unwrap();
        bench(&pg, 1);
        pg.query("SELECT pg_switch_wal()").unwrap();
    }
    pg.query("CHECKPOINT").unwrap();
    wait_for("the slot to be invalidated", 60, || {
        pg.query("CHECKPOINT").ok()?;
        (pg.query("SELECT wal_status FROM pg_replication_slots")
            .ok()?
            == "lost")
            .then_some(())
    });
    c.add_worker();
    let round = wait_for("INTERRUPTED", 60, || {
        let r = c.round("pg1");
        (r["status"] == "INTERRUPTED").then_some(r)
    });
    let comment = round["comment"].as_str().unwrap();
    assert!(comment.contains("invalidated"), "{round}");
    c.ctl(&["noarchivelog", "--tenant", "pg1"]);
    c.start_archive("pg1");
    assert_eq!(
        pg.query("SELECT wal_status FROM pg_replication_slots")
            .unwrap(),
        "reserved",
        "the new round has a new slot"
    );
    let job = start_backup(&c, false);
    c.wait_set_of_job("pg1", job);
    let m3 = mark(&pg, 3);
    c.wait_archived("pg1", m3.lsn);
    let to = dir.path().join("r2");
    restore_pg(&dest, &to, &[]);
    let (ids, sum, history) = restored_state(&to, &dir.path().join("s2"));
    let mut want = vec![1, 2, 3];
    want.extend(100..106);
    want.sort();
    assert_eq!(ids, want);
    assert_eq!((sum, history), (m3.sum, m3.history));
}

/// A server whose `pg_hba.conf` allows no replication connection: the archive reads
/// `pg_wal/` beside the cluster instead of streaming, and what it archives restores
/// exactly.
#[test]
fn without_replication_connections_the_archive_reads_pg_wal() {
    let dir = tempfile::tempdir().unwrap();
    let (pg, c, dest) = protected(dir.path(), "wal_level = replica", true, 1, &[]);
    let job = start_backup(&c, false);
    bench(&pg, 2);
    c.wait_set_of_job("pg1", job);
    bench(&pg, 1);
    let m = mark(&pg, 1);
    c.wait_archived("pg1", m.lsn);
    assert_eq!(
        pg.query("SELECT count(*) FROM pg_stat_replication")
            .unwrap(),
        "0",
        "nothing streams"
    );
    let to = dir.path().join("r");
    restore_pg(&dest, &to, &["--until-scn", &Lsn(m.lsn).to_string()]);
    let (ids, sum, history) = restored_state(&to, &dir.path().join("s"));
    assert_eq!(ids, vec![1]);
    assert_eq!((sum, history), (m.sum, m.history));
}

/// Tablespaces: `pgbench_history` (which pgbench appends to) and a table of its own
/// live in a tablespace outside the data directory; a full and an incremental backup
/// read them through the `pg_tblspc` link. A restore that would write into the live
/// tablespace's location is refused before anything is written there; with
/// `--tablespace-map` it recovers exactly, the tablespace at its new place.
#[test]
fn tablespaces_are_backed_up_through_their_links_and_restored_where_the_map_says() {
    let dir = tempfile::tempdir().unwrap();
    let (mut pg, c, dest) = protected(dir.path(), "wal_level = replica", false, 1, &[]);
    let ts = dir.path().join("ts1");
    std::fs::create_dir_all(&ts).unwrap();
    chown_postgres(&ts).unwrap();
    pg.query(&format!(
        "CREATE TABLESPACE ts1 LOCATION '{}'",
        ts.display()
    ))
    .unwrap();
    pg.query("ALTER TABLE pgbench_history SET TABLESPACE ts1")
        .unwrap();
    pg.query("CREATE TABLE spaced (id int, pad text) TABLESPACE ts1")
        .unwrap();
    pg.query("INSERT INTO spaced SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g")
        .unwrap();
    let job = start_backup(&c, false);
    bench(&pg, 2);
    c.wait_set_of_job("pg1", job);
    pg.query("INSERT INTO spaced SELECT g, 'y' FROM generate_series(20001, 20500) g")
        .unwrap();
    bench(&pg, 2);
    let job = start_backup(&c, true);
    let set = c.wait_set_of_job("pg1", job);
    assert_eq!(set["backup_type"], "I", "{set}");
    bench(&pg, 1);
    let m = mark(&pg, 1);
    c.wait_archived("pg1", m.lsn);

    let listing = |p: &Path| -> Vec<(String, u64)> {
        walkdir::WalkDir::new(p)
            .sort_by_file_name()
            .into_iter()
            .map(|e| {
                let e = e.unwrap();
                (e.path().display().to_string(), e.metadata().unwrap().len())
            })
            .collect()
    };
    let live = listing(&ts);
    let to = dir.path().join("r");
    let lsn = Lsn(m.lsn).to_string();
    let e = restore(
        &dest,
        "pg1",
        &to,
        &["--owner", "postgres", "--until-scn", &lsn],
    )
    .unwrap_err();
    assert!(
        e.contains("not empty") && e.contains("--tablespace-map"),
        "{e}"
    );
    assert_eq!(
        listing(&ts),
        live,
        "nothing was written into the live tablespace"
    );

    let new = dir.path().join("ts1-restored");
    let map = format!("{}={}", ts.display(), new.display());
    let info = restore_pg(&dest, &to, &["--until-scn", &lsn, "--tablespace-map", &map]);
    assert_eq!(
        info["tablespaces"][0]["location"],
        new.display().to_string(),
        "{info}"
    );
    let (ids, sum, history, answers) = restored_state_and(
        &to,
        &dir.path().join("s"),
        &[
            "SELECT count(*) FROM spaced",
            "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts1'",
        ],
    );
    assert_eq!(ids, vec![1]);
    assert_eq!((sum, history), (m.sum, m.history));
    assert_eq!(
        answers,
        vec!["20500".to_string(), new.display().to_string()]
    );

    // The same through the cluster: `ctl restore` with a tablespace map, as a job.
    let to = dir.path().join("r-job");
    let new = dir.path().join("ts1-by-job");
    let map = format!("{}={}", ts.display(), new.display());
    let j = restore_by_job(&c, &to, &["--until-scn", &lsn, "--tablespace-map", &map]);
    assert_eq!(j["job_type"], "RESTORE", "{j}");
    let (ids, sum, history, answers) = restored_state_and(
        &to,
        &dir.path().join("s-job"),
        &["SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts1'"],
    );
    assert_eq!(ids, vec![1]);
    assert_eq!((sum, history), (m.sum, m.history));
    assert_eq!(answers, vec![new.display().to_string()]);
    assert_eq!(listing(&ts), live, "the live tablespace is untouched");
    pg.stop();
}

/// Incarnations: the protected cluster (timeline 1) is restored to a point and
/// promoted (timeline 2); `ALTER TENANT … SOURCE` through the mysql client re-points
/// the tenant at it, which opens incarnation 2, archived and backed up apart. A
/// point-in-time restore on timeline 2 before incarnation 2 has a set (from
/// incarnation 1's set through the fork), one after, and one onto timeline 1 past
/// the fork each recover exactly, and the views show both incarnations.
#[test]
fn a_restored_cluster_protected_again_is_incarnation_2_and_both_histories_restore() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, c, dest) = protected(dir.path(), "wal_level = replica", false, 1, &[]);
    let job = start_backup(&c, false);
    c.wait_set_of_job("pg1", job);
    bench(&a, 1);
    let m1 = mark(&a, 1);
    // Nothing commits around this time, on timeline 1 before the fork.
    std::thread::sleep(Duration::from_millis(1500));
    let t1 = now_ms();
    std::thread::sleep(Duration::from_millis(300));
    bench(&a, 1);
    let fork = mark(&a, 2);
    bench(&a, 1);
    let m3 = mark(&a, 3);
    c.wait_archived("pg1", m3.lsn);
    let (_gw, mysql) = harness::mysql::start_gateway(dir.path(), &c.meta);

    // The point-in-time restore at `fork`, started: it promotes onto timeline 2.
    let b_dir = dir.path().join("b");
    restore_pg(&dest, &b_dir, &["--until-scn", &Lsn(fork.lsn).to_string()]);
    let sock = dir.path().join("sb");
    std::fs::create_dir_all(&sock).unwrap();
    chown_postgres(&sock).unwrap();
    let mut b = PgServer::on(&b_dir, &sock);
    b.start(120).unwrap();
    wait_for("promotion", 60, || {
        (b.query("SELECT pg_is_in_recovery()").ok()? == "f").then_some(())
    });
    let tli = || {
        b.query("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")
            .unwrap()
    };
    assert_eq!(tli(), "00000002");

    // Re-pointing is refused while the archive runs, and for another database.
    let b_uri = b.uri("postgres");
    let e = mysql.fails(&format!("ALTER TENANT pg1 SOURCE = '{b_uri}'"));
    assert!(e.contains("9011") && e.contains("NOARCHIVELOG"), "{e}");
    let mut other = PgServer::init("wal_level = replica").unwrap();
    other.start(60).unwrap();
    c.ctl(&["noarchivelog", "--tenant", "pg1"]);
    wait_for("archive STOP", 60, || {
        (c.round("pg1")["status"] == "STOP").then_some(())
    });
    let e = mysql.fails(&format!(
        "ALTER TENANT pg1 SOURCE = '{}'",
        other.uri("postgres")
    ));
    assert!(e.contains("another database"), "{e}");
    other.stop();
    a.stop();

    mysql.exec(&format!("ALTER TENANT pg1 SOURCE = '{b_uri}'"));
    let t = c.ctl(&["tenant", "show", "pg1"]);
    assert_eq!(t["incarnation"], 2, "{t}");
    assert_eq!(t["recorded_timeline"], 2, "{t}");

    // Incarnation 2: its own round, which starts where timeline 2 began. Work on
    // timeline 2 before the incarnation has any set restores from incarnation 1's
    // set through the fork.
    c.start_archive("pg1");
    bench(&b, 1);
    let m5 = mark(&b, 5);
    c.wait_archived("pg1", m5.lsn);
    let to = dir.path().join("r2early");
    let info = restore_pg(&dest, &to, &["--until-scn", &Lsn(m5.lsn).to_string()]);
    assert_eq!(info["incarnation"], 2, "{info}");
    assert_eq!(info["set_incarnation"], 1, "{info}");
    let (ids, sum, history) = restored_state(&to, &dir.path().join("s2e"));
    assert_eq!(ids, vec![1, 2, 5]);
    assert_eq!((sum, history), (m5.sum, m5.history));
    // A time on timeline 2 after marker 5, when nothing commits.
    std::thread::sleep(Duration::from_millis(1500));
    let t5 = now_ms();
    std::thread::sleep(Duration::from_millis(300));

    // Then its own full backup, and more work on timeline 2.
    let job = start_backup(&c, false);
    c.wait_set_of_job("pg1", job);
    bench(&b, 1);
    let m4 = mark(&b, 4);
    c.wait_archived("pg1", m4.lsn);
    let rows = mysql.rows(
        "SELECT DISTINCT INCARNATION FROM oceanbase.CDB_OB_BACKUP_SET_DETAILS WHERE TENANT_ID <> 1 ORDER BY 1",
    );
    assert_eq!(rows, vec![vec!["1".to_string()], vec!["2".to_string()]]);
    let rows = mysql
        .rows("SELECT INCARNATION FROM oceanbase.CDB_OB_BACKUP_ARCHIVELOG WHERE TENANT_ID <> 1");
    assert_eq!(rows, vec![vec!["2".to_string()]]);

    // A point on timeline 2: the fork's history plus marker 4, never marker 3.
    let to = dir.path().join("r2");
    let info = restore_pg(&dest, &to, &["--until-scn", &Lsn(m4.lsn).to_string()]);
    assert_eq!(info["incarnation"], 2, "{info}");
    let (ids, sum, history) = restored_state(&to, &dir.path().join("s2"));
    assert_eq!(ids, vec![1, 2, 4, 5]);
    assert_eq!((sum, history), (m4.sum, m4.history));

    // A time on timeline 2 before incarnation 2's set, through the fork: exactly
    // what was committed by then (marker 5's state, not the pgbench after it).
    let to = dir.path().join("r2time");
    let info = restore_pg(&dest, &to, &["--until-time", &t5.to_string()]);
    assert_eq!(info["incarnation"], 2, "{info}");
    assert_eq!(info["set_incarnation"], 1, "{info}");
    let (ids, sum, history) = restored_state(&to, &dir.path().join("s2t"));
    assert_eq!(ids, vec![1, 2, 5]);
    assert_eq!((sum, history), (m5.sum, m5.history));
    // A time before timeline 2 began is not a point of incarnation 2: refused,
    // naming the switchpoint, and restored from incarnation 1 instead.
    let e = restore(
        &dest,
        "pg1",
        &dir.path().join("r2before"),
        &["--owner", "postgres", "--until-time", &t1.to_string()],
    )
    .unwrap_err();
    assert!(
        e.contains("before timeline 2 began") && e.contains("--incarnation"),
        "{e}"
    );
    let to = dir.path().join("r1time");
    let info = restore_pg(
        &dest,
        &to,
        &["--incarnation", "1", "--until-time", &t1.to_string()],
    );
    assert_eq!(info["incarnation"], 1, "{info}");
    let (ids, sum, history) = restored_state(&to, &dir.path().join("s1t"));
    assert_eq!(ids, vec![1]);
    assert_eq!((sum, history), (m1.sum, m1.history));

    // The latest point (no target): the set was taken of a cluster that was itself
    // restored to `fork`, and its copy of postgresql.auto.conf still named that
    // target; the restore must not stop there.
    let to = dir.path().join("r2latest");
    let info = restore_pg(&dest, &to, &[]);
    assert_eq!(info["incarnation"], 2, "{info}");
    let (ids, sum, history) = restored_state(&to, &dir.path().join("s2l"));
    assert_eq!(ids, vec![1, 2, 4, 5]);
    assert_eq!((sum, history), (m4.sum, m4.history));

    // A point on timeline 1 past the fork: marker 3, which timeline 2 never had.
    let to = dir.path().join("r1");
    let info = restore_pg(
        &dest,
        &to,
        &[
            "--incarnation",
            "1",
            "--until-scn",
            &Lsn(m3.lsn).to_string(),
        ],
    );
    assert_eq!(info["incarnation"], 1, "{info}");
    let (ids, sum, history) = restored_state(&to, &dir.path().join("s1"));
    assert_eq!(ids, vec![1, 2, 3]);
    assert_eq!((sum, history), (m3.sum, m3.history));
    assert!(m1.lsn < fork.lsn);

    // The same point through the cluster: `ctl restore --incarnation 1`, as a job.
    let to = dir.path().join("r1-job");
    let j = restore_by_job(
        &c,
        &to,
        &[
            "--incarnation",
            "1",
            "--until-scn",
            &Lsn(m3.lsn).to_string(),
        ],
    );
    assert!(
        j["comment"].as_str().unwrap_or("").contains("restored"),
        "{j}"
    );
    let (ids, sum, history) = restored_state(&to, &dir.path().join("s1j"));
    assert_eq!(ids, vec![1, 2, 3]);
    assert_eq!((sum, history), (m3.sum, m3.history));
    b.stop();
}

/// `archive=push`: the cluster's `archive_command` is `backstop wal-push` (run by the
/// server as `postgres`); there is no replication slot. The pushed segments become
/// pieces, a push of the same bytes again succeeds and of other bytes fails, and a
/// full backup restores exactly to a marker.
#[test]
fn wal_push_as_the_archive_command_feeds_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The binary where the postgres user can run it.
    let bin = dir.path().join("backstop");
    std::fs::copy(env!("CARGO_BIN_EXE_backstop"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dest_dir = dir.path().join("dest");
    let dest = format!("file://{}", dest_dir.display());
    let conf = format!(
        "wal_level = replica\narchive_mode = on\narchive_command = '{} wal-push --dest {dest} --tenant pg1 %p %f'",
        bin.display()
    );
    let mut pg = PgServer::init(&conf).unwrap();
    pg.start(60).unwrap();
    load(&pg, 1);
    let c = Cluster::start_env(dir.path(), 1, 3000, &[]);
    let source = format!("{}&archive=push", pg.uri("postgres"));
    c.ctl(&["tenant", "create", "pg1", "--source", &source]);
    c.ctl(&["param", "set", "backup_dest", &dest]);
    c.ctl(&[
        "param",
        "set",
        "backup_dest_option",
        "log_archive_checkpoint_interval=1s&log_archive_piece_switch_interval=10s",
    ]);
    c.ctl(&["archivelog", "--tenant", "pg1"]);
    // The round writes the tenant's area; the server's user may write wal_push/ in it
    // (a destination shared by the worker and archive_command).
    let area = wait_for("the tenant's area", 30, || {
        let cluster = std::fs::read_dir(&dest_dir).ok()?.next()?.ok()?.path();
        let id = std::fs::read_dir(cluster).ok()?.next()?.ok()?.path();
        let t = id.join("incarnation_1/1001");
        t.join("info/tenant").exists().then_some(t)
    });
    let push_dir = area.join("wal_push");
    std::fs::create_dir_all(&push_dir).unwrap();
    chown_postgres(&push_dir).unwrap();
    let switch = || {
        pg.query("SELECT pg_switch_wal()").unwrap();
    };
    bench(&pg, 1);
    switch();
    wait_for("archive DOING", 60, || {
        (c.round("pg1")["status"] == "DOING").then_some(())
    });
    let job = start_backup(&c, false);
    c.wait_set_of_job("pg1", job);
    bench(&pg, 1);
    let m = mark(&pg, 1);
    switch();
    c.wait_archived("pg1", m.lsn);
    assert_eq!(
        pg.query("SELECT count(*) FROM pg_replication_slots")
            .unwrap(),
        "0",
        "no slot with archive=push"
    );
    assert_eq!(
        pg.query("SELECT archived_count > 0 FROM pg_stat_archiver")
            .unwrap(),
        "t"
    );

    // Idempotent: the same bytes again succeed, other bytes are refused.
    let seg = dir.path().join("seg");
    let mut bytes = vec![7u8; 16 << 20];
    std::fs::write(&seg, &bytes).unwrap();
    let push = |name: &str| {
        std::process::Command::new(&bin)
            .args(["wal-push", "--dest", &dest, "--tenant", "pg1"])
            .arg(&seg)
            .arg(name)
            .output()
            .unwrap()
    };
    let far = "0000000100000000000000F0";
    assert!(push(far).status.success());
    let again = push(far);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already archived"));
    bytes[100] = 8;
    std::fs::write(&seg, &bytes).unwrap();
    let other = push(far);
    assert!(!other.status.success());
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("other contents"),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
    assert!(!push("postgresql.conf").status.success());

    let to = dir.path().join("r");
    restore_pg(&dest, &to, &["--until-scn", &Lsn(m.lsn).to_string()]);
    let (ids, sum, history) = restored_state(&to, &dir.path().join("s"));
    assert_eq!(ids, vec![1]);
    assert_eq!((sum, history), (m.sum, m.history));
}
