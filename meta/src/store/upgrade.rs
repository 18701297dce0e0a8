//! Layout upgrades: each step reads the records an older build wrote and writes them
//! in the next layout's form, in one `WriteBatch` with that version number, so a
//! crash between steps leaves a consistent older layout that the next open carries on.
//!
//! - Layout 1 was written by pre-release builds only (before backup-of-backup added
//!   counters to `c/cluster`); it is not carried forward.
//! - Layout 2 → 3: tenant records gained `identity` (a PostgreSQL source's
//!   `system_identifier` and timeline). Tenant records and the stored snapshot are
//!   rewritten with `identity: None`; the next check of the source fills it.
//! - Layout 3 → 4: user records gained `backup_admin` (`GRANT BACKUP_ADMIN`). Users
//!   that existed before keep what they could do: they get `backup_admin: true`
//!   (`REVOKE` takes it away); users created later start without it.

use std::collections::BTreeMap;

use backstop_common::TenantId;
use backstop_common::auth::PasswordHash;
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{DATA_VERSION, OpenError, SnapshotPayload, StoredSnapshot};
use crate::codec::{CodecError, decode, encode};
use crate::keys;
use crate::state::{
    ClusterRecord, MetaState, ParamKey, ParamRecord, TenantRecord, TenantStatus, UserKey,
    UserRecord, WorkState,
};

/// Brings the layout up to [`DATA_VERSION`]. A fresh database gets the current
/// version.
pub(super) fn upgrade(db: &DB, path: &str) -> Result<(), OpenError> {
    let corrupt = |reason: String| OpenError::Corrupt {
        path: path.to_string(),
        reason,
    };
    let cf = db
        .cf_handle(keys::CF_SM)
        .ok_or_else(|| corrupt("missing column family sm".to_string()))?;
    let found = db
        .get_cf(&cf, keys::DATA_VERSION)
        .map_err(|e| corrupt(e.to_string()))?;
    let version = match found {
        None => {
            db.put_cf(cf, keys::DATA_VERSION, DATA_VERSION.to_be_bytes())
                .map_err(|e| corrupt(e.to_string()))?;
            DATA_VERSION
        }
        Some(bytes) => {
            let raw: [u8; 4] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| corrupt("data version is not 4 bytes".to_string()))?;
            u32::from_be_bytes(raw)
        }
    };
    if version > DATA_VERSION {
        return Err(OpenError::TooNew {
            path: path.to_string(),
            found: version,
        });
    }
    if version < 2 {
        return Err(corrupt(format!(
            "layout {version} was written by a pre-release build; this build reads layouts 2 to {DATA_VERSION}: remove this data dir and rejoin the node (or restore the cluster's catalog)"
        )));
    }
    if version == 2 {
        two_to_three(db).map_err(corrupt)?;
    }
    if version <= 3 {
        three_to_four(db).map_err(corrupt)?;
    }
    Ok(())
}

/// A tenant record as layout 2 wrote it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TenantRecordV2 {
    tenant_id: TenantId,
    name: String,
    source: String,
    comment: String,
    status: TenantStatus,
    incarnation: u64,
    create_time_ms: u64,
    begin_backup_hook: Option<String>,
    end_backup_hook: Option<String>,
}

impl From<TenantRecordV2> for TenantRecord {
    fn from(t: TenantRecordV2) -> TenantRecord {
        TenantRecord {
            tenant_id: t.tenant_id,
            name: t.name,
            source: t.source,
            comment: t.comment,
            status: t.status,
            incarnation: t.incarnation,
            create_time_ms: t.create_time_ms,
            begin_backup_hook: t.begin_backup_hook,
            end_backup_hook: t.end_backup_hook,
            identity: None,
        }
    }
}

/// A user record as layouts 2 and 3 wrote it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserRecordV3 {
    tenant_id: TenantId,
    user: String,
    password: PasswordHash,
    create_time_ms: u64,
}

impl From<UserRecordV3> for UserRecord {
    fn from(u: UserRecordV3) -> UserRecord {
        UserRecord {
            tenant_id: u.tenant_id,
            user: u.user,
            password: u.password,
            create_time_ms: u.create_time_ms,
            backup_admin: true,
        }
    }
}

/// The catalog as a layout-2 snapshot carries it.
#[derive(Debug, Serialize, Deserialize)]
struct MetaStateV2 {
    cluster: Option<ClusterRecord>,
    next_tenant_id: u64,
    last_time_ms: u64,
    tenants: BTreeMap<TenantId, TenantRecordV2>,
    params: BTreeMap<ParamKey, ParamRecord>,
    users: BTreeMap<UserKey, UserRecordV3>,
    work: WorkState,
}

/// The catalog as a layout-3 snapshot carries it.
#[derive(Debug, Serialize, Deserialize)]
struct MetaStateV3 {
    cluster: Option<ClusterRecord>,
    next_tenant_id: u64,
    last_time_ms: u64,
    tenants: BTreeMap<TenantId, TenantRecord>,
    params: BTreeMap<ParamKey, ParamRecord>,
    users: BTreeMap<UserKey, UserRecordV3>,
    work: WorkState,
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotPayloadV2 {
    data_version: u32,
    state: MetaStateV2,
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotPayloadV3 {
    data_version: u32,
    state: MetaStateV3,
}

impl From<SnapshotPayloadV2> for SnapshotPayloadV3 {
    fn from(p: SnapshotPayloadV2) -> SnapshotPayloadV3 {
        let s = p.state;
        SnapshotPayloadV3 {
            data_version: 3,
            state: MetaStateV3 {
                cluster: s.cluster,
                next_tenant_id: s.next_tenant_id,
                last_time_ms: s.last_time_ms,
                tenants: s.tenants.into_iter().map(|(k, t)| (k, t.into())).collect(),
                params: s.params,
                users: s.users,
                work: s.work,
            },
        }
    }
}

impl From<SnapshotPayloadV3> for SnapshotPayload {
    fn from(p: SnapshotPayloadV3) -> SnapshotPayload {
        let s = p.state;
        SnapshotPayload {
            data_version: DATA_VERSION,
            state: MetaState {
                cluster: s.cluster,
                next_tenant_id: s.next_tenant_id,
                last_time_ms: s.last_time_ms,
                tenants: s.tenants,
                params: s.params,
                users: s.users.into_iter().map(|(k, u)| (k, u.into())).collect(),
                work: s.work,
            },
        }
    }
}

/// Decodes a snapshot payload of this layout or of layouts 2 and 3 (sent by a leader
/// that has not been upgraded yet).
pub(super) fn decode_snapshot(data: &[u8]) -> Result<SnapshotPayload, CodecError> {
    let current = decode::<SnapshotPayload>(data);
    if let Ok(p) = &current
        && p.data_version == DATA_VERSION
    {
        return current;
    }
    if let Ok(old) = decode::<SnapshotPayloadV3>(data)
        && old.data_version == 3
    {
        return Ok(old.into());
    }
    if let Ok(old) = decode::<SnapshotPayloadV2>(data)
        && old.data_version == 2
    {
        return Ok(SnapshotPayloadV3::from(old).into());
    }
    current
}

/// Re-encodes every record under `prefix` from `Old` to `New` into `batch`.
fn rewrite_prefix<Old, New>(
    db: &DB,
    batch: &mut WriteBatch,
    prefix: &[u8],
    what: &str,
) -> Result<(), String>
where
    Old: DeserializeOwned,
    New: From<Old> + Serialize,
{
    let sm = db
        .cf_handle(keys::CF_SM)
        .ok_or("missing column family sm")?;
    let iter = db.iterator_cf(&sm, IteratorMode::From(prefix, Direction::Forward));
    for item in iter {
        let (key, value) = item.map_err(|e| e.to_string())?;
        if !key.starts_with(prefix) {
            break;
        }
        let old: Old = decode(&value).map_err(|e| format!("{what}: {e}"))?;
        batch.put_cf(
            &sm,
            &key,
            encode(&New::from(old)).map_err(|e| e.to_string())?,
        );
    }
    Ok(())
}

/// Re-encodes the stored snapshot (if any) from `Old` to `New` into `batch`.
fn rewrite_snapshot<Old, New>(db: &DB, batch: &mut WriteBatch, what: &str) -> Result<(), String>
where
    Old: DeserializeOwned,
    New: From<Old> + Serialize,
{
    let raft = db
        .cf_handle(keys::CF_RAFT)
        .ok_or("missing column family raft")?;
    if let Some(bytes) = db
        .get_cf(&raft, keys::SNAPSHOT)
        .map_err(|e| e.to_string())?
    {
        let mut snap: StoredSnapshot =
            decode(&bytes).map_err(|e| format!("stored snapshot: {e}"))?;
        let old: Old = decode(&snap.data).map_err(|e| format!("{what}: {e}"))?;
        snap.data = encode(&New::from(old)).map_err(|e| e.to_string())?;
        batch.put_cf(
            &raft,
            keys::SNAPSHOT,
            encode(&snap).map_err(|e| e.to_string())?,
        );
    }
    Ok(())
}

fn finish(db: &DB, mut batch: WriteBatch, version: u32) -> Result<(), String> {
    let sm = db
        .cf_handle(keys::CF_SM)
        .ok_or("missing column family sm")?;
    batch.put_cf(&sm, keys::DATA_VERSION, version.to_be_bytes());
    db.write(batch).map_err(|e| e.to_string())
}

fn two_to_three(db: &DB) -> Result<(), String> {
    let mut batch = WriteBatch::default();
    rewrite_prefix::<TenantRecordV2, TenantRecord>(
        db,
        &mut batch,
        keys::TENANT_PREFIX,
        "layout-2 tenant record",
    )?;
    rewrite_snapshot::<SnapshotPayloadV2, SnapshotPayloadV3>(
        db,
        &mut batch,
        "layout-2 snapshot payload",
    )?;
    finish(db, batch, 3)
}

fn three_to_four(db: &DB) -> Result<(), String> {
    let mut batch = WriteBatch::default();
    rewrite_prefix::<UserRecordV3, UserRecord>(
        db,
        &mut batch,
        keys::USER_PREFIX,
        "layout-3 user record",
    )?;
    rewrite_snapshot::<SnapshotPayloadV3, SnapshotPayload>(
        db,
        &mut batch,
        "layout-3 snapshot payload",
    )?;
    finish(db, batch, 4)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::types::SnapshotMeta;
    use rocksdb::{ColumnFamilyDescriptor, Options};

    fn v2_tenant(id: u64, name: &str) -> TenantRecordV2 {
        TenantRecordV2 {
            tenant_id: TenantId(id),
            name: name.into(),
            source: "dir:///src".into(),
            comment: String::new(),
            status: TenantStatus::Normal,
            incarnation: 1,
            create_time_ms: 5,
            begin_backup_hook: Some("true".into()),
            end_backup_hook: None,
        }
    }

    #[tokio::test]
    async fn a_layout_2_directory_opens_with_its_tenants_users_and_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut opts = Options::default();
            opts.create_if_missing(true);
            opts.create_missing_column_families(true);
            let cfs = keys::ALL_CFS
                .iter()
                .map(|n| ColumnFamilyDescriptor::new(*n, Options::default()));
            let db = DB::open_cf_descriptors(&opts, dir.path(), cfs).unwrap();
            let sm = db.cf_handle(keys::CF_SM).unwrap();
            db.put_cf(&sm, keys::DATA_VERSION, 2u32.to_be_bytes())
                .unwrap();
            let t = v2_tenant(1001, "t1");
            db.put_cf(&sm, keys::tenant_key(t.tenant_id), encode(&t).unwrap())
                .unwrap();
            let alice = UserRecordV3 {
                tenant_id: TenantId(1001),
                user: "alice".into(),
                password: PasswordHash::new("pw"),
                create_time_ms: 6,
            };
            db.put_cf(
                &sm,
                keys::user_key(TenantId(1001), "alice"),
                encode(&alice).unwrap(),
            )
            .unwrap();
            let state = MetaStateV2 {
                cluster: None,
                next_tenant_id: 1002,
                last_time_ms: 9,
                tenants: [(TenantId(1001), t)].into_iter().collect(),
                params: BTreeMap::new(),
                users: [((TenantId(1001), "alice".to_string()), alice)]
                    .into_iter()
                    .collect(),
                work: WorkState::default(),
            };
            let payload = SnapshotPayloadV2 {
                data_version: 2,
                state,
            };
            let snap = StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: None,
                    last_membership: Default::default(),
                    snapshot_id: "s".into(),
                },
                data: encode(&payload).unwrap(),
            };
            let raft = db.cf_handle(keys::CF_RAFT).unwrap();
            db.put_cf(&raft, keys::SNAPSHOT, encode(&snap).unwrap())
                .unwrap();
        }
        let (_log, sm) = crate::store::open(dir.path()).await.unwrap();
        let applied = sm.applied();
        let applied = applied.read().await;
        let t = &applied.state.tenants[&TenantId(1001)];
        assert_eq!(
            (t.name.as_str(), t.begin_backup_hook.as_deref(), t.identity),
            ("t1", Some("true"), None)
        );
        // Users that existed keep what they could do.
        let alice = &applied.state.users[&(TenantId(1001), "alice".to_string())];
        assert!(alice.backup_admin && alice.password.verify("pw"));
        drop(applied);
        drop(sm);
        drop(_log);
        // The stored snapshot was rewritten too, and a second open has nothing to do.
        let db = DB::open_cf(&Options::default(), dir.path(), keys::ALL_CFS).unwrap();
        let raft = db.cf_handle(keys::CF_RAFT).unwrap();
        let snap: StoredSnapshot =
            decode(&db.get_cf(&raft, keys::SNAPSHOT).unwrap().unwrap()).unwrap();
        let payload = decode_snapshot(&snap.data).unwrap();
        assert_eq!(payload.data_version, DATA_VERSION);
        assert_eq!(payload.state.tenants[&TenantId(1001)].name, "t1");
        assert!(payload.state.users[&(TenantId(1001), "alice".to_string())].backup_admin);
        upgrade(&db, "d").unwrap();
    }
}
