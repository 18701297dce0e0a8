//! `ctl`'s client of the metadata service: the given addresses in order, retried while
//! no leader is reachable, up to `--timeout`.

use anyhow::{anyhow, bail};
use backstop_common::Code;
use backstop_meta::MetaError;
use backstop_meta::network::channel;
use backstop_proto::ERROR_CODE_KEY;
use backstop_proto::meta::meta_service_client::MetaServiceClient;
use std::future::Future;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// Calls one `MetaService` method with `req` through [`Client::call`].
macro_rules! rpc {
    ($client:expr, $method:ident, $req:expr) => {{
        let req = $req;
        $client
            .call(|mut m| {
                let r = req.clone();
                async move { m.$method(r).await }
            })
            .await?
    }};
}

pub(crate) use rpc;

pub(super) struct Client {
    pub(super) addrs: Vec<String>,
    pub(super) timeout: Duration,
}

impl Client {
    pub(super) async fn call<T, F, Fut>(&self, mut f: F) -> anyhow::Result<T>
    where
        F: FnMut(MetaServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = Instant::now() + self.timeout;
        loop {
            let mut last = None;
            for addr in &self.addrs {
                let client = MetaServiceClient::new(channel(addr)?)
                    .max_decoding_message_size(backstop_proto::MAX_LIST_MESSAGE_BYTES);
                match f(client).await {
                    Ok(resp) => return Ok(resp.into_inner()),
                    Err(status) => {
                        let err = MetaError::from_status(&status);
                        let from_server = status.metadata().get(ERROR_CODE_KEY).is_some();
                        let retry = err.code == Code::NotMaster || !from_server;
                        if !retry {
                            return Err(anyhow!(err));
                        }
                        last = Some(format!("{addr}: {err}"));
                    }
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "no meta node answered within {}s (last: {})",
                    self.timeout.as_secs(),
                    last.unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
