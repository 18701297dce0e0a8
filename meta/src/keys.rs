//! The metadata service's on-disk key layout: every RocksDB key is built here.
//!
//! One RocksDB database per meta node, three column families:
//!
//! | CF     | key                                   | value                                   |
//! |--------|---------------------------------------|-----------------------------------------|
//! | `log`  | log index, u64 big-endian (8 bytes)   | `Entry<TypeConfig>`                     |
//! | `raft` | `vote`                                | `Vote`                                  |
//! | `raft` | `committed`                           | `Option<LogId>`                         |
//! | `raft` | `last_purged`                         | `LogId`                                 |
//! | `raft` | `snapshot`                            | `StoredSnapshot` (meta + data)          |
//! | `sm`   | `m/data_version`                      | u32 big-endian, not encoded (see below) |
//! | `sm`   | `m/last_applied`                      | `Option<LogId>`                         |
//! | `sm`   | `m/last_membership`                   | `StoredMembership`                      |
//! | `sm`   | `c/cluster`                           | `ClusterMeta` (identity and counters)   |
//! | `sm`   | `t/` + tenant_id u64 BE               | `TenantRecord`                          |
//! | `sm`   | `p/` + tenant_id u64 BE + param name  | `ParamRecord` (tenant 0 = cluster)      |
//! | `sm`   | `u/` + tenant_id u64 BE + user name   | `UserRecord`                            |
//! | `sm`   | `w/` + worker_id                      | `WorkerRecord`                          |
//! | `sm`   | `j/` + job_id                         | `JobRecord`                             |
//! | `sm`   | `k/` + task_id                        | `TaskRecord`                            |
//! | `sm`   | `r/` + tenant_id + round_id           | `RoundRecord`                           |
//! | `sm`   | `q/` + tenant + round + piece + copy  | `PieceRecord`                           |
//! | `sm`   | `s/` + tenant + set + copy            | `BackupSetRecord`                       |
//! | `sm`   | `a/` + tenant + copy                  | `ArchiveCopyRecord`                     |
//! | `sm`   | `l/` + leftover id                    | `LeftoverRecord`                        |
//! | `sm`   | `y/` + tenant (1 = cluster)           | `PolicyRecord`                          |
//!
//! Numbers in keys are u64 big-endian, so keys sort numerically.
//!
//! Values are encoded by `codec`: a one-byte encoding version then bincode (serde,
//! standard config). `m/data_version` is the version of this whole layout; a node
//! refuses to open data written by a newer layout and upgrades older ones step by
//! step (`store::upgrade`).
//!
//! Applying a log entry writes its touched records, `m/last_applied` and (for
//! membership entries) `m/last_membership` in one `WriteBatch`.

use backstop_common::TenantId;
use backstop_common::params::Param;

/// Column family of Raft log entries.
pub const CF_LOG: &str = "log";
/// Column family of Raft's own state: vote, committed, purged, current snapshot.
pub const CF_RAFT: &str = "raft";
/// Column family of the state machine.
pub const CF_SM: &str = "sm";
/// All column families.
pub const ALL_CFS: [&str; 3] = [CF_LOG, CF_RAFT, CF_SM];

/// `raft` CF: the persisted vote.
pub const VOTE: &[u8] = b"vote";
/// `raft` CF: the last known committed log id.
pub const COMMITTED: &[u8] = b"committed";
/// `raft` CF: the last purged log id.
pub const LAST_PURGED: &[u8] = b"last_purged";
/// `raft` CF: the most recent snapshot built or installed.
pub const SNAPSHOT: &[u8] = b"snapshot";

/// `sm` CF: layout version.
pub const DATA_VERSION: &[u8] = b"m/data_version";
/// `sm` CF: last applied log id.
pub const LAST_APPLIED: &[u8] = b"m/last_applied";
/// `sm` CF: last applied membership.
pub const LAST_MEMBERSHIP: &[u8] = b"m/last_membership";
/// `sm` CF: cluster identity and counters.
pub const CLUSTER: &[u8] = b"c/cluster";
/// `sm` CF: prefix of tenant records.
pub const TENANT_PREFIX: &[u8] = b"t/";
/// `sm` CF: prefix of parameter records.
pub const PARAM_PREFIX: &[u8] = b"p/";
/// `sm` CF: prefix of user records.
pub const USER_PREFIX: &[u8] = b"u/";

/// `sm` CF: prefix of worker records.
pub const WORKER_PREFIX: &[u8] = b"w/";
/// `sm` CF: prefix of job records.
pub const JOB_PREFIX: &[u8] = b"j/";
/// `sm` CF: prefix of task records.
pub const TASK_PREFIX: &[u8] = b"k/";
/// `sm` CF: prefix of archive round records.
pub const ROUND_PREFIX: &[u8] = b"r/";
/// `sm` CF: prefix of piece records.
pub const PIECE_PREFIX: &[u8] = b"q/";
/// `sm` CF: prefix of backup set records.
pub const SET_PREFIX: &[u8] = b"s/";
/// `sm` CF: prefix of continuous archive copy records.
pub const ARCHIVE_COPY_PREFIX: &[u8] = b"a/";
/// `sm` CF: prefix of leftover records (what the cleaner must still delete).
pub const LEFTOVER_PREFIX: &[u8] = b"l/";
/// `sm` CF: prefix of backup policy records.
pub const POLICY_PREFIX: &[u8] = b"y/";

/// A key of `prefix` followed by big-endian numbers.
pub fn numbered(prefix: &[u8], parts: &[u64]) -> Vec<u8> {
    let mut key = prefix.to_vec();
    for p in parts {
        key.extend_from_slice(&p.to_be_bytes());
    }
    key
}

/// Key of log entry `index` in the `log` CF.
pub fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Index of a `log` CF key; `None` if the key is not 8 bytes.
pub fn log_index(key: &[u8]) -> Option<u64> {
    key.try_into().ok().map(u64::from_be_bytes)
}

/// Key of a tenant record.
pub fn tenant_key(id: TenantId) -> Vec<u8> {
    [TENANT_PREFIX, &id.0.to_be_bytes()].concat()
}

/// Key of a parameter record; `tenant` 0 is cluster level.
pub fn param_key(tenant: u64, param: Param) -> Vec<u8> {
    [PARAM_PREFIX, &tenant.to_be_bytes(), param.name().as_bytes()].concat()
}

/// Key of a user record.
pub fn user_key(tenant: TenantId, user: &str) -> Vec<u8> {
    [USER_PREFIX, &tenant.0.to_be_bytes(), user.as_bytes()].concat()
}
