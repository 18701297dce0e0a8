//! Backstop's SQL gateway: the MySQL protocol, `ALTER SYSTEM` backup statements and
//! the `oceanbase.CDB_OB_BACKUP_*` views.
//!
//! Not built yet: this crate is the home of the SQL gateway issue. It exists now so
//! the workspace has its final shape and dependency versions are pinned once.
