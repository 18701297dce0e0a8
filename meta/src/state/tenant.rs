//! A tenant's source and identity: `ALTER TENANT … SOURCE`, and the incarnation a new
//! PostgreSQL timeline opens.

use backstop_common::Code;

use super::{MetaState, Outcome, SourceIdentity, Touched, refuse};
use crate::command::Reply;

impl MetaState {
    /// Records `source` and `identity` for tenant `name`.
    ///
    /// - A changed source needs the tenant idle: no live job (archive, backup, copy,
    ///   restore), else `OB_BACKUP_IN_PROGRESS`, so no round or set mixes two sources.
    /// - An identity whose `system_identifier` differs from the recorded one is another
    ///   database: `OB_INVALID_ARGUMENT`, nothing changes.
    /// - The recorded system on another timeline opens incarnation N+1: later rounds
    ///   and sets go to `incarnation_N+1/`, and the old history stays where it is.
    pub(super) fn set_tenant_source(
        &mut self,
        name: &str,
        source: &str,
        identity: Option<SourceIdentity>,
    ) -> Outcome {
        let id = self.tenant_id(name)?;
        if id == backstop_common::TenantId::SYS {
            return Err(refuse(Code::NotSupported, "the sys tenant has no source"));
        }
        let busy = self
            .work
            .jobs
            .values()
            .find(|j| j.tenant_id == id && j.status.is_live())
            .map(|j| (j.job_id, j.kind.clone()));
        let Some(t) = self.tenants.get_mut(&id) else {
            return Err(refuse(
                Code::EntryNotExist,
                format!("tenant '{name}' does not exist"),
            ));
        };
        if backstop_common::source::is_postgresql(&t.source)
            != backstop_common::source::is_postgresql(source)
        {
            return Err(refuse(
                Code::InvalidArgument,
                format!(
                    "tenant '{}' keeps its source kind: its sets and pieces are in that kind's format; create a tenant for the new source",
                    t.name
                ),
            ));
        }
        let (had, now) = (t.identity, identity);
        if let (Some(old), Some(new)) = (had, now)
            && old.system_identifier != new.system_identifier
        {
            return Err(refuse(
                Code::InvalidArgument,
                format!(
                    "the source is PostgreSQL system {}, but tenant '{}' protects system {}: it is another database; create a tenant for it",
                    new.system_identifier, t.name, old.system_identifier
                ),
            ));
        }
        if let (true, Some((job, kind))) = (t.source != source, &busy) {
            return Err(refuse(
                Code::BackupInProgress,
                format!(
                    "tenant '{}' has running job {job} ({kind:?}): run NOARCHIVELOG and let backups end before changing its source",
                    t.name
                ),
            ));
        }
        if let (Some(old), Some(new)) = (had, now)
            && old.timeline != new.timeline
        {
            if let Some((job, kind)) = busy {
                return Err(refuse(
                    Code::BackupInProgress,
                    format!(
                        "tenant '{}' has running job {job} ({kind:?}): stop it before opening incarnation {}",
                        t.name,
                        t.incarnation + 1
                    ),
                ));
            }
            t.incarnation += 1;
        }
        t.source = source.to_string();
        if identity.is_some() {
            t.identity = identity;
        }
        Ok((Reply::Tenant(t.clone()), vec![Touched::Tenant(id)]))
    }
}
