//! `ctl`'s listings of the catalog: archive rounds, pieces, sets, copies, jobs, tasks
//! and workers.

use backstop_proto::meta::*;
use serde_json::{Value, json};

use super::client::{Client, rpc};
use super::render::*;

/// The list request for every row (live and history) of `tenant`, or of every tenant.
fn every_row_of(tenant: Option<String>) -> ListRequest {
    ListRequest {
        tenant_name: tenant.unwrap_or_default(),
        job_id: 0,
        all: true,
    }
}

/// `ctl copies`.
pub(super) async fn copies(c: &Client, j: bool, tenant: Option<String>) -> anyhow::Result<()> {
    let req = every_row_of(tenant);
    let r = rpc!(c, list_archive, req);
    let rows = r
        .copies
        .iter()
        .map(|x| {
            vec![
                x.tenant_id.to_string(),
                x.copy_id.to_string(),
                x.status.clone(),
                x.round_id.to_string(),
                x.checkpoint_scn.to_string(),
                x.lag_ms.to_string(),
                x.output_bytes.to_string(),
                x.backup_dest.clone(),
            ]
        })
        .collect();
    let mut text = table(
        &[
            "TENANT_ID",
            "COPY_ID",
            "STATUS",
            "ROUND",
            "CHECKPOINT_SCN",
            "LAG_MS",
            "BYTES",
            "BACKUP_DEST",
        ],
        rows,
    );
    if !r.leftovers.is_empty() {
        text.push_str("\nleft for the cleaner:\n");
        text.push_str(&table(
            &["ID", "TENANT_ID", "DIR", "BACKUP_DEST", "REASON"],
            r.leftovers
                .iter()
                .map(|l| {
                    vec![
                        l.id.to_string(),
                        l.tenant_id.to_string(),
                        l.dir.clone(),
                        l.backup_dest.clone(),
                        l.reason.clone(),
                    ]
                })
                .collect(),
        ));
    }
    let v = json!({
        "copies": r.copies.iter().map(|x| json!({
            "tenant_id": x.tenant_id, "copy_id": x.copy_id, "status": x.status,
            "round_id": x.round_id, "start_scn": x.start_scn, "checkpoint_scn": x.checkpoint_scn,
            "checkpoint_time_ms": x.checkpoint_time_ms, "lag_ms": x.lag_ms,
            "output_bytes": x.output_bytes, "backup_dest": x.backup_dest, "job_id": x.job_id,
        })).collect::<Vec<_>>(),
        "leftovers": r.leftovers.iter().map(|l| json!({
            "id": l.id, "tenant_id": l.tenant_id, "dir": l.dir, "backup_dest": l.backup_dest,
            "reason": l.reason, "not_before_ms": l.not_before_ms,
        })).collect::<Vec<_>>(),
    });
    print(j, v, text)
}

/// `ctl archive`.
pub(super) async fn archive(c: &Client, j: bool, tenant: Option<String>) -> anyhow::Result<()> {
    let req = every_row_of(tenant);
    let r = rpc!(c, list_archive, req);
    let rows = r
        .rounds
        .iter()
        .map(|x| {
            vec![
                x.tenant_id.to_string(),
                x.round_id.to_string(),
                x.status.clone(),
                x.start_scn.to_string(),
                x.checkpoint_scn.to_string(),
                x.lag_ms.to_string(),
                x.input_bytes.to_string(),
                x.backup_dest.clone(),
                x.comment.clone(),
            ]
        })
        .collect();
    let text = table(
        &[
            "TENANT_ID",
            "ROUND",
            "STATUS",
            "START_SCN",
            "CHECKPOINT_SCN",
            "LAG_MS",
            "INPUT_BYTES",
            "BACKUP_DEST",
            "COMMENT",
        ],
        rows,
    );
    let v = r.rounds.iter().map(|x| json!({
        "tenant_id": x.tenant_id, "round_id": x.round_id, "status": x.status, "start_scn": x.start_scn,
        "checkpoint_scn": x.checkpoint_scn, "start_time_ms": x.start_time_ms, "checkpoint_time_ms": x.checkpoint_time_ms,
        "input_bytes": x.input_bytes, "output_bytes": x.output_bytes, "lag_ms": x.lag_ms,
        "backup_dest": x.backup_dest, "comment": x.comment, "job_id": x.job_id,
    })).collect();
    print(j, Value::Array(v), text)
}

/// `ctl pieces`.
pub(super) async fn pieces(c: &Client, j: bool, tenant: Option<String>) -> anyhow::Result<()> {
    let req = every_row_of(tenant);
    let r = rpc!(c, list_pieces, req);
    let rows = r
        .pieces
        .iter()
        .map(|p| {
            vec![
                p.tenant_id.to_string(),
                p.round_id.to_string(),
                p.backup_piece_id.to_string(),
                p.copy_id.to_string(),
                p.status.clone(),
                p.file_status.clone(),
                p.start_scn.to_string(),
                p.checkpoint_scn.to_string(),
                p.max_scn.map_or("MAX".into(), |m| m.to_string()),
            ]
        })
        .collect();
    let text = table(
        &[
            "TENANT_ID",
            "ROUND",
            "PIECE",
            "COPY",
            "STATUS",
            "FILE_STATUS",
            "START_SCN",
            "CHECKPOINT_SCN",
            "MAX_SCN",
        ],
        rows,
    );
    let v = r.pieces.iter().map(|p| json!({
        "tenant_id": p.tenant_id, "round_id": p.round_id, "backup_piece_id": p.backup_piece_id, "copy_id": p.copy_id,
        "status": p.status, "file_status": p.file_status, "start_scn": p.start_scn, "checkpoint_scn": p.checkpoint_scn,
        "max_scn": p.max_scn, "create_time_ms": p.create_time_ms, "checkpoint_time_ms": p.checkpoint_time_ms, "backup_dest": p.backup_dest,
    })).collect();
    print(j, Value::Array(v), text)
}

/// `ctl sets`.
pub(super) async fn sets(c: &Client, j: bool, tenant: Option<String>) -> anyhow::Result<()> {
    let req = every_row_of(tenant);
    let r = rpc!(c, list_backup_sets, req);
    let rows = r
        .sets
        .iter()
        .map(|s| {
            vec![
                s.tenant_id.to_string(),
                s.backup_set_id.to_string(),
                s.copy_id.to_string(),
                s.backup_type.clone(),
                s.base_set_id.map_or("-".into(), |b| b.to_string()),
                s.status.clone(),
                s.file_status.clone(),
                s.start_replay_scn.to_string(),
                s.min_restore_scn.to_string(),
                s.input_bytes.to_string(),
                s.output_bytes.to_string(),
                s.comment.clone(),
            ]
        })
        .collect();
    let text = table(
        &[
            "TENANT_ID",
            "SET",
            "COPY",
            "TYPE",
            "BASE",
            "STATUS",
            "FILE_STATUS",
            "START_REPLAY_SCN",
            "MIN_RESTORE_SCN",
            "INPUT_BYTES",
            "OUTPUT_BYTES",
            "COMMENT",
        ],
        rows,
    );
    let v = r.sets.iter().map(|s| json!({
        "tenant_id": s.tenant_id, "backup_set_id": s.backup_set_id, "copy_id": s.copy_id, "backup_type": s.backup_type,
        "base_set_id": s.base_set_id, "status": s.status, "file_status": s.file_status,
        "start_replay_scn": s.start_replay_scn, "min_restore_scn": s.min_restore_scn,
        "input_bytes": s.input_bytes, "output_bytes": s.output_bytes, "file_count": s.file_count,
        "start_time_ms": s.start_time_ms, "end_time_ms": s.end_time_ms, "backup_dest": s.backup_dest,
        "comment": s.comment, "job_id": s.job_id, "incarnation": s.incarnation,
    })).collect();
    print(j, Value::Array(v), text)
}

/// `ctl jobs`.
pub(super) async fn jobs(
    c: &Client,
    j: bool,
    tenant: Option<String>,
    all: bool,
) -> anyhow::Result<()> {
    let req = ListRequest {
        tenant_name: tenant.unwrap_or_default(),
        job_id: 0,
        all,
    };
    let r = rpc!(c, list_jobs, req);
    let rows = r
        .jobs
        .iter()
        .map(|x| {
            vec![
                x.job_id.to_string(),
                x.tenant_id.to_string(),
                x.job_type.clone(),
                x.status.clone(),
                format!("{}/{}", x.bytes_done, x.bytes_total),
                x.result.clone(),
                x.comment.clone(),
            ]
        })
        .collect();
    let text = table(
        &[
            "JOB_ID",
            "TENANT_ID",
            "TYPE",
            "STATUS",
            "BYTES",
            "RESULT",
            "COMMENT",
        ],
        rows,
    );
    let v = r.jobs.iter().map(|x| json!({
        "job_id": x.job_id, "tenant_id": x.tenant_id, "job_type": x.job_type, "status": x.status,
        "result": x.result, "comment": x.comment, "start_time_ms": x.start_time_ms, "end_time_ms": x.end_time_ms,
        "backup_set_id": x.backup_set_id, "round_id": x.round_id, "bytes_done": x.bytes_done, "bytes_total": x.bytes_total,
    })).collect();
    print(j, Value::Array(v), text)
}

/// `ctl tasks`.
pub(super) async fn tasks(c: &Client, j: bool, job: u64, all: bool) -> anyhow::Result<()> {
    let req = ListRequest {
        tenant_name: String::new(),
        job_id: job,
        all,
    };
    let r = rpc!(c, list_tasks, req);
    let rows = r
        .tasks
        .iter()
        .map(|t| {
            vec![
                t.task_id.to_string(),
                t.job_id.to_string(),
                t.task_type.clone(),
                t.status.clone(),
                t.attempt.to_string(),
                t.worker_id.map_or("-".into(), |w| w.to_string()),
                t.worker_addr.clone(),
                format!("{}/{}", t.bytes_done, t.bytes_total),
                t.last_error.clone(),
            ]
        })
        .collect();
    let text = table(
        &[
            "TASK_ID",
            "JOB_ID",
            "TYPE",
            "STATUS",
            "ATTEMPT",
            "WORKER",
            "WORKER_ADDR",
            "BYTES",
            "LAST_ERROR",
        ],
        rows,
    );
    let v = r.tasks.iter().map(|t| json!({
        "task_id": t.task_id, "job_id": t.job_id, "tenant_id": t.tenant_id, "task_type": t.task_type,
        "status": t.status, "attempt": t.attempt, "worker_id": t.worker_id, "worker_addr": t.worker_addr,
        "bytes_done": t.bytes_done, "bytes_total": t.bytes_total, "last_error": t.last_error,
    })).collect();
    print(j, Value::Array(v), text)
}

/// `ctl workers`.
pub(super) async fn workers(c: &Client, j: bool) -> anyhow::Result<()> {
    let req = ListRequest {
        tenant_name: String::new(),
        job_id: 0,
        all: true,
    };
    let r = rpc!(c, list_workers, req);
    let rows = r
        .workers
        .iter()
        .map(|w| {
            vec![
                w.worker_id.to_string(),
                w.addr.clone(),
                w.slots.to_string(),
                w.running_tasks.to_string(),
                if w.tenants.is_empty() {
                    "*".into()
                } else {
                    w.tenants.join(",")
                },
            ]
        })
        .collect();
    let text = table(&["WORKER_ID", "ADDR", "SLOTS", "RUNNING", "TENANTS"], rows);
    let v = r.workers.iter().map(|w| json!({
        "worker_id": w.worker_id, "addr": w.addr, "slots": w.slots, "running_tasks": w.running_tasks,
        "tenants": w.tenants, "register_time_ms": w.register_time_ms,
    })).collect();
    print(j, Value::Array(v), text)
}

/// `ctl tenant show NAME`: the tenant, its newest archive round and, for a
/// PostgreSQL tenant, what the server says (connecting from this host with the
/// source's user, the password from `PGPASSFILE`: the catalog never hands it out):
/// the system identifier, timeline, the archive's slot, and the server's and the
/// archive's WAL positions (LSNs as `X/Y`).
pub(super) async fn tenant_show(c: &Client, j: bool, name: String) -> anyhow::Result<()> {
    let r = c.list_tenants().await?;
    let Some(t) = r
        .tenants
        .iter()
        .find(|t| t.tenant_name.eq_ignore_ascii_case(&name))
        .cloned()
    else {
        anyhow::bail!("no tenant named {name}");
    };
    let req = ListRequest {
        tenant_name: t.tenant_name.clone(),
        job_id: 0,
        all: true,
    };
    let rounds = rpc!(c, list_archive, req);
    let round = rounds.rounds.iter().max_by_key(|x| x.round_id).cloned();
    let mut v = json!({
        "tenant_id": t.tenant_id, "tenant_name": t.tenant_name, "source": t.source,
        "status": t.status, "incarnation": t.incarnation,
        "recorded_system_identifier": t.system_identifier, "recorded_timeline": t.timeline,
        "round": round.as_ref().map(|x| json!({
            "round_id": x.round_id, "status": x.status, "checkpoint_scn": x.checkpoint_scn,
            "lag_ms": x.lag_ms, "comment": x.comment,
        })),
    });
    let mut lines = vec![
        format!("tenant:            {} (id {})", t.tenant_name, t.tenant_id),
        format!("source:            {}", t.source),
        format!("status:            {}", t.status),
        format!("incarnation:       {}", t.incarnation),
    ];
    if t.system_identifier != 0 {
        lines.push(format!(
            "recorded identity: system {}, timeline {}",
            t.system_identifier, t.timeline
        ));
    }
    match &round {
        Some(x) => lines.push(format!(
            "archive:           round {} {}, checkpoint SCN {}, lag {} ms{}",
            x.round_id,
            x.status,
            x.checkpoint_scn,
            x.lag_ms,
            if x.comment.is_empty() {
                String::new()
            } else {
                format!(" ({})", x.comment)
            }
        )),
        None => lines.push("archive:           never started".into()),
    }
    if backstop_common::source::is_postgresql(&t.source) {
        let pg = pg_show(
            &t.source,
            t.tenant_id,
            round.as_ref().map(|x| x.checkpoint_scn),
        )
        .await;
        for (k, val) in &pg {
            lines.push(format!("{:<19}{}", format!("{k}:"), val));
        }
        v["postgresql"] = Value::Object(
            pg.into_iter()
                .map(|(k, val)| (k.replace(' ', "_"), Value::String(val)))
                .collect(),
        );
    }
    print(j, v, lines.join("\n"))
}

/// What a PostgreSQL server says about a tenant, as (label, value) pairs; a server
/// that cannot be reached gives one pair saying why.
async fn pg_show(source: &str, tenant_id: u64, checkpoint: Option<u64>) -> Vec<(String, String)> {
    use backstop_pg::{Lsn, session};
    let src = match backstop_common::source::PgSource::parse(source) {
        // The catalog shows the password as ***: never send that.
        Ok(mut s) => {
            s.password = None;
            s
        }
        Err((_, m)) => return vec![("server".into(), format!("bad source: {m}"))],
    };
    let client = match backstop_pg::connect(&src).await {
        Ok(c) => c,
        Err(e) => return vec![("server".into(), e.to_string())],
    };
    let mut out = Vec::new();
    match backstop_pg::server_info(&client, &src.to_uri(true)).await {
        Ok(info) => {
            out.push((
                "system identifier".into(),
                info.system_identifier.to_string(),
            ));
            out.push(("timeline".into(), info.timeline.to_string()));
            out.push(("server WAL".into(), format!("{} (flush)", info.flush_lsn)));
            if let Some(ck) = checkpoint {
                out.push((
                    "archive WAL".into(),
                    format!(
                        "{} ({} bytes behind the server)",
                        Lsn(ck),
                        info.flush_lsn.0.saturating_sub(ck)
                    ),
                ));
            }
        }
        Err(e) => out.push(("server".into(), e.to_string())),
    }
    let slot = session::slot_name(tenant_id);
    let state = match session::slot_state(&client, &slot).await {
        Ok(Some(s)) => format!(
            "{slot}: wal_status {}, restart_lsn {}",
            s.wal_status,
            s.restart_lsn.map_or("-".to_string(), |l| l.to_string())
        ),
        Ok(None) => format!("{slot}: none (the archive is not running)"),
        Err(e) => format!("{slot}: {e}"),
    };
    out.push(("slot".into(), state));
    out
}
