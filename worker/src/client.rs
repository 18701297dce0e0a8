//! The worker's client of the metadata service: [`backstop_client::MetaClient`] (leader
//! discovery, redirects, retries with backoff), with its errors as [`WorkerError`]s.

pub use backstop_client::{ClientError, LeaderClock, MetaClient, channel};

use crate::error::WorkerError;

impl From<ClientError> for WorkerError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Stale(m) => WorkerError::Stale(m),
            ClientError::Refused(status) => WorkerError::Meta(status.message().to_string()),
            ClientError::Unavailable { last, .. } => {
                WorkerError::Meta(format!("no meta leader answered: {last}"))
            }
            ClientError::NoAddress => {
                WorkerError::Meta("no meta leader answered: no meta address".into())
            }
            e @ (ClientError::BadAddress { .. } | ClientError::BadLogin(_)) => {
                WorkerError::Invalid(e.to_string())
            }
        }
    }
}
