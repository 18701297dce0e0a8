//! Stable error codes, shared by the metadata service (gRPC metadata
//! `x-backstop-code`), the CLI and the SQL gateway (MySQL error packets).
//!
//! Names follow OceanBase's error names; numbers are MySQL error numbers where MySQL
//! has the error and OceanBase-style numbers in the 9000 range for backup errors.
//! The table is published in `docs/ERRORS.md`; a code's name and number never change
//! once released.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One stable error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Code {
    /// An argument is malformed or out of range.
    InvalidArgument,
    /// The statement or operation is recognised but not supported (yet, or in this state).
    NotSupported,
    /// A named object (tenant, user, parameter, node) already exists.
    EntryExist,
    /// A named object (tenant, user, parameter, node) does not exist.
    EntryNotExist,
    /// A backup destination is malformed, unsafe, or already in use.
    InvalidBackupDest,
    /// A backup-related job is running that forbids this operation.
    BackupInProgress,
    /// A backup cannot start (archive not running, no base set, …).
    BackupCanNotStart,
    /// `backup_dest` is not set.
    BackupDestNotSet,
    /// A report came from a task attempt that is no longer current (fencing).
    TaskStale,
    /// Only one job of this kind may run at a time; try again when it ends.
    Eagain,
    /// A backup-of-backup (set or piece copy) cannot start.
    BackupBackupCanNotStart,
    /// Every selected backup set already has its copy at the destination.
    BackupBackupReachCopyLimit,
    /// The backup set already has the maximum number of copies asked for.
    BackupBackupReachMaxBackupTimes,
    /// A job was cancelled by `CANCEL …`.
    Canceled,
    /// The backup set id names no usable backup set.
    InvalidBackupSetId,
    /// The caller may not perform this operation.
    NoPrivilege,
    /// Authentication failed.
    AccessDenied,
    /// No leader is reachable right now; the same call may succeed later.
    NotMaster,
    /// A timeout elapsed; the same call may succeed later.
    Timeout,
    /// A network or RPC failure; the same call may succeed later.
    RpcFailed,
    /// Storage (RocksDB, disk) failed or holds data this build cannot read.
    StorageError,
    /// A bug or an invariant violation; reported, never expected.
    Internal,
}

impl Code {
    /// Every code, in table order (for docs and tests).
    pub const ALL: [Code; 22] = [
        Code::InvalidArgument,
        Code::NotSupported,
        Code::EntryExist,
        Code::EntryNotExist,
        Code::InvalidBackupDest,
        Code::BackupInProgress,
        Code::BackupCanNotStart,
        Code::BackupDestNotSet,
        Code::TaskStale,
        Code::Eagain,
        Code::BackupBackupCanNotStart,
        Code::BackupBackupReachCopyLimit,
        Code::BackupBackupReachMaxBackupTimes,
        Code::Canceled,
        Code::InvalidBackupSetId,
        Code::NoPrivilege,
        Code::AccessDenied,
        Code::NotMaster,
        Code::Timeout,
        Code::RpcFailed,
        Code::StorageError,
        Code::Internal,
    ];

    /// The OceanBase-style name, shown first in every error message.
    pub fn name(self) -> &'static str {
        match self {
            Code::InvalidArgument => "OB_INVALID_ARGUMENT",
            Code::NotSupported => "OB_NOT_SUPPORTED",
            Code::EntryExist => "OB_ENTRY_EXIST",
            Code::EntryNotExist => "OB_ENTRY_NOT_EXIST",
            Code::InvalidBackupDest => "OB_INVALID_BACKUP_DEST",
            Code::BackupInProgress => "OB_BACKUP_IN_PROGRESS",
            Code::BackupCanNotStart => "OB_BACKUP_CAN_NOT_START",
            Code::BackupDestNotSet => "OB_BACKUP_DEST_NOT_SET",
            Code::TaskStale => "OB_TASK_STALE",
            Code::Eagain => "OB_EAGAIN",
            Code::BackupBackupCanNotStart => "OB_BACKUP_BACKUP_CAN_NOT_START",
            Code::BackupBackupReachCopyLimit => "OB_BACKUP_BACKUP_REACH_COPY_LIMIT",
            Code::BackupBackupReachMaxBackupTimes => "OB_BACKUP_BACKUP_REACH_MAX_BACKUP_TIMES",
            Code::Canceled => "OB_CANCELED",
            Code::InvalidBackupSetId => "OB_INVALID_BACKUP_SET_ID",
            Code::NoPrivilege => "OB_ERR_NO_PRIVILEGE",
            Code::AccessDenied => "OB_PASSWORD_WRONG",
            Code::NotMaster => "OB_NOT_MASTER",
            Code::Timeout => "OB_TIMEOUT",
            Code::RpcFailed => "OB_RPC_SEND_ERROR",
            Code::StorageError => "OB_IO_ERROR",
            Code::Internal => "OB_ERR_UNEXPECTED",
        }
    }

    /// The MySQL error number a client sees.
    pub fn mysql_errno(self) -> u16 {
        match self {
            Code::InvalidArgument => 9001,
            Code::NotSupported => 9002,
            Code::EntryExist => 9003,
            Code::EntryNotExist => 9004,
            Code::InvalidBackupDest => 9010,
            Code::BackupInProgress => 9011,
            Code::BackupCanNotStart => 9012,
            Code::BackupDestNotSet => 9013,
            Code::TaskStale => 9014,
            Code::Eagain => 9015,
            Code::BackupBackupCanNotStart => 9016,
            Code::BackupBackupReachCopyLimit => 9017,
            Code::BackupBackupReachMaxBackupTimes => 9018,
            Code::Canceled => 9019,
            Code::InvalidBackupSetId => 9024,
            Code::NoPrivilege => 1227,
            Code::AccessDenied => 1045,
            Code::NotMaster => 9020,
            Code::Timeout => 9021,
            Code::RpcFailed => 9022,
            Code::StorageError => 9023,
            Code::Internal => 9099,
        }
    }

    /// Whether the same call may succeed if retried later, unchanged.
    pub fn is_retryable(self) -> bool {
        matches!(self, Code::NotMaster | Code::Timeout | Code::RpcFailed)
    }

    /// Parses a name produced by [`Code::name`].
    pub fn from_name(name: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_numbers_are_unique() {
        let mut numbers = std::collections::HashSet::new();
        for code in Code::ALL {
            assert_eq!(Code::from_name(code.name()), Some(code));
            assert!(
                numbers.insert(code.mysql_errno()),
                "duplicate errno for {code}"
            );
        }
    }
}
