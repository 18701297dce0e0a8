//! The worker's error type. Every variant says whether another attempt may succeed.

/// A worker-side failure.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The tenant source is unusable: missing, unreadable, a path leaving the tenant
    /// root, a file that vanished mid-copy.
    #[error("source: {0}")]
    Source(String),
    /// The source's layout cannot work (log segments not named by their start SCN,
    /// or not contiguous). Permanent: the archive round goes INTERRUPTED after
    /// bounded attempts.
    #[error("source layout: {0}")]
    SourceLayout(String),
    /// The source lost log that was not archived yet.
    #[error("log lost before it was archived: {0}")]
    LogLost(String),
    /// The source log was cut back or rewritten below what was already read: the
    /// bytes archived no longer match the tenant's log. Permanent.
    #[error("log rewritten: {0}")]
    LogRewritten(String),
    /// Object storage refused or failed (permission, network, missing object).
    #[error("storage: {0}")]
    Storage(String),
    /// A stored object does not match its recorded checksum or is malformed.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// A hook command failed or timed out.
    #[error("hook: {0}")]
    Hook(String),
    /// The metadata service refused or could not be reached.
    #[error("meta: {0}")]
    Meta(String),
    /// The metadata service says this attempt is no longer current (fencing).
    #[error("stale attempt: {0}")]
    Stale(String),
    /// The task was cancelled (lease lost, job ended).
    #[error("cancelled")]
    Cancelled,
    /// An encrypted set or piece cannot be opened: no key or password was given for
    /// it, or none given is its own. Names the set or piece.
    #[error("key: {0}")]
    Key(String),
    /// Bad input (arguments, unknown tenant, no such set).
    #[error("{0}")]
    Invalid(String),
    /// The hot backup a data backup copied under is gone on the server (PostgreSQL:
    /// the connection that ran `pg_backup_start` ended); reported as
    /// `TaskOutcome::Restart`, so the backup starts again from its prepare.
    #[error("hot backup aborted: {0}")]
    BackupAborted(String),
}

impl WorkerError {
    /// Whether a later attempt (possibly on another worker) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            WorkerError::Storage(_) | WorkerError::Meta(_) | WorkerError::Source(_)
        )
    }
}

impl From<object_store::Error> for WorkerError {
    fn from(e: object_store::Error) -> Self {
        WorkerError::Storage(e.to_string())
    }
}

/// Result with [`WorkerError`].
pub type Result<T, E = WorkerError> = std::result::Result<T, E>;
