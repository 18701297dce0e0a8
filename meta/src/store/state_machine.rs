//! The state machine in RocksDB (`sm` column family) with an in-memory copy of the
//! catalog for reads. Each `apply` call writes every touched record, the applied log
//! id and the membership in one `WriteBatch`; snapshots carry the whole catalog.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use super::{DATA_VERSION, SnapshotPayload, StoredSnapshot, cf, read_err, write_err};
use crate::codec::{decode, encode};
use crate::command::{Reply, Response};
use crate::keys;
use crate::state::{ClusterRecord, MetaState, Touched};
use crate::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

/// The catalog plus what Raft needs to know about it.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// The catalog.
    pub state: MetaState,
    /// Last applied log id.
    pub last_applied: Option<LogId>,
    /// Last applied membership.
    pub membership: StoredMembership,
}

/// Identity and counters, stored under `c/cluster`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClusterMeta {
    cluster: Option<ClusterRecord>,
    next_tenant_id: u64,
    last_time_ms: u64,
    next_job_id: u64,
    next_task_id: u64,
    next_leftover_id: u64,
}

/// State machine storage. Cloning shares the database and the in-memory catalog.
#[derive(Clone)]
pub struct StateMachineStore {
    db: Arc<DB>,
    applied: Arc<RwLock<Applied>>,
}

impl StateMachineStore {
    /// Loads the catalog from the `sm` column family.
    pub(crate) async fn load(db: Arc<DB>) -> Result<Self, StorageError> {
        let applied = load_applied(&db)?;
        Ok(Self {
            db,
            applied: Arc::new(RwLock::new(applied)),
        })
    }

    /// The shared catalog, for reads. Hold the lock briefly.
    pub fn applied(&self) -> Arc<RwLock<Applied>> {
        self.applied.clone()
    }

    fn write_snapshot(&self, snap: &StoredSnapshot) -> Result<(), StorageError> {
        let raft_cf = cf(&self.db, keys::CF_RAFT)?;
        self.db
            .put_cf(raft_cf, keys::SNAPSHOT, encode(snap).map_err(write_err)?)
            .map_err(write_err)
    }
}

fn load_applied(db: &DB) -> Result<Applied, StorageError> {
    let sm = cf(db, keys::CF_SM)?;
    let get = |key: &[u8]| db.get_cf(sm, key).map_err(read_err);
    let mut state = MetaState::default();
    if let Some(bytes) = get(keys::CLUSTER)? {
        let meta: ClusterMeta = decode(&bytes).map_err(read_err)?;
        state.cluster = meta.cluster;
        state.next_tenant_id = meta.next_tenant_id;
        state.last_time_ms = meta.last_time_ms;
        state.work.next_job_id = meta.next_job_id;
        state.work.next_task_id = meta.next_task_id;
        state.work.next_leftover_id = meta.next_leftover_id;
    }
    for (key, value) in scan(db, sm, keys::TENANT_PREFIX)? {
        let _ = key;
        let t: crate::state::TenantRecord = decode(&value).map_err(read_err)?;
        state.tenants.insert(t.tenant_id, t);
    }
    for (_, value) in scan(db, sm, keys::PARAM_PREFIX)? {
        let p: crate::state::ParamRecord = decode(&value).map_err(read_err)?;
        state
            .params
            .insert((p.tenant_id.map_or(0, |t| t.0), p.param), p);
    }
    for (_, value) in scan(db, sm, keys::USER_PREFIX)? {
        let u: crate::state::UserRecord = decode(&value).map_err(read_err)?;
        state.users.insert((u.tenant_id, u.user.clone()), u);
    }
    for (_, value) in scan(db, sm, keys::WORKER_PREFIX)? {
        let w: crate::state::WorkerRecord = decode(&value).map_err(read_err)?;
        state.work.workers.insert(w.worker_id, w);
    }
    for (_, value) in scan(db, sm, keys::JOB_PREFIX)? {
        let j: crate::state::JobRecord = decode(&value).map_err(read_err)?;
        state.work.jobs.insert(j.job_id, j);
    }
    for (_, value) in scan(db, sm, keys::TASK_PREFIX)? {
        let t: crate::state::TaskRecord = decode(&value).map_err(read_err)?;
        state.work.tasks.insert(t.task_id, t);
    }
    for (_, value) in scan(db, sm, keys::ROUND_PREFIX)? {
        let r: crate::state::RoundRecord = decode(&value).map_err(read_err)?;
        state.work.rounds.insert((r.tenant_id, r.round_id), r);
    }
    for (_, value) in scan(db, sm, keys::PIECE_PREFIX)? {
        let p: crate::state::PieceRecord = decode(&value).map_err(read_err)?;
        state
            .work
            .pieces
            .insert((p.tenant_id, p.round_id, p.piece_id, p.copy_id), p);
    }
    for (_, value) in scan(db, sm, keys::SET_PREFIX)? {
        let s: crate::state::BackupSetRecord = decode(&value).map_err(read_err)?;
        state
            .work
            .sets
            .insert((s.tenant_id, s.backup_set_id, s.copy_id), s);
    }
    for (_, value) in scan(db, sm, keys::ARCHIVE_COPY_PREFIX)? {
        let c: crate::state::ArchiveCopyRecord = decode(&value).map_err(read_err)?;
        state
            .work
            .archive_copies
            .insert((c.tenant_id, c.copy_id), c);
    }
    for (_, value) in scan(db, sm, keys::LEFTOVER_PREFIX)? {
        let l: crate::state::LeftoverRecord = decode(&value).map_err(read_err)?;
        state.work.leftovers.insert(l.id, l);
    }
    for (_, value) in scan(db, sm, keys::POLICY_PREFIX)? {
        let p: crate::state::PolicyRecord = decode(&value).map_err(read_err)?;
        state.work.policies.insert(p.tenant_id, p);
    }
    let last_applied = match get(keys::LAST_APPLIED)? {
        Some(bytes) => decode(&bytes).map_err(read_err)?,
        None => None,
    };
    let membership = match get(keys::LAST_MEMBERSHIP)? {
        Some(bytes) => decode(&bytes).map_err(read_err)?,
        None => StoredMembership::default(),
    };
    Ok(Applied {
        state,
        last_applied,
        membership,
    })
}

type Kv = (Box<[u8]>, Box<[u8]>);

fn scan(db: &DB, cf: &rocksdb::ColumnFamily, prefix: &[u8]) -> Result<Vec<Kv>, StorageError> {
    let mut out = Vec::new();
    for item in db.iterator_cf(cf, IteratorMode::From(prefix, Direction::Forward)) {
        let (key, value) = item.map_err(read_err)?;
        if !key.starts_with(prefix) {
            break;
        }
        out.push((key, value));
    }
    Ok(out)
}

/// Adds the current value (or a delete) of each touched record to `batch`.
fn put_touched(
    batch: &mut WriteBatch,
    cf: &rocksdb::ColumnFamily,
    state: &MetaState,
    touched: &[Touched],
) -> Result<(), StorageError> {
    for t in touched {
        match t {
            Touched::Cluster => {
                let meta = ClusterMeta {
                    cluster: state.cluster.clone(),
                    next_tenant_id: state.next_tenant_id,
                    last_time_ms: state.last_time_ms,
                    next_job_id: state.work.next_job_id,
                    next_task_id: state.work.next_task_id,
                    next_leftover_id: state.work.next_leftover_id,
                };
                batch.put_cf(cf, keys::CLUSTER, encode(&meta).map_err(write_err)?);
            }
            Touched::Tenant(id) => {
                let key = keys::tenant_key(*id);
                match state.tenants.get(id) {
                    Some(v) => batch.put_cf(cf, key, encode(v).map_err(write_err)?),
                    None => batch.delete_cf(cf, key),
                }
            }
            Touched::Param(k) => {
                let key = keys::param_key(k.0, k.1);
                match state.params.get(k) {
                    Some(v) => batch.put_cf(cf, key, encode(v).map_err(write_err)?),
                    None => batch.delete_cf(cf, key),
                }
            }
            Touched::User(k) => {
                put_opt(batch, cf, keys::user_key(k.0, &k.1), state.users.get(k))?;
            }
            Touched::Worker(id) => {
                let key = keys::numbered(keys::WORKER_PREFIX, &[id.0]);
                put_opt(batch, cf, key, state.work.workers.get(id))?;
            }
            Touched::Job(id) => {
                let key = keys::numbered(keys::JOB_PREFIX, &[id.0]);
                put_opt(batch, cf, key, state.work.jobs.get(id))?;
            }
            Touched::Task(id) => {
                let key = keys::numbered(keys::TASK_PREFIX, &[id.0]);
                put_opt(batch, cf, key, state.work.tasks.get(id))?;
            }
            Touched::Round(t, r) => {
                let key = keys::numbered(keys::ROUND_PREFIX, &[t.0, r.0]);
                put_opt(batch, cf, key, state.work.rounds.get(&(*t, *r)))?;
            }
            Touched::Piece(t, r, p, c) => {
                let key = keys::numbered(keys::PIECE_PREFIX, &[t.0, r.0, p.0, c.0]);
                put_opt(batch, cf, key, state.work.pieces.get(&(*t, *r, *p, *c)))?;
            }
            Touched::Set(t, s, c) => {
                let key = keys::numbered(keys::SET_PREFIX, &[t.0, s.0, c.0]);
                put_opt(batch, cf, key, state.work.sets.get(&(*t, *s, *c)))?;
            }
            Touched::ArchiveCopy(t, c) => {
                let key = keys::numbered(keys::ARCHIVE_COPY_PREFIX, &[t.0, c.0]);
                put_opt(batch, cf, key, state.work.archive_copies.get(&(*t, *c)))?;
            }
            Touched::Leftover(id) => {
                let key = keys::numbered(keys::LEFTOVER_PREFIX, &[*id]);
                put_opt(batch, cf, key, state.work.leftovers.get(id))?;
            }
            Touched::Policy(t) => {
                let key = keys::numbered(keys::POLICY_PREFIX, &[t.0]);
                put_opt(batch, cf, key, state.work.policies.get(t))?;
            }
        }
    }
    Ok(())
}

fn put_opt<V: Serialize>(
    batch: &mut WriteBatch,
    cf: &rocksdb::ColumnFamily,
    key: Vec<u8>,
    value: Option<&V>,
) -> Result<(), StorageError> {
    match value {
        Some(v) => batch.put_cf(cf, key, encode(v).map_err(write_err)?),
        None => batch.delete_cf(cf, key),
    }
    Ok(())
}

/// Every record of `state`, for a full rewrite after installing a snapshot.
fn all_records(state: &MetaState) -> Vec<Touched> {
    let mut all = vec![Touched::Cluster];
    all.extend(state.tenants.keys().map(|k| Touched::Tenant(*k)));
    all.extend(state.params.keys().map(|k| Touched::Param(*k)));
    all.extend(state.users.keys().map(|k| Touched::User(k.clone())));
    let w = &state.work;
    all.extend(w.workers.keys().map(|k| Touched::Worker(*k)));
    all.extend(w.jobs.keys().map(|k| Touched::Job(*k)));
    all.extend(w.tasks.keys().map(|k| Touched::Task(*k)));
    all.extend(w.rounds.keys().map(|(t, r)| Touched::Round(*t, *r)));
    all.extend(
        w.pieces
            .keys()
            .map(|(t, r, p, c)| Touched::Piece(*t, *r, *p, *c)),
    );
    all.extend(w.sets.keys().map(|(t, s, c)| Touched::Set(*t, *s, *c)));
    all.extend(
        w.archive_copies
            .keys()
            .map(|(t, c)| Touched::ArchiveCopy(*t, *c)),
    );
    all.extend(w.leftovers.keys().map(|k| Touched::Leftover(*k)));
    all.extend(w.policies.keys().map(|k| Touched::Policy(*k)));
    all
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let (payload, last_applied, membership) = {
            let applied = self.applied.read().await;
            let payload = SnapshotPayload {
                data_version: DATA_VERSION,
                state: applied.state.clone(),
            };
            (payload, applied.last_applied, applied.membership.clone())
        };
        let data = encode(&payload).map_err(write_err)?;
        let snapshot_id = match last_applied {
            Some(id) => format!(
                "{}-{}-{}",
                id.leader_id.term, id.index, payload.state.last_time_ms
            ),
            None => "empty".to_string(),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        self.write_snapshot(&stored)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = self.applied.read().await;
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let sm = cf(&self.db, keys::CF_SM)?;
        let mut batch = WriteBatch::default();
        let mut responses = Vec::new();
        let mut applied = self.applied.write().await;
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => Response::Ok(Reply::Done),
                EntryPayload::Normal(ref req) => {
                    let (response, touched) = applied.state.apply(req);
                    put_touched(&mut batch, sm, &applied.state, &touched)?;
                    response
                }
                EntryPayload::Membership(ref m) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    batch.put_cf(
                        sm,
                        keys::LAST_MEMBERSHIP,
                        encode(&applied.membership).map_err(write_err)?,
                    );
                    Response::Ok(Reply::Done)
                }
            };
            responses.push(response);
        }
        batch.put_cf(
            sm,
            keys::LAST_APPLIED,
            encode(&applied.last_applied).map_err(write_err)?,
        );
        self.db.write(batch).map_err(write_err)?;
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let payload = super::upgrade::decode_snapshot(&data).map_err(read_err)?;
        if payload.data_version > DATA_VERSION {
            return Err(read_err(std::io::Error::other(format!(
                "snapshot has layout version {}, newer than this build's {DATA_VERSION}",
                payload.data_version
            ))));
        }
        let sm = cf(&self.db, keys::CF_SM)?;
        let mut batch = WriteBatch::default();
        // Clear every record, keep nothing from before; then write the snapshot's.
        batch.delete_range_cf(sm, [0u8].as_slice(), [0xffu8; 16].as_slice());
        batch.put_cf(sm, keys::DATA_VERSION, DATA_VERSION.to_be_bytes());
        put_touched(&mut batch, sm, &payload.state, &all_records(&payload.state))?;
        batch.put_cf(
            sm,
            keys::LAST_APPLIED,
            encode(&meta.last_log_id).map_err(write_err)?,
        );
        batch.put_cf(
            sm,
            keys::LAST_MEMBERSHIP,
            encode(&meta.last_membership).map_err(write_err)?,
        );
        let mut applied = self.applied.write().await;
        self.db.write(batch).map_err(write_err)?;
        *applied = Applied {
            state: payload.state,
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        drop(applied);
        self.write_snapshot(&StoredSnapshot {
            meta: meta.clone(),
            data,
        })
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let raft_cf = cf(&self.db, keys::CF_RAFT)?;
        let Some(bytes) = self.db.get_cf(raft_cf, keys::SNAPSHOT).map_err(read_err)? else {
            return Ok(None);
        };
        let stored: StoredSnapshot = decode(&bytes).map_err(read_err)?;
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        }))
    }
}
