//! Invariant `postgres_restores_exact`; see `docs/CHAOS.md`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use backstop_proto::meta::*;
use backstop_testkit::pg::{PgServer, chown_postgres};

use super::verdict;
use crate::procs::backstop_bin;
use crate::scenario::report::Verdict;
use crate::scenario::{PG_TENANT, Run, list};

/// What the cluster held at the quiet moment after the run: the marker row and the
/// WAL insert position just after it.
struct Mark {
    lsn: String,
    sum: String,
    history: String,
}

/// With pgbench stopped, a marker row is committed; the archive reaches it, and the
/// newest set of the current round restores to its LSN from the primary and from the
/// copy destination (copied now if the run copied none of it), and PostgreSQL started
/// on each restore holds the marker, `sum(abalance)` and the `pgbench_history` count
/// that the server held at that LSN.
pub(crate) async fn postgres_restores_exact(r: &mut Run) -> Verdict {
    let result = check(r).await;
    verdict("postgres_restores_exact", result)
}

async fn check(r: &mut Run) -> anyhow::Result<String> {
    let Some(pg) = r.pg.as_mut() else {
        return Ok("no PostgreSQL tenant".into());
    };
    if let Some(mut load) = pg.load.take() {
        let _ = load.kill();
        let _ = load.wait();
    }
    let mut m = r.meta().await?;
    let tenant = m
        .list_tenants(ListTenantsRequest {})
        .await?
        .into_inner()
        .tenants
        .into_iter()
        .find(|t| t.tenant_name == PG_TENANT)
        .context("the PostgreSQL tenant is gone")?;
    let round = wait_for(Duration::from_secs(60), "the tenant's round", || {
        let mut m = m.clone();
        async move {
            let rounds = m.list_archive(list()).await?.into_inner().rounds;
            Ok(rounds
                .into_iter()
                .filter(|x| x.tenant_id == tenant.tenant_id && x.status == "DOING")
                .max_by_key(|x| x.round_id))
        }
    })
    .await?;
    // The newest set of this round (it restores with this round's log); one is taken
    // now if the run left none.
    let in_round = |sets: &[BackupSet], copy_id: u64| {
        sets.iter()
            .filter(|s| {
                s.tenant_id == tenant.tenant_id
                    && s.copy_id == copy_id
                    && s.file_status == "AVAILABLE"
                    && s.start_replay_scn >= round.start_scn
            })
            .max_by_key(|s| s.backup_set_id)
            .cloned()
    };
    let sets = m.list_backup_sets(list()).await?.into_inner().sets;
    let set = match in_round(&sets, 0) {
        Some(s) => s,
        None => {
            r.sql(&format!(
                "ALTER SYSTEM BACKUP DATABASE TENANT = {PG_TENANT}"
            ))
            .await;
            wait_for(
                Duration::from_secs(120),
                "a full backup of the round",
                || {
                    let mut m = m.clone();
                    async move {
                        let sets = m.list_backup_sets(list()).await?.into_inner().sets;
                        Ok(in_round(&sets, 0))
                    }
                },
            )
            .await?
        }
    };
    let Some(pg) = r.pg.as_ref() else {
        return Ok("no PostgreSQL tenant".into());
    };
    let server = &pg.server;
    server.query("INSERT INTO markers VALUES (1)")?;
    let row = server.query(
        "SELECT pg_current_wal_insert_lsn(), \
                (SELECT sum(abalance) FROM pgbench_accounts), \
                (SELECT count(*) FROM pgbench_history)",
    )?;
    let f: Vec<&str> = row.split('|').collect();
    let [lsn, sum, history] = f.as_slice() else {
        bail!("unexpected psql answer {row:?}");
    };
    let mark = Mark {
        lsn: lsn.to_string(),
        sum: sum.to_string(),
        history: history.to_string(),
    };
    let target = backstop_pg::Lsn::parse(&mark.lsn)?.0;
    wait_for(
        Duration::from_secs(90),
        "the archive to reach the marker",
        || {
            let mut m = m.clone();
            let round_id = round.round_id;
            async move {
                let rounds = m.list_archive(list()).await?.into_inner().rounds;
                Ok(rounds.into_iter().find(|x| {
                    x.tenant_id == tenant.tenant_id
                        && x.round_id == round_id
                        && x.checkpoint_scn >= target
                }))
            }
        },
    )
    .await?;
    let target_lsn = mark.lsn.clone();
    let mut restored = 0;
    restore_and_start(
        r,
        &set.backup_dest,
        set.backup_set_id,
        &target_lsn,
        &mark,
        "bk",
    )
    .await?;
    restored += 1;

    // The copy destination: a copy of a set of this round, and the continuous archive
    // copy past the marker.
    let copy = match in_round(&m.list_backup_sets(list()).await?.into_inner().sets, 1) {
        Some(s) => s,
        None => {
            r.sql(&format!(
                "ALTER SYSTEM BACKUP BACKUPSET ALL TENANT = {PG_TENANT}"
            ))
            .await;
            let id = set.backup_set_id;
            wait_for(Duration::from_secs(120), "the copy of the set", || {
                let mut m = m.clone();
                async move {
                    let sets = m.list_backup_sets(list()).await?.into_inner().sets;
                    Ok(sets.into_iter().find(|s| {
                        s.tenant_id == tenant.tenant_id
                            && s.copy_id == 1
                            && s.backup_set_id == id
                            && s.file_status == "AVAILABLE"
                    }))
                }
            })
            .await?
        }
    };
    wait_for(
        Duration::from_secs(90),
        "the archive copy to reach the marker",
        || {
            let mut m = m.clone();
            async move {
                let copies = m.list_archive(list()).await?.into_inner().copies;
                Ok(copies
                    .into_iter()
                    .find(|c| c.tenant_id == tenant.tenant_id && c.checkpoint_scn >= target))
            }
        },
    )
    .await?;
    let copy_dest = r.copy_dest.clone();
    restore_and_start(r, &copy_dest, copy.backup_set_id, &target_lsn, &mark, "bk2").await?;
    restored += 1;
    Ok(format!(
        "{restored} restores to the marker at {} start and hold exactly what the server held",
        mark.lsn
    ))
}

/// `backstop restore` of set `set_id` to `lsn`, then PostgreSQL on it, compared with
/// `mark`.
async fn restore_and_start(
    r: &Run,
    dest: &str,
    set_id: u64,
    lsn: &str,
    mark: &Mark,
    name: &str,
) -> anyhow::Result<()> {
    let to = r.dir.join(format!("pg-restore-{name}"));
    let out = std::process::Command::new(backstop_bin()?)
        .args(["restore", "--dest", dest, "--tenant", PG_TENANT, "--to"])
        .arg(&to)
        .args([
            "--backup-set",
            &set_id.to_string(),
            "--until-scn",
            lsn,
            "--owner",
            "postgres",
            "--json",
        ])
        .output()?;
    if !out.status.success() {
        bail!(
            "restore of set {set_id} from {name} to {lsn}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let got = start_and_read(&to, &r.dir.join(format!("pg-sock-{name}")))
        .with_context(|| format!("PostgreSQL on the restore of set {set_id} from {name}"))?;
    let want = ("1".to_string(), mark.sum.clone(), mark.history.clone());
    if got != want {
        bail!("set {set_id} from {name} restored to {lsn} holds {got:?}, the server held {want:?}");
    }
    let _ = std::fs::remove_dir_all(&to);
    Ok(())
}

/// Starts PostgreSQL on a restored directory, waits for its promotion, and reads the
/// markers, `sum(abalance)` and the `pgbench_history` count.
fn start_and_read(dir: &Path, sock: &Path) -> anyhow::Result<(String, String, String)> {
    std::fs::create_dir_all(sock)?;
    chown_postgres(sock)?;
    let mut s = PgServer::on(dir, sock);
    s.start(120)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.query("SELECT pg_is_in_recovery()").ok().as_deref() != Some("f") {
        if Instant::now() > deadline {
            s.stop();
            bail!("no promotion within 60 s:\n{}", s.log());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let read = (|| -> anyhow::Result<(String, String, String)> {
        Ok((
            s.query("SELECT string_agg(id::text, ',' ORDER BY id) FROM markers")?,
            s.query("SELECT sum(abalance) FROM pgbench_accounts")?,
            s.query("SELECT count(*) FROM pgbench_history")?,
        ))
    })();
    s.stop();
    read
}

async fn wait_for<T, F, Fut>(within: Duration, what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + within;
    loop {
        match f().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) | Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            Ok(None) => bail!("{what}: not within {within:?}"),
            Err(e) => return Err(e.context(format!("{what}: not within {within:?}"))),
        }
    }
}
