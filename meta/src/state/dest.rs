//! Destinations: the tenant's `backup_dest` (with `backup_dest_option`), and the copy
//! destination of a backup-of-backup (`backup_backup_dest` or the statement's
//! `BACKUP_BACKUP_DEST = '…'`) with the `copy_id` it gets there.
//!
//! `copy_id` ranges follow OceanBase (`docs/OPERATIONS.md`,
//! backup-of-backup): `[1, 10000]` for the cluster's `backup_backup_dest`, `[10001, 20000]` for a
//! cluster-level statement's own destination, `[20001, 30000]` for a tenant's parameter
//! and `[30001, 50000]` for a tenant-level statement's destination. A destination keeps
//! its id; a new one gets the next free id of its range.
//!
//! Refused, with nothing changed: no `backup_dest` (`BackupDestNotSet`), a bad
//! `backup_dest_option` (`InvalidArgument`), no cluster identity yet (`NotMaster`), an
//! unknown tenant (`EntryNotExist`); for copies, no copy destination or the same place as
//! the `backup_dest` (`BackupBackupCanNotStart`, `InvalidBackupDest`), an unparsable one
//! (`InvalidBackupDest`), `NOT BACKED UP n TIMES` without an explicit destination
//! (`NotSupported`), and a full id range (`BackupBackupCanNotStart`).

use backstop_common::CopyId;
use backstop_common::option::{DestOption, OptionKind};
use backstop_common::params::Param;
use backstop_common::task::TenantDest;
use backstop_common::{BackupDest, Code, TenantId};

use super::catalog::CopySelection;
use super::records::JobKind;
use super::{MetaState, refuse};

/// Size of one `copy_id` level (OceanBase `ObBackupBackupCopyIdLevel`).
pub(super) const COPY_LEVEL_SIZE: u64 = 10_000;

/// Which statement chose the copy destination (OceanBase copy id levels, §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CopyLevel {
    ClusterParam,
    ClusterExplicit,
    TenantParam,
    TenantExplicit,
}

impl CopyLevel {
    pub(super) fn range(self) -> (u64, u64) {
        match self {
            CopyLevel::ClusterParam => (1, COPY_LEVEL_SIZE),
            CopyLevel::ClusterExplicit => (COPY_LEVEL_SIZE + 1, 2 * COPY_LEVEL_SIZE),
            CopyLevel::TenantParam => (2 * COPY_LEVEL_SIZE + 1, 3 * COPY_LEVEL_SIZE),
            CopyLevel::TenantExplicit => (3 * COPY_LEVEL_SIZE + 1, 5 * COPY_LEVEL_SIZE),
        }
    }
}

/// Root path of a destination URI (no secrets), for comparisons.
pub fn dest_root(uri: &str) -> String {
    BackupDest::parse(uri)
        .map(|d| d.root_path())
        .unwrap_or_default()
}

/// Whether two tenant destinations are the same place: the same tenant directory
/// under the same root path. Credentials are never compared, so a rotated access key
/// still names the same place (a guard that compared full URIs stopped matching after
/// a key rotation).
pub fn same_place(a: &TenantDest, b: &TenantDest) -> bool {
    a.tenant_id == b.tenant_id
        && a.cluster_id == b.cluster_id
        && a.incarnation == b.incarnation
        && a.cluster_name == b.cluster_name
        && dest_root(&a.uri) == dest_root(&b.uri)
}

impl MetaState {
    pub(super) fn tenant_dest(
        &self,
        tenant: TenantId,
    ) -> Result<(TenantDest, DestOption), (Code, String)> {
        let uri = self.param(Param::BackupDest, Some(tenant));
        if uri.is_empty() {
            return Err(refuse(
                Code::BackupDestNotSet,
                "backup_dest is not set (ALTER SYSTEM SET backup_dest = '…' or ctl param set backup_dest …)",
            ));
        }
        let option = DestOption::parse(
            self.param(Param::BackupDestOption, Some(tenant)),
            OptionKind::BackupDest,
        )
        .map_err(|e| refuse(Code::InvalidArgument, format!("backup_dest_option: {e}")))?;
        let cluster = self
            .cluster
            .as_ref()
            .ok_or_else(|| refuse(Code::NotMaster, "cluster identity not initialized yet"))?;
        let t = self.tenants.get(&tenant).ok_or_else(|| {
            refuse(
                Code::EntryNotExist,
                format!("tenant {tenant} does not exist"),
            )
        })?;
        Ok((
            TenantDest {
                uri: uri.to_string(),
                cluster_name: cluster.cluster_name.clone(),
                cluster_id: cluster.cluster_id,
                incarnation: t.incarnation,
                tenant_id: tenant,
                tenant_name: t.name.clone(),
            },
            option,
        ))
    }

    /// Resolves the tenants of a statement: named ones, or every user tenant.
    pub(super) fn user_tenants(&self, names: &[String]) -> Result<Vec<TenantId>, (Code, String)> {
        if names.is_empty() {
            return Ok(self
                .tenants
                .keys()
                .copied()
                .filter(|t| *t != TenantId::SYS)
                .collect());
        }
        names.iter().map(|n| self.tenant_id(n)).collect()
    }

    /// The copy destination and its level for a statement.
    pub(super) fn copy_dest(
        &self,
        sel: &CopySelection,
    ) -> Result<(String, CopyLevel), (Code, String)> {
        let tenant_level = !sel.tenants.is_empty();
        let param = self.param(Param::BackupBackupDest, None).to_string();
        let primary = self.param(Param::BackupDest, None).to_string();
        if !primary.is_empty() && !param.is_empty() && dest_root(&primary) == dest_root(&param) {
            return Err(refuse(
                Code::BackupBackupCanNotStart,
                "backup_dest and backup_backup_dest are the same place",
            ));
        }
        let (uri, explicit) = match &sel.dest {
            Some(d) if !d.is_empty() && dest_root(d) != dest_root(&param) => (d.clone(), true),
            _ => (param.clone(), false),
        };
        if uri.is_empty() {
            return Err(refuse(
                Code::BackupBackupCanNotStart,
                "backup_backup_dest is not set (ALTER SYSTEM SET backup_backup_dest = '…', or give BACKUP_BACKUP_DEST = '…')",
            ));
        }
        BackupDest::parse(&uri).map_err(|e| refuse(Code::InvalidBackupDest, e.to_string()))?;
        if let Some(n) = sel.max_backup_times
            && !explicit
        {
            return Err(refuse(
                Code::NotSupported,
                format!(
                    "not backed up {n} times to the backup_backup_dest of sys parameter is not supported (give BACKUP_BACKUP_DEST = '…')"
                ),
            ));
        }
        let root = dest_root(&uri);
        for t in self.user_tenants(&sel.tenants)? {
            let own = dest_root(self.param(Param::BackupDest, Some(t)));
            if own == root {
                return Err(refuse(
                    Code::InvalidBackupDest,
                    "the copy destination is the backup_dest itself",
                ));
            }
        }
        let level = match (tenant_level, explicit) {
            (false, false) => CopyLevel::ClusterParam,
            (false, true) => CopyLevel::ClusterExplicit,
            (true, false) => CopyLevel::TenantParam,
            (true, true) => CopyLevel::TenantExplicit,
        };
        Ok((uri, level))
    }

    /// The copy id of `root` at `level`: the one already used there, or the next free.
    pub(super) fn copy_id_for(
        &self,
        level: CopyLevel,
        root: &str,
    ) -> Result<CopyId, (Code, String)> {
        let (lo, hi) = level.range();
        let mut used: Vec<(CopyId, String)> = Vec::new();
        used.extend(
            self.work
                .sets
                .values()
                .filter(|s| s.copy_id > CopyId(0))
                .map(|s| (s.copy_id, dest_root(&s.dest.uri))),
        );
        used.extend(
            self.work
                .pieces
                .values()
                .filter(|p| p.copy_id > CopyId(0))
                .map(|p| (p.copy_id, p.backup_dest.clone())),
        );
        used.extend(
            self.work
                .archive_copies
                .values()
                .map(|c| (c.copy_id, dest_root(&c.dest.uri))),
        );
        for j in self.work.jobs.values() {
            match &j.kind {
                JobKind::SetCopy { copy_id, dest, .. }
                | JobKind::PieceCopy { copy_id, dest, .. } => {
                    used.push((*copy_id, dest_root(dest)))
                }
                _ => {}
            }
        }
        // One destination root has one copy_id, whatever the level of the statement
        // that names it: two copy ids at one root would be two sets of rows for the
        // same objects, and the clean of one would delete the other's data.
        if let Some((c, _)) = used
            .iter()
            .filter(|(c, _)| *c > CopyId(0))
            .find(|(_, r)| r == root)
        {
            return Ok(*c);
        }
        let next = used
            .iter()
            .map(|(c, _)| c.0)
            .filter(|c| (lo..=hi).contains(c))
            .map(|c| c + 1)
            .max()
            .unwrap_or(lo);
        if next > hi {
            return Err(refuse(
                Code::BackupBackupCanNotStart,
                format!("every copy_id in [{lo}, {hi}] is used"),
            ));
        }
        Ok(CopyId(next))
    }

    pub(super) fn copy_tenant_dest(&self, src: &TenantDest, uri: &str) -> TenantDest {
        TenantDest {
            uri: uri.to_string(),
            ..src.clone()
        }
    }
}

#[cfg(test)]
#[path = "dest_tests.rs"]
mod tests;
