//! A fault-injecting TCP proxy the harness places between processes (workers → meta,
//! anything → the S3-compatible server) when network namespaces are not available:
//! it forwards bytes both ways and, on command, drops new and existing connections
//! (a partition), delays every chunk, cuts one direction only, answers every HTTP
//! request with an S3 `503 SlowDown` error, or truncates answers (a read that ends
//! before its `Content-Length`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Pass,
    /// Refuse new connections and close existing ones: a partition.
    Drop,
    /// Forward client → server only; answers never arrive (one-way cut).
    OneWay,
    /// Answer each new connection's first HTTP request with `503 SlowDown` (S3's
    /// throttling error) and close it; live connections are closed.
    HttpError,
    /// Forward, but close each connection once [`TRUNCATE_AFTER`] answer bytes have
    /// passed: bodies end early.
    Truncate,
}

/// Answer bytes a connection gets in [`Mode::Truncate`] before it is cut: past the
/// headers of a small answer, into the body of anything larger.
pub const TRUNCATE_AFTER: usize = 1500;

const SLOW_DOWN: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: 126\r\nConnection: close\r\n\r\n<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>\n";

impl Mode {
    fn code(self) -> u8 {
        match self {
            Mode::Pass => 0,
            Mode::Drop => 1,
            Mode::OneWay => 2,
            Mode::HttpError => 3,
            Mode::Truncate => 4,
        }
    }

    fn of(code: u8) -> Mode {
        match code {
            1 => Mode::Drop,
            2 => Mode::OneWay,
            3 => Mode::HttpError,
            4 => Mode::Truncate,
            _ => Mode::Pass,
        }
    }
}

/// Shared control of one proxy.
#[derive(Debug, Default)]
struct Control {
    mode: AtomicU8,
    delay_ms: AtomicU64,
    /// Bumped on every change to `Drop`, so live connections notice.
    epoch: AtomicU64,
}

/// A running proxy; dropped connections and the listener end with it.
pub struct Proxy {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// Where bytes go.
    pub target: SocketAddr,
    control: Arc<Control>,
    stop: CancellationToken,
}

impl Proxy {
    /// Starts a proxy on `127.0.0.1:0` in front of `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let listen = listener.local_addr()?;
        let control = Arc::new(Control::default());
        let stop = CancellationToken::new();
        let (c, s) = (control.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = s.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((client, _)) = accepted else {
                    continue;
                };
                match Mode::of(c.mode.load(Ordering::SeqCst)) {
                    Mode::Drop => {
                        drop(client);
                        continue;
                    }
                    Mode::HttpError => {
                        tokio::spawn(slow_down(client));
                        continue;
                    }
                    _ => {}
                }
                let (c, s) = (c.clone(), s.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        pipe(client, server, c, s).await;
                    }
                });
            }
        });
        Ok(Proxy {
            listen,
            target,
            control,
            stop,
        })
    }

    /// Changes what happens to traffic; `Drop` also closes live connections.
    pub fn set(&self, mode: Mode) {
        self.control.mode.store(mode.code(), Ordering::SeqCst);
        self.control.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Delays every forwarded chunk by `d` (0 = none).
    pub fn delay(&self, d: Duration) {
        self.control
            .delay_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// Current mode.
    pub fn mode(&self) -> Mode {
        Mode::of(self.control.mode.load(Ordering::SeqCst))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn pipe(client: TcpStream, server: TcpStream, c: Arc<Control>, stop: CancellationToken) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = copy(cr, sw, c.clone(), stop.clone(), false);
    let down = copy(sr, cw, c, stop, true);
    tokio::join!(up, down);
}

/// Reads one request head (bounded), answers `503 SlowDown`, closes.
async fn slow_down(mut client: TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while head.len() < 64 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    })
    .await;
    if read == Ok(true) {
        let _ = client.write_all(SLOW_DOWN).await;
    }
    let _ = client.shutdown().await;
}

async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    c: Arc<Control>,
    stop: CancellationToken,
    answers: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut answered = 0usize;
    loop {
        let n = tokio::select! {
            _ = stop.cancelled() => return,
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
        };
        let mut n = n;
        let mut cut = false;
        match Mode::of(c.mode.load(Ordering::SeqCst)) {
            Mode::Drop | Mode::HttpError => return,
            Mode::OneWay if answers => continue,
            Mode::Truncate if answers => {
                n = n.min(TRUNCATE_AFTER.saturating_sub(answered));
                answered += n;
                cut = answered >= TRUNCATE_AFTER;
            }
            _ => {}
        }
        let delay = c.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() || cut {
            let _ = to.shutdown().await;
            return;
        }
    }
}
