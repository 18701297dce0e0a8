//! Backstop workers: tenant sources, log archive, data backup, backup-of-backup copy,
//! restore and validate on object storage.
//!
//! Not built yet: this crate is the home of the worker issue. It exists now so the
//! workspace has its final shape and dependency versions are pinned once.
