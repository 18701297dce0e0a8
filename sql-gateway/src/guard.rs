//! What one gateway allows a client, so that no logged-in (or not yet logged-in) user
//! can hold it: how many connections at once, how long a login and an idle
//! connection may take, how long a `SELECT` may run and how much it may return
//! ([`Limits`], MySQL's variable names where MySQL has the setting), and the timer
//! on the client's side of the socket that ends idle connections ([`IdleTimeout`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};

/// MySQL's `ER_CON_COUNT_ERROR`: the connection is over `max_connections`.
pub const ER_CON_COUNT_ERROR: u16 = 1040;
/// MySQL's `ER_QUERY_TIMEOUT`: a `SELECT` ran past `max_execution_time`.
pub const ER_QUERY_TIMEOUT: u16 = 3024;
/// MySQL's `ER_TOO_BIG_SELECT`: a result set over `max_result_bytes`.
pub const ER_TOO_BIG_SELECT: u16 = 1104;

/// What a gateway allows its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once (MySQL's `max_connections`); the next one is
    /// answered with error 1040 and closed. Default 512.
    pub max_connections: usize,
    /// From accepting a connection to its login being checked (MySQL's
    /// `connect_timeout`); a client that has not logged in by then is closed.
    /// Default 10 s.
    pub connect_timeout: Duration,
    /// How long a logged-in connection may wait without sending a command (MySQL's
    /// `wait_timeout`) before it is closed. Default 28,800 s, as MySQL's.
    pub wait_timeout: Duration,
    /// The longest a `SELECT` on the views may run (MySQL's `max_execution_time`,
    /// shown in ms): it is interrupted with error 3024. Default 10 s.
    pub max_execution_time: Duration,
    /// The largest result set a `SELECT` may return, in bytes of cell text; a bigger
    /// one fails with error 1104. Default 64 MiB.
    pub max_result_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            connect_timeout: Duration::from_secs(10),
            wait_timeout: Duration::from_secs(28_800),
            max_execution_time: Duration::from_secs(10),
            max_result_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Answers a connection over `max_connections` the way MySQL does: an error packet
/// (1040, "Too many connections") in place of the server greeting, then closes it.
/// The write is bounded, so a client that does not read cannot hold the task.
pub async fn refuse_too_many<W: AsyncWrite + Unpin>(mut w: W) {
    let message = b"Too many connections";
    let mut payload = vec![0xff];
    payload.extend_from_slice(&ER_CON_COUNT_ERROR.to_le_bytes());
    payload.extend_from_slice(message);
    let len = payload.len();
    let mut packet = vec![len as u8, (len >> 8) as u8, (len >> 16) as u8, 0];
    packet.extend_from_slice(&payload);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = w.write_all(&packet).await;
        let _ = w.shutdown().await;
    })
    .await;
}

/// Wraps the client's read half. Until the login is checked (`logged_in` set by the
/// shim), the whole connection has `connect_timeout` from when it was accepted;
/// after that, each wait for the client's next bytes may last `wait_timeout`. Time
/// spent answering a statement is not waiting: the clock starts when the reader
/// first asks for bytes the client has not sent. A read past its deadline fails with
/// `TimedOut`, which ends the connection.
pub struct IdleTimeout<R> {
    inner: R,
    logged_in: Arc<AtomicBool>,
    login_deadline: Instant,
    wait_timeout: Duration,
    /// Armed while the reader waits for bytes, with whether the client had logged in
    /// when it was armed (a wait that began before the login and goes on after it
    /// gets `wait_timeout`, not what was left of `connect_timeout`).
    timer: Option<(bool, Pin<Box<Sleep>>)>,
}

impl<R> IdleTimeout<R> {
    /// Wraps `inner` for a connection accepted now.
    pub fn new(inner: R, limits: &Limits, logged_in: Arc<AtomicBool>) -> Self {
        IdleTimeout {
            inner,
            logged_in,
            login_deadline: Instant::now() + limits.connect_timeout,
            wait_timeout: limits.wait_timeout,
            timer: None,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for IdleTimeout<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.timer = None;
                return Poll::Ready(r);
            }
            Poll::Pending => {}
        }
        let logged_in = this.logged_in.load(Ordering::Acquire);
        if this
            .timer
            .as_ref()
            .is_some_and(|(armed, _)| *armed != logged_in)
        {
            this.timer = None;
        }
        let (_, timer) = this.timer.get_or_insert_with(|| {
            let deadline = if logged_in {
                Instant::now() + this.wait_timeout
            } else {
                this.login_deadline
            };
            (logged_in, Box::pin(tokio::time::sleep_until(deadline)))
        });
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                if logged_in {
                    "the connection was idle past wait_timeout"
                } else {
                    "no login within connect_timeout"
                },
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_silent_client_is_closed_at_its_deadline_and_a_talking_one_is_not() {
        let ms = Duration::from_millis;
        let limits = Limits {
            connect_timeout: ms(300),
            wait_timeout: ms(600),
            ..Limits::default()
        };
        // Not logged in: the connect deadline, however the bytes trickle in.
        let (mut client, server) = tokio::io::duplex(64);
        let mut r = IdleTimeout::new(server, &limits, Arc::new(AtomicBool::new(false)));
        let started = Instant::now();
        client.write_all(b"x").await.unwrap();
        let mut b = [0u8; 1];
        r.read_exact(&mut b).await.unwrap();
        let e = r.read_exact(&mut b).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < ms(550), "{:?}", started.elapsed());

        // Logged in: each wait may last wait_timeout, and time not spent waiting
        // for the client (answering a statement) does not count.
        let (mut client, server) = tokio::io::duplex(64);
        let mut r = IdleTimeout::new(server, &limits, Arc::new(AtomicBool::new(true)));
        tokio::time::sleep(ms(800)).await;
        client.write_all(b"y").await.unwrap();
        r.read_exact(&mut b).await.unwrap();
        let started = Instant::now();
        let e = r.read_exact(&mut b).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= ms(600), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_wait_that_began_before_the_login_is_not_cut_at_the_connect_deadline() {
        let ms = Duration::from_millis;
        let limits = Limits {
            connect_timeout: ms(300),
            wait_timeout: ms(5_000),
            ..Limits::default()
        };
        let (mut client, server) = tokio::io::duplex(64);
        let logged_in = Arc::new(AtomicBool::new(false));
        let mut r = IdleTimeout::new(server, &limits, logged_in.clone());
        // The reader waits for the client's next bytes (a pipelining driver's query)
        // while the login is checked; the login succeeds during the wait, and the
        // bytes come after the connect deadline.
        let flip = tokio::spawn(async move {
            tokio::time::sleep(ms(100)).await;
            logged_in.store(true, Ordering::Release);
            tokio::time::sleep(ms(400)).await;
            client.write_all(b"q").await.unwrap();
            client
        });
        let mut b = [0u8; 1];
        r.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"q");
        drop(flip.await.unwrap());
    }

    #[tokio::test]
    async fn too_many_connections_is_error_1040_before_the_greeting() {
        let (mut client, server) = tokio::io::duplex(256);
        refuse_too_many(server).await;
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got[3], 0, "sequence 0: in place of the greeting");
        assert_eq!(got[4], 0xff);
        assert_eq!(u16::from_le_bytes([got[5], got[6]]), 1040);
        assert_eq!(&got[7..], b"Too many connections");
    }
}
