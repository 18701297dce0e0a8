//! The catalog's identity records: the cluster, tenants, parameters, users, and
//! the selection a copy statement names. Plain data shared by the commands
//! (`crate::command`) and the state machine (`crate::state`), so neither has to
//! import the other for them.

use backstop_common::TenantId;
use backstop_common::auth::PasswordHash;
use backstop_common::params::Param;
use serde::{Deserialize, Serialize};

/// Cluster identity (OceanBase `cluster_name`, `cluster_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    /// `cluster_name`.
    pub cluster_name: String,
    /// `cluster_id`.
    pub cluster_id: u64,
    /// When the cluster was initialized, ms since the epoch (leader clock).
    pub create_time_ms: u64,
}

/// Status of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TenantStatus {
    /// Usable.
    Normal,
}

impl TenantStatus {
    /// OceanBase-style status string.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Normal => "NORMAL",
        }
    }
}

/// A protected tenant (OceanBase `__all_tenant`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// `tenant_id`: 1 for sys, from 1001 for user tenants; never reused.
    pub tenant_id: TenantId,
    /// `tenant_name` as created.
    pub name: String,
    /// `dir:///abs/path`; empty for sys.
    pub source: String,
    /// Free text.
    pub comment: String,
    /// Status.
    pub status: TenantStatus,
    /// `incarnation`, 1 until a restore opens a new one.
    pub incarnation: u64,
    /// ms since the epoch (leader clock).
    pub create_time_ms: u64,
    /// Shell command run before datafiles are copied (user-managed hot backup).
    pub begin_backup_hook: Option<String>,
    /// Shell command run after datafiles are copied.
    pub end_backup_hook: Option<String>,
    /// For a `postgresql://` source: the cluster's identity as last checked
    /// (`CREATE TENANT` or `ALTER TENANT … SOURCE`); `None` for `dir://` and sys.
    pub identity: Option<SourceIdentity>,
}

/// Who a PostgreSQL source is: `pg_control_system().system_identifier` (fixed at
/// `initdb`, kept by every physical copy and restore) and the timeline the current
/// incarnation follows. A new timeline with the same system identifier is a new
/// incarnation (a promoted point-in-time restore: OceanBase's and Oracle's RESETLOGS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceIdentity {
    /// PostgreSQL `system_identifier`.
    pub system_identifier: u64,
    /// PostgreSQL timeline id (`TimeLineID`, 1 after `initdb`).
    pub timeline: u32,
}

/// A parameter value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamRecord {
    /// Which parameter.
    pub param: Param,
    /// `None` for cluster level.
    pub tenant_id: Option<TenantId>,
    /// Normalized value, with secrets (display through `Param::display_value`).
    pub value: String,
    /// ms since the epoch (leader clock).
    pub update_time_ms: u64,
}

/// A `user@tenant` account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// Tenant the user belongs to.
    pub tenant_id: TenantId,
    /// User name.
    pub user: String,
    /// Password hashes.
    pub password: PasswordHash,
    /// ms since the epoch (leader clock).
    pub create_time_ms: u64,
    /// MySQL's `BACKUP_ADMIN` dynamic privilege: may run backup statements. A
    /// tenant's `root` always holds it; other users get it by `GRANT` (layout 4).
    pub backup_admin: bool,
}

/// Selection of a copy statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopySelection {
    /// Tenants named by `TENANT …` (empty: cluster level, every user tenant).
    pub tenants: Vec<String>,
    /// `ALL` (None) or one id.
    pub id: Option<u64>,
    /// `ALL NOT BACKED UP n TIMES`.
    pub max_backup_times: Option<u64>,
    /// `BACKUP_BACKUP_DEST = '…'`; None: the `backup_backup_dest` parameter.
    pub dest: Option<String>,
}
