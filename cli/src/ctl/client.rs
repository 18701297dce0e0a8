//! `ctl`'s client of the metadata service: [`backstop_client::MetaClient`] over the
//! `--meta` addresses in order (`Route::Members`), trying for up to `--timeout`, with its errors as `anyhow`
//! errors that name the service's code.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use backstop_client::{ClientError, MetaClient, Route, Security};
use backstop_meta::MetaError;
use backstop_proto::meta::meta_service_client::MetaServiceClient;
use backstop_proto::meta::{ListTenantsRequest, ListTenantsResponse};
use tonic::transport::Channel;

/// Calls one `MetaService` method with `req` through [`Client::call`].
macro_rules! rpc {
    ($client:expr, $method:ident, $req:expr) => {{
        let req = $req;
        $client
            .call(|mut m| {
                let r = $client.request(req.clone());
                async move { m.$method(r?).await }
            })
            .await?
    }};
}

pub(crate) use rpc;

/// The meta client of one `ctl` command.
pub(super) struct Client {
    inner: Arc<MetaClient>,
}

impl Client {
    /// A client over `addrs`, each call trying for up to `timeout`.
    pub(super) fn new(addrs: Vec<String>, timeout: Duration, security: Security) -> Client {
        Client {
            inner: MetaClient::secured(addrs, Route::Members, timeout, security),
        }
    }

    /// `msg` as a request carrying the login, if any.
    pub(super) fn request<T>(&self, msg: T) -> Result<tonic::Request<T>, tonic::Status> {
        self.inner
            .request(msg)
            .map_err(|e| tonic::Status::invalid_argument(e.to_string()))
    }

    /// Every tenant.
    pub(super) async fn list_tenants(&self) -> anyhow::Result<ListTenantsResponse> {
        Ok(rpc!(self, list_tenants, ListTenantsRequest {}))
    }

    /// Whether any address was given.
    pub(super) fn has_addrs(&self) -> bool {
        !self.inner.addrs().is_empty()
    }

    /// Calls the leader's `MetaService`; `f` may be called once per attempt.
    pub(super) async fn call<T, F, Fut>(&self, f: F) -> anyhow::Result<T>
    where
        F: FnMut(MetaServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.inner.meta(f).await.map_err(|e| match e {
            ClientError::Refused(status) => anyhow!(MetaError::from_status(&status)),
            ClientError::Unavailable { last, .. } => anyhow!(
                "no meta node answered within {}s (last: {last})",
                self.inner.patience.as_secs()
            ),
            other => anyhow!(other),
        })
    }
}
