//! How `ctl` shows answers: tables for people, JSON (`--json`) for scripts, and the
//! requests several commands share.

use anyhow::bail;
use backstop_proto::meta::*;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde_json::{Value, json};
use std::time::Duration;

pub(super) fn split_user(s: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('@') {
        Some((u, t)) if !u.is_empty() && !t.is_empty() => Ok((u.to_string(), t.to_string())),
        _ => bail!("expected user@tenant, got '{s}'"),
    }
}

pub(super) fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header(header.to_vec());
    for r in rows {
        t.add_row(r);
    }
    t.to_string()
}

pub(super) fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

pub(super) fn status_json(s: &ClusterStatus) -> Value {
    json!({
        "cluster_name": s.cluster_name, "cluster_id": s.cluster_id, "node_id": s.node_id,
        "state": s.state, "leader_id": s.leader_id, "leader_addr": s.leader_addr, "term": s.term,
        "last_log_index": s.last_log_index, "commit_index": s.commit_index,
        "applied_index": s.applied_index, "snapshot_index": s.snapshot_index,
        "purged_index": s.purged_index, "data_version": s.data_version,
        "members": s.members.iter().map(|m| json!({
            "node_id": m.node_id, "addr": m.addr, "role": m.role, "matched_index": m.matched_index,
        })).collect::<Vec<_>>(),
    })
}

pub(super) fn status_text(s: &ClusterStatus) -> String {
    let mut out = format!(
        "cluster   {} (id {})\nnode      {} ({})\nleader    {} {}\nterm      {}\nlog       last {}  committed {}  applied {}  snapshot {}  purged {}\n",
        s.cluster_name,
        s.cluster_id,
        s.node_id,
        s.state,
        opt(s.leader_id),
        s.leader_addr,
        s.term,
        opt(s.last_log_index),
        opt(s.commit_index),
        opt(s.applied_index),
        opt(s.snapshot_index),
        opt(s.purged_index),
    );
    out.push_str(&table(
        &["NODE_ID", "ADDR", "ROLE", "LEADER", "MATCHED_INDEX"],
        s.members
            .iter()
            .map(|m| {
                vec![
                    m.node_id.to_string(),
                    m.addr.clone(),
                    m.role.clone(),
                    if Some(m.node_id) == s.leader_id {
                        "*".into()
                    } else {
                        String::new()
                    },
                    opt(m.matched_index),
                ]
            })
            .collect(),
    ));
    out
}

pub(super) fn tenant_json(t: &Tenant) -> Value {
    json!({"tenant_id": t.tenant_id, "tenant_name": t.tenant_name, "source": t.source,
           "comment": t.comment, "status": t.status, "incarnation": t.incarnation,
           "create_time_ms": t.create_time_ms})
}

pub(super) fn tenants_text(ts: &[Tenant]) -> String {
    table(
        &["TENANT_ID", "TENANT_NAME", "STATUS", "SOURCE", "COMMENT"],
        ts.iter()
            .map(|t| {
                vec![
                    t.tenant_id.to_string(),
                    t.tenant_name.clone(),
                    t.status.clone(),
                    t.source.clone(),
                    t.comment.clone(),
                ]
            })
            .collect(),
    )
}

pub(super) fn param_json(p: &Parameter) -> Value {
    json!({"name": p.name, "tenant_name": p.tenant_name, "value": p.value, "info": p.info,
           "update_time_ms": p.update_time_ms})
}

pub(super) fn params_text(ps: &[Parameter]) -> String {
    table(
        &["NAME", "TENANT", "VALUE", "INFO"],
        ps.iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.tenant_name.clone(),
                    p.value.clone(),
                    p.info.clone(),
                ]
            })
            .collect(),
    )
}

pub(super) fn user_json(u: &User) -> Value {
    json!({"user_name": u.user_name, "tenant_name": u.tenant_name, "create_time_ms": u.create_time_ms,
           "backup_admin": u.backup_admin, "empty_password": u.empty_password})
}

/// A verb as ctl prints it: `cancel_backup_backupset`, the statement's words.
pub(super) fn verb_name(verb: BackupVerb) -> String {
    verb.as_str_name()
        .trim_start_matches("BACKUP_VERB_")
        .to_ascii_lowercase()
}

/// A `BackupManage` request with no selection (cancel, suspend, resume, start/stop).
pub(super) fn manage_req(verb: BackupVerb, tenant: Option<String>, id: u64) -> BackupManageRequest {
    BackupManageRequest {
        verb: verb.into(),
        tenants: tenant.into_iter().collect(),
        id,
        max_backup_times: None,
        with_active: false,
        dest: String::new(),
        copy_id: 0,
    }
}

pub(super) fn policy_json(p: &Policy) -> Value {
    json!({
        "tenant": if p.tenant_name.is_empty() { "(cluster)" } else { p.tenant_name.as_str() },
        "tenant_id": p.tenant_id,
        "full_interval_ms": p.full_interval_ms,
        "incremental_interval_ms": p.incremental_interval_ms,
        "secondary": p.secondary,
    })
}

pub(super) fn policies_text(ps: &[Policy]) -> String {
    let every = |ms: u64| {
        if ms == 0 {
            "-".to_string()
        } else {
            humantime::format_duration(Duration::from_millis(ms)).to_string()
        }
    };
    table(
        &["TENANT", "FULL_EVERY", "INCREMENTAL_EVERY", "SECONDARY"],
        ps.iter()
            .map(|p| {
                vec![
                    if p.tenant_name.is_empty() {
                        "(cluster)".to_string()
                    } else {
                        p.tenant_name.clone()
                    },
                    every(p.full_interval_ms),
                    every(p.incremental_interval_ms),
                    if p.secondary { "on" } else { "off" }.to_string(),
                ]
            })
            .collect(),
    )
}

pub(super) fn print(json_mode: bool, value: Value, text: String) -> anyhow::Result<()> {
    if json_mode {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("{}", text.trim_end());
    }
    Ok(())
}
