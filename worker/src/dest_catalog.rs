//! What a destination says about a tenant, read from the destination alone (no
//! metadata service): which tenant and incarnation a name means (`info/tenant`), its
//! piece manifests (`clog/…/manifest`, journals merged) and its complete sets
//! (`info/` index entries whose completion marker is there).

use backstop_common::TenantId;
use backstop_common::layout;
use backstop_common::task::TenantDest;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjPath;
use tokio_util::sync::CancellationToken;

use crate::error::{Result, WorkerError};
use crate::manifest::{self, PieceManifest, SetIndex, TenantInfo};
use crate::piece_journal;
use crate::storage::{TenantStore, open_dest};

async fn list_dirs(store: &dyn object_store::ObjectStore, prefix: &str) -> Result<Vec<String>> {
    let p = if prefix.is_empty() {
        None
    } else {
        Some(ObjPath::from(prefix))
    };
    let r = store
        .list_with_delimiter(p.as_ref())
        .await
        .map_err(|e| WorkerError::Storage(format!("list {prefix}: {e}")))?;
    Ok(r.common_prefixes
        .into_iter()
        .map(|p| p.to_string())
        .collect())
}

/// Finds a tenant (by name or id) at a destination from its `info/tenant` entries:
/// `incarnation`, or the newest one.
///
/// Errors: `Invalid` when no such tenant (or incarnation) is there, or the name is
/// ambiguous; `Storage` when listing fails.
pub async fn find_tenant(uri: &str, tenant: &str, incarnation: Option<u64>) -> Result<TenantDest> {
    let parsed =
        backstop_common::BackupDest::parse(uri).map_err(|e| WorkerError::Invalid(e.to_string()))?;
    let root = match &parsed {
        backstop_common::BackupDest::S3 { prefix, .. } => prefix.clone(),
        _ => String::new(),
    };
    let store = open_dest(uri)?;
    let mut found: Vec<TenantDest> = Vec::new();
    for cluster in list_dirs(store.as_ref(), &root).await? {
        for id in list_dirs(store.as_ref(), &cluster).await? {
            for inc in list_dirs(store.as_ref(), &id).await? {
                for t in list_dirs(store.as_ref(), &inc).await? {
                    let key = ObjPath::from(format!("{t}/{}", layout::TENANT_INFO));
                    let Ok(obj) = store.get(&key).await else {
                        continue;
                    };
                    let data = obj
                        .bytes()
                        .await
                        .map_err(|e| WorkerError::Storage(e.to_string()))?;
                    let info: TenantInfo = manifest::from_json(&data, key.as_ref())?;
                    if info.tenant_name.eq_ignore_ascii_case(tenant)
                        || info.tenant_id.to_string() == tenant
                    {
                        found.push(TenantDest {
                            uri: uri.to_string(),
                            cluster_name: info.cluster_name,
                            cluster_id: info.cluster_id,
                            incarnation: info.incarnation,
                            tenant_id: TenantId(info.tenant_id),
                            tenant_name: info.tenant_name,
                        });
                    }
                }
            }
        }
    }
    // Two clusters, or two tenants of that name, at one destination: never chosen by
    // listing order.
    let mut identities: Vec<(String, u64, u64)> = found
        .iter()
        .map(|d| (d.cluster_name.clone(), d.cluster_id, d.tenant_id.0))
        .collect();
    identities.sort();
    identities.dedup();
    if identities.len() > 1 {
        return Err(WorkerError::Invalid(format!(
            "tenant '{tenant}' is ambiguous at {}: {}; give a destination prefix that holds one cluster, or the tenant id",
            parsed.root_path(),
            identities
                .iter()
                .map(|(c, id, t)| format!("cluster {c} (id {id}) tenant {t}"))
                .collect::<Vec<_>>()
                .join(" and ")
        )));
    }
    found.sort_by_key(|d| d.incarnation);
    if let Some(n) = incarnation {
        let have: Vec<String> = found.iter().map(|d| d.incarnation.to_string()).collect();
        found.retain(|d| d.incarnation == n);
        if found.is_empty() && !have.is_empty() {
            return Err(WorkerError::Invalid(format!(
                "tenant '{tenant}' has no incarnation {n} at {} (it has {})",
                parsed.root_path(),
                have.join(", ")
            )));
        }
    }
    found.pop().ok_or_else(|| {
        WorkerError::Invalid(format!("no tenant '{tenant}' at {}", parsed.root_path()))
    })
}

/// Every piece manifest of the tenant.
pub async fn piece_manifests(
    store: &TenantStore,
    cancel: &CancellationToken,
) -> Result<Vec<PieceManifest>> {
    let mut out = Vec::new();
    for key in store.list("clog").await? {
        if let Some(dir) = key.strip_suffix("/manifest") {
            out.push(
                piece_journal::read_existing(store, dir, cancel)
                    .await?
                    .manifest,
            );
        }
    }
    Ok(out)
}

/// Complete sets at the destination, by index entry, with their marker checked.
pub async fn complete_sets(
    store: &TenantStore,
    cancel: &CancellationToken,
) -> Result<Vec<SetIndex>> {
    let mut out = Vec::new();
    for key in store.list("info").await? {
        if !key.starts_with(layout::SET_INDEX_PREFIX) {
            continue;
        }
        let index: SetIndex = manifest::from_json(&store.get(&key, cancel).await?, &key)?;
        let marker = layout::set_complete(&index.set_dir);
        if store.exists(&marker).await? {
            out.push(index);
        }
    }
    Ok(out)
}
