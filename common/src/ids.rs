//! Id newtypes. Each wraps an integer and serializes as that integer.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl $name {
            /// The smallest id, for the low end of a range of keys.
            pub const MIN: $name = $name(0);
            /// The largest id, for the high end of a range of keys.
            pub const MAX: $name = $name(u64::MAX);

            /// The id after this one (ids are handed out in order).
            pub fn next(self) -> $name {
                $name(self.0.saturating_add(1))
            }
        }

        impl From<u64> for $name {
            fn from(v: u64) -> Self {
                Self(v)
            }
        }
    };
}

/// A meta node's Raft id, chosen by the operator (`backstop meta --node-id N`).
pub type NodeId = u64;

id_type!(
    /// A tenant's id (OceanBase `tenant_id`): 1 is `sys`, user tenants start at 1001.
    TenantId
);
id_type!(
    /// A job's id (OceanBase `job_id`), unique cluster-wide and never reused.
    JobId
);
id_type!(
    /// Which copy of a backup set or piece (OceanBase `copy_id`): 0 is the original at
    /// `backup_dest`; 1..=10000 the cluster's `backup_backup_dest`, and so on (the ranges
    /// are in `meta/src/state/dest.rs`).
    CopyId
);
id_type!(
    /// A System Change Number: a position in a tenant's log. For `dir://` sources it is
    /// the byte offset in the concatenated log stream.
    Scn
);

id_type!(
    /// A backup set's id (OceanBase `backup_set_id`), unique per cluster, never reused.
    /// It names the set's directory at every destination (`layout::set_dir`).
    BackupSetId
);
id_type!(
    /// An archive piece's id within its round (OceanBase `backup_piece_id`), from 1.
    PieceId
);
id_type!(
    /// An archivelog round's id (OceanBase `round_id`): the tenant's archive between one
    /// `START BACKUP ARCHIVELOG` and its `STOP`.
    RoundId
);
id_type!(
    /// A task's id: one unit of a job that one worker runs under a lease.
    TaskId
);
id_type!(
    /// A registered worker's id, given by the meta service at registration.
    WorkerId
);

impl TenantId {
    /// The `sys` tenant, which carries cluster-level rows.
    pub const SYS: TenantId = TenantId(1);
    /// The first id given to a user tenant.
    pub const FIRST_USER: TenantId = TenantId(1001);
}
