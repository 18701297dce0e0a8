//! What a run does to its cluster: the workload's statements through the real gateway
//! (backups, copies, cancels, deletes, destination changes) and the nemeses' faults.

use std::time::{Duration, Instant};

use backstop_proto::meta::meta_service_client::MetaServiceClient;
use backstop_proto::meta::*;
use mysql_async::prelude::Queryable;
use tonic::transport::Channel;

use crate::proxy::Mode;

use super::nemesis::{Fault, Nemesis};
use super::report::Operation;
use super::{Run, TENANTS, list, now_ms};

impl Run {
    pub(super) fn at(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub(super) async fn meta(&self) -> anyhow::Result<MetaServiceClient<Channel>> {
        self.cluster.client().await
    }

    pub(super) fn record(&mut self, at: f64, what: String, result: Result<(), String>) {
        self.ops.push(Operation {
            at_s: at,
            what,
            result: match result {
                Ok(()) => "ok".to_string(),
                Err(e) => e,
            },
            returned_ms: now_ms(),
        });
    }

    /// One statement through the gateway (a fresh connection each time, as a DBA's
    /// `mysql -e` would).
    pub(super) async fn sql(&mut self, stmt: &str) {
        let at = self.at();
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.cluster.sql_port)
            .user(Some("root@sys"));
        let result = tokio::time::timeout(Duration::from_secs(10), async {
            let mut c = mysql_async::Conn::new(opts).await?;
            c.query_drop(stmt).await?;
            c.disconnect().await?;
            Ok::<(), mysql_async::Error>(())
        })
        .await;
        let result = match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_string()),
        };
        self.record(at, stmt.to_string(), result);
    }

    /// One operation chosen by the seed.
    pub(super) async fn operate(&mut self) {
        let all = self.tenants();
        let t = all[self.rng.below(all.len() as u64) as usize];
        // Rarely, the escape hatch: it ends every job and pauses the copies; the next
        // START BACKUP ARCHIVELOG resumes them.
        if self.rng.below(40) == 0 {
            self.sql("ALTER SYSTEM CANCEL ALL BACKUP FORCE").await;
            return;
        }
        // The life-cycle operations (issue 11): deletes, tenant-level copies, archive
        // rounds ending and starting, destination changes.
        match self.rng.below(16) {
            0 => return self.delete_a_set(t).await,
            1 => return self.archive_cycle(t).await,
            2 => return self.change_destination().await,
            3 => {
                return self
                    .sql(&format!("ALTER SYSTEM BACKUP BACKUPSET ALL TENANT = {t}"))
                    .await;
            }
            _ => {}
        }
        let stmt = match self.rng.below(10) {
            0 | 1 => format!("ALTER SYSTEM BACKUP DATABASE TENANT = {t}"),
            2 => format!("ALTER SYSTEM BACKUP INCREMENTAL DATABASE TENANT = {t}"),
            3 => "ALTER SYSTEM BACKUP BACKUPSET ALL".to_string(),
            4 => "ALTER SYSTEM CANCEL BACKUP BACKUPSET".to_string(),
            5 => format!(
                "ALTER SYSTEM BACKUP BACKUPPIECE ALL BACKUP_BACKUP_DEST = 'file://{}'",
                self.dir.join("pieces").display()
            ),
            6 => "ALTER SYSTEM CANCEL BACKUP BACKUPPIECE".to_string(),
            7 => {
                if self.rng.below(2) == 0 {
                    "ALTER SYSTEM STOP BACKUP ARCHIVELOG".to_string()
                } else {
                    "ALTER SYSTEM START BACKUP ARCHIVELOG".to_string()
                }
            }
            8 => format!("ALTER SYSTEM CANCEL BACKUP TENANT = {t}"),
            _ => {
                if self.rng.below(2) == 0 {
                    "ALTER SYSTEM SUSPEND BACKUP".to_string()
                } else {
                    "ALTER SYSTEM RESUME BACKUP".to_string()
                }
            }
        };
        self.sql(&stmt).await;
    }

    /// `DELETE BACKUPSET n [COPY 1]` of one of the tenant's available sets (the
    /// refusals — a base of an available incremental, a busy set — are part of it).
    pub(super) async fn delete_a_set(&mut self, tenant: &str) {
        let Ok(mut m) = self.meta().await else {
            return;
        };
        let Ok(tenants) = m.list_tenants(ListTenantsRequest {}).await else {
            return;
        };
        let Some(tenant_id) = tenants
            .into_inner()
            .tenants
            .iter()
            .find(|t| t.tenant_name == tenant)
            .map(|t| t.tenant_id)
        else {
            return;
        };
        let Ok(sets) = m.list_backup_sets(list()).await else {
            return;
        };
        let candidates: Vec<(u64, u64)> = sets
            .into_inner()
            .sets
            .iter()
            .filter(|s| s.tenant_id == tenant_id && s.file_status == "AVAILABLE")
            .filter(|s| s.copy_id <= 1)
            .map(|s| (s.backup_set_id, s.copy_id))
            .collect();
        if candidates.is_empty() {
            return;
        }
        let (id, copy) = candidates[self.rng.below(candidates.len() as u64) as usize];
        let stmt = if copy == 0 {
            format!("ALTER SYSTEM DELETE BACKUPSET {id} TENANT = {tenant}")
        } else {
            format!("ALTER SYSTEM DELETE BACKUPSET {id} COPY {copy} TENANT = {tenant}")
        };
        self.sql(&stmt).await;
    }

    /// `NOARCHIVELOG` for one tenant, then `ARCHIVELOG` again once the round stopped
    /// (a new round: a set taken meanwhile must fail, not show AVAILABLE without log).
    pub(super) async fn archive_cycle(&mut self, tenant: &str) {
        self.sql(&format!("ALTER SYSTEM NOARCHIVELOG TENANT = {tenant}"))
            .await;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            self.sql(&format!("ALTER SYSTEM ARCHIVELOG TENANT = {tenant}"))
                .await;
            let done = self.ops.last().is_some_and(|o| o.result == "ok");
            if done || Instant::now() > deadline {
                return;
            }
        }
    }

    /// A destination change: `backup_dest` elsewhere (refused while tenants archive to
    /// it) or, on S3, `backup_backup_dest` with rotated credentials (the same place:
    /// every guard must still recognize it).
    pub(super) async fn change_destination(&mut self) {
        if self.copy_dest.starts_with("s3://") {
            let key = if self.rng.below(2) == 0 {
                "test"
            } else {
                "rotated"
            };
            let uri = self
                .copy_dest
                .replace("access_key=test", &format!("access_key={key}"))
                .replace("access_key=rotated", &format!("access_key={key}"));
            self.copy_dest = uri.clone();
            self.sql(&format!("ALTER SYSTEM SET backup_backup_dest = '{uri}'"))
                .await;
        } else {
            let moved = format!("file://{}", self.dir.join("bk-moved").display());
            self.sql(&format!("ALTER SYSTEM SET backup_dest = '{moved}'"))
                .await;
        }
    }

    /// Injects one fault for `hold`, then heals it.
    pub(super) async fn fault(
        &mut self,
        n: Nemesis,
        hold: Duration,
        lease: Duration,
    ) -> anyhow::Result<()> {
        let at = self.at();
        let workers = self.cluster.worker_count() as u64;
        let target;
        let mut detail = String::new();
        match n {
            Nemesis::KillMetaLeader => {
                target = self.cluster.leader().await.unwrap_or(0);
                self.cluster.kill_meta(target);
                tokio::time::sleep(hold).await;
                self.cluster.restart_meta(target)?;
            }
            Nemesis::KillMetaFollower => {
                let leader = self.cluster.leader().await.unwrap_or(0);
                let n = self.cluster.meta_count();
                target = (leader + 1 + self.rng.below(n as u64 - 1) as usize) % n;
                self.cluster.kill_meta(target);
                tokio::time::sleep(hold).await;
                self.cluster.restart_meta(target)?;
            }
            Nemesis::KillWorker => {
                target = self.rng.below(workers) as usize;
                self.cluster.kill_worker(target);
                tokio::time::sleep(hold).await;
                self.cluster.restart_worker(target)?;
            }
            Nemesis::KillGateway => {
                target = 0;
                self.cluster.restart_gateway()?;
                tokio::time::sleep(hold).await;
            }
            Nemesis::PauseWorker => {
                target = self.rng.below(workers) as usize;
                self.cluster.pause_worker(target, true)?;
                // Past the lease: the leader hands the work on; the zombie wakes up.
                tokio::time::sleep(hold.max(lease + Duration::from_secs(1))).await;
                self.cluster.pause_worker(target, false)?;
            }
            Nemesis::PartitionWorker => {
                target = self.rng.below(workers) as usize;
                self.cluster.partition_worker(target, true);
                tokio::time::sleep(hold.max(lease + Duration::from_secs(1))).await;
                self.cluster.partition_worker(target, false);
            }
            Nemesis::S3Outage | Nemesis::S3Slow | Nemesis::S3Errors | Nemesis::S3TruncatedReads => {
                target = 0;
                if let Some(p) = self.cluster.s3_proxy() {
                    match n {
                        Nemesis::S3Outage => p.set(Mode::Drop),
                        Nemesis::S3Errors => p.set(Mode::HttpError),
                        Nemesis::S3TruncatedReads => p.set(Mode::Truncate),
                        _ => p.delay(Duration::from_millis(200)),
                    }
                }
                tokio::time::sleep(hold).await;
                if let Some(p) = self.cluster.s3_proxy() {
                    p.set(Mode::Pass);
                    p.delay(Duration::ZERO);
                }
            }
            Nemesis::PartitionMetaLeader | Nemesis::PartitionMetaFollower | Nemesis::OneWayMeta => {
                let leader = self.cluster.leader().await.unwrap_or(0);
                let metas = self.cluster.meta_count();
                target = match n {
                    Nemesis::PartitionMetaLeader => leader,
                    Nemesis::PartitionMetaFollower => {
                        (leader + 1 + self.rng.below(metas as u64 - 1) as usize) % metas
                    }
                    _ => self.rng.below(metas as u64) as usize,
                };
                if n == Nemesis::OneWayMeta {
                    self.cluster.partition_meta(target, Mode::Drop, Mode::Pass);
                } else {
                    self.cluster.partition_meta(target, Mode::Drop, Mode::Drop);
                }
                // Longer than an election: the majority side elects a new leader.
                tokio::time::sleep(hold.max(Duration::from_secs(3))).await;
                self.cluster.partition_meta(target, Mode::Pass, Mode::Pass);
            }
            Nemesis::ClockJump => {
                target = self.cluster.leader().await.unwrap_or(0);
                let secs = 30 + self.rng.below(91) as i64;
                let shift_ms = if self.rng.below(2) == 0 { -secs } else { secs } * 1000;
                detail = format!("leader clock {shift_ms:+} ms");
                self.clock_shifts.push((now_ms(), shift_ms));
                let name = format!("meta{}", target + 1);
                self.cluster.arm(
                    &name,
                    &format!(
                        "{}=return({shift_ms})",
                        backstop_common::failpoints::CLOCK_POINT
                    ),
                )?;
                tokio::time::sleep(hold).await;
                self.cluster.arm(&name, "")?;
            }
            Nemesis::Failpoint => {
                use backstop_common::failpoints::WORKER_POINTS;
                let point = WORKER_POINTS[self.failpoints_armed % WORKER_POINTS.len()];
                self.failpoints_armed += 1;
                target = self.failpoints_armed - 1;
                // The action follows the turn (not the clock-dependent generator), so a
                // seed arms the same point with the same action every time.
                let action = match (self.cluster.seed() as usize + target) % 3 {
                    0 => "1*return(crash)",
                    1 => "return",
                    _ => "return(stall)",
                };
                detail = format!("{point}={action}");
                for w in 0..workers as usize {
                    self.cluster.arm(&format!("worker{w}"), &detail)?;
                }
                // Start the work that passes the point (archiving always runs).
                let t = TENANTS[self.rng.below(TENANTS.len() as u64) as usize];
                let backup = format!("ALTER SYSTEM BACKUP DATABASE TENANT = {t}");
                let statements: Vec<String> = match point.split("::").next() {
                    Some("backup") | Some("task") => vec![backup],
                    Some("copy") => vec![
                        "ALTER SYSTEM BACKUP BACKUPSET ALL".to_string(),
                        format!(
                            "ALTER SYSTEM BACKUP BACKUPPIECE ALL BACKUP_BACKUP_DEST = 'file://{}'",
                            self.dir.join("pieces").display()
                        ),
                    ],
                    Some("clean") => vec![
                        backup,
                        "ALTER SYSTEM BACKUP BACKUPSET ALL".to_string(),
                        format!("ALTER SYSTEM CANCEL BACKUP TENANT = {t}"),
                        "ALTER SYSTEM CANCEL BACKUP BACKUPSET".to_string(),
                    ],
                    _ => Vec::new(),
                };
                for stmt in statements {
                    self.sql(&stmt).await;
                }
                tokio::time::sleep(hold.min(Duration::from_secs(2))).await;
                for w in 0..workers as usize {
                    self.cluster.arm(&format!("worker{w}"), "")?;
                }
                // Give a crash that is under way a moment, then bring the dead back.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let restarted = self.cluster.restart_exited_workers()?;
                if !restarted.is_empty() {
                    detail.push_str(&format!("; restarted crashed workers {restarted:?}"));
                }
            }
            Nemesis::DiskFull => {
                target = 0;
                let dir = self.dir.join("pieces");
                if self.small_fs {
                    let filler = self.cluster.fill(&dir)?;
                    tokio::time::sleep(hold).await;
                    let _ = std::fs::remove_file(filler);
                } else {
                    // No tmpfs (not root): nothing to fill without filling the disk.
                    tokio::time::sleep(hold).await;
                }
            }
            Nemesis::SlowWorkerLink => {
                target = self.rng.below(workers) as usize;
                for p in &self.cluster.worker_proxies[target] {
                    p.delay(Duration::from_millis(300));
                }
                tokio::time::sleep(hold).await;
                for p in &self.cluster.worker_proxies[target] {
                    p.delay(Duration::ZERO);
                }
            }
        }
        let held = self.at() - at;
        self.faults.push(Fault {
            at_s: at,
            nemesis: n.name(),
            target,
            held_s: held,
            detail,
        });
        Ok(())
    }
}
