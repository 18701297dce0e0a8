//! `CDB_OB_BACKUP_SET_EXPIRED` and `CDB_OB_BACKUP_SET_OBSOLETE`: the shape of
//! `CDB_OB_BACKUP_SET_DETAILS`. OceanBase defines the first `WHERE INCARNATION = 0`,
//! which never holds, so it is always empty; the second lists sets past the
//! `recovery_window`, which Backstop applies only with `DELETE OBSOLETE BACKUP` (not
//! built yet), so it is empty too. Both exist so tools that read them work.

use super::set_details;
use super::{Cell, Snapshot, View};

/// `CDB_OB_BACKUP_SET_EXPIRED` columns: `SET_DETAILS`' up to `TIME_TAKEN_DISPLAY`
/// (no `STATUS`, no extra columns).
pub const EXPIRED_COLUMNS: &[&str] = set_details::COLUMNS.split_at(19).0;

/// `CDB_OB_BACKUP_SET_EXPIRED`.
pub struct SetExpired;

impl View for SetExpired {
    fn name(&self) -> &'static str {
        "CDB_OB_BACKUP_SET_EXPIRED"
    }

    fn columns(&self) -> &'static [&'static str] {
        EXPIRED_COLUMNS
    }

    fn rows(&self, _s: &Snapshot) -> Vec<Vec<Cell>> {
        Vec::new()
    }
}

/// `CDB_OB_BACKUP_SET_OBSOLETE`.
pub struct SetObsolete;

impl View for SetObsolete {
    fn name(&self) -> &'static str {
        "CDB_OB_BACKUP_SET_OBSOLETE"
    }

    fn columns(&self) -> &'static [&'static str] {
        set_details::COLUMNS
    }

    fn rows(&self, _s: &Snapshot) -> Vec<Vec<Cell>> {
        Vec::new()
    }
}
