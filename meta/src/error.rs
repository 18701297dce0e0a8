//! The metadata service's error type and its one mapping to gRPC status.

use backstop_common::Code;
use backstop_proto::{ERROR_CODE_KEY, ERROR_ERRNO_KEY};
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataValue;

/// An error from the metadata service. Every variant has a stable [`Code`]; its
/// `Display` starts with the code's OceanBase name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{}: {message}", code.name())]
pub struct MetaError {
    /// Stable code.
    pub code: Code,
    /// What went wrong, for people.
    pub message: String,
}

impl MetaError {
    /// Builds an error.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// `OB_INVALID_ARGUMENT`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    /// `OB_NOT_MASTER`: no leader reachable (retryable).
    pub fn no_leader(message: impl Into<String>) -> Self {
        Self::new(Code::NotMaster, message)
    }

    /// `OB_RPC_SEND_ERROR` (retryable).
    pub fn rpc(message: impl Into<String>) -> Self {
        Self::new(Code::RpcFailed, message)
    }

    /// `OB_IO_ERROR`.
    pub fn storage(message: impl Into<String>) -> Self {
        Self::new(Code::StorageError, message)
    }

    /// `OB_ERR_UNEXPECTED`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Code::Internal, message)
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        self.code.is_retryable()
    }

    /// The gRPC status for this error, carrying the code in metadata.
    pub fn to_status(&self) -> tonic::Status {
        let grpc = match self.code {
            Code::InvalidArgument | Code::InvalidBackupDest => tonic::Code::InvalidArgument,
            Code::NotSupported => tonic::Code::Unimplemented,
            Code::EntryExist => tonic::Code::AlreadyExists,
            Code::EntryNotExist => tonic::Code::NotFound,
            Code::BackupInProgress
            | Code::BackupCanNotStart
            | Code::BackupDestNotSet
            | Code::TaskStale
            | Code::BackupBackupCanNotStart
            | Code::BackupBackupReachCopyLimit
            | Code::BackupBackupReachMaxBackupTimes
            | Code::InvalidBackupSetId => tonic::Code::FailedPrecondition,
            Code::Eagain => tonic::Code::ResourceExhausted,
            Code::Canceled => tonic::Code::Cancelled,
            Code::NoPrivilege => tonic::Code::PermissionDenied,
            Code::AccessDenied => tonic::Code::Unauthenticated,
            Code::NotMaster | Code::RpcFailed => tonic::Code::Unavailable,
            Code::Timeout => tonic::Code::DeadlineExceeded,
            Code::StorageError | Code::Internal => tonic::Code::Internal,
        };
        let mut status = tonic::Status::new(grpc, self.to_string());
        status
            .metadata_mut()
            .insert(ERROR_CODE_KEY, MetadataValue::from_static(self.code.name()));
        status.metadata_mut().insert(
            ERROR_ERRNO_KEY,
            MetadataValue::from(u32::from(self.code.mysql_errno())),
        );
        status
    }

    /// Reads a status produced by [`MetaError::to_status`]; statuses without a code
    /// (transport failures) become `OB_RPC_SEND_ERROR`.
    pub fn from_status(status: &tonic::Status) -> Self {
        let code = status
            .metadata()
            .get(ERROR_CODE_KEY)
            .and_then(|v| v.to_str().ok())
            .and_then(Code::from_name);
        match code {
            Some(code) => {
                let prefix = format!("{}: ", code.name());
                let message = status.message();
                Self::new(code, message.strip_prefix(&prefix).unwrap_or(message))
            }
            None if status.code() == tonic::Code::DeadlineExceeded => {
                Self::new(Code::Timeout, status.message())
            }
            None => Self::rpc(format!("{:?}: {}", status.code(), status.message())),
        }
    }
}

impl From<MetaError> for tonic::Status {
    fn from(e: MetaError) -> Self {
        e.to_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trip_keeps_the_code() {
        let e = MetaError::new(Code::EntryExist, "tenant 't1' already exists");
        let back = MetaError::from_status(&e.to_status());
        assert_eq!(back, e);
        assert_eq!(e.to_string(), "OB_ENTRY_EXIST: tenant 't1' already exists");
        let plain = MetaError::from_status(&tonic::Status::unavailable("connection refused"));
        assert_eq!(plain.code, Code::RpcFailed);
        assert!(plain.is_retryable());
    }
}
