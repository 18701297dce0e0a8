//! `user@tenant` privileges: `GRANT|REVOKE BACKUP_ADMIN`.

use backstop_common::Code;

use super::{MetaState, Outcome, Touched, refuse};
use crate::command::Reply;

impl MetaState {
    /// Grants (`backup_admin`) or revokes `BACKUP_ADMIN` for `user@tenant`.
    ///
    /// Errors: `OB_ENTRY_NOT_EXIST` for an unknown tenant or user; `OB_NOT_SUPPORTED`
    /// for a revoke from a tenant's `root`, which always holds it.
    pub(super) fn set_user_privilege(
        &mut self,
        tenant: &str,
        user: &str,
        backup_admin: bool,
    ) -> Outcome {
        let tenant_id = self.tenant_id(tenant)?;
        let key = (tenant_id, user.to_string());
        let Some(record) = self.users.get_mut(&key) else {
            return Err(refuse(
                Code::EntryNotExist,
                format!("user '{user}@{tenant}' does not exist"),
            ));
        };
        if user == "root" && !backup_admin {
            return Err(refuse(
                Code::NotSupported,
                format!(
                    "revoking BACKUP_ADMIN from root@{tenant} (a tenant's root always holds it)"
                ),
            ));
        }
        record.backup_admin = backup_admin;
        Ok((Reply::User(record.clone()), vec![Touched::User(key)]))
    }
}
