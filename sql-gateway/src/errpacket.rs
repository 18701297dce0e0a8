//! opensrv-mysql writes error packets only with MariaDB's predefined error numbers.
//! Backstop's backup errors use OceanBase-style numbers (9000 range), so the gateway
//! asks opensrv for `ER_UNKNOWN_ERROR` (1105) with the real number in a sentinel at the
//! start of the message (`\x01NNNN\x01`), and this writer, sitting between opensrv and
//! the socket, rewrites such packets: the code becomes NNNN and the sentinel goes away.
//! Every other byte passes through unchanged.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

const UNKNOWN_ERROR: u16 = 1105;
/// What opensrv answers to every failed login (`ER_ACCESS_DENIED_NO_PASSWORD_ERROR`).
const LOGIN_FAILED: u16 = 1698;
const MAX_PACKET: usize = 0xff_ffff;

/// Set by the shim when a login could not be checked at all (the metadata service is
/// unreachable or has no leader): the rewriter then replaces opensrv's fixed "access
/// denied" packet with this error number and message, so a correct password is never
/// reported as a wrong one.
pub type LoginFailure = std::sync::Arc<std::sync::Mutex<Option<(u16, String)>>>;

/// Puts `errno` into a message for opensrv's `ER_UNKNOWN_ERROR`.
pub fn tag(errno: u16, message: &str) -> String {
    format!("\u{1}{errno}\u{1}{message}")
}

/// Rewrites tagged error packets on their way to the client.
pub struct ErrorRewriter<W> {
    inner: W,
    incoming: Vec<u8>,
    outgoing: Vec<u8>,
    after_max_packet: bool,
    login_failure: LoginFailure,
}

impl<W> ErrorRewriter<W> {
    /// Wraps the socket's write half.
    pub fn new(inner: W) -> Self {
        Self::with_login_failure(inner, LoginFailure::default())
    }

    /// Wraps the socket's write half; a failed login's packet takes the error in
    /// `login_failure` when the shim put one there.
    pub fn with_login_failure(inner: W, login_failure: LoginFailure) -> Self {
        Self {
            inner,
            incoming: Vec::new(),
            outgoing: Vec::new(),
            after_max_packet: false,
            login_failure,
        }
    }

    /// The shim's login error instead of opensrv's "access denied", if it set one.
    fn login_rewrite(&self, payload: &[u8]) -> Option<Vec<u8>> {
        if payload.len() < 9
            || payload[0] != 0xff
            || u16::from_le_bytes([payload[1], payload[2]]) != LOGIN_FAILED
        {
            return None;
        }
        let failure = self
            .login_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        let (errno, message) = failure;
        let mut out = Vec::with_capacity(9 + message.len());
        out.push(0xff);
        out.extend_from_slice(&errno.to_le_bytes());
        out.extend_from_slice(b"#HY000");
        out.extend_from_slice(message.as_bytes());
        Some(out)
    }

    /// Moves every complete packet from `incoming` to `outgoing`, rewriting tagged
    /// error packets.
    fn process(&mut self) {
        loop {
            if self.incoming.len() < 4 {
                return;
            }
            let len = usize::from(self.incoming[0])
                | usize::from(self.incoming[1]) << 8
                | usize::from(self.incoming[2]) << 16;
            if self.incoming.len() < 4 + len {
                return;
            }
            let seq = self.incoming[3];
            let payload: Vec<u8> = self.incoming[4..4 + len].to_vec();
            self.incoming.drain(..4 + len);
            let continuation = self.after_max_packet;
            self.after_max_packet = len == MAX_PACKET;
            let rewritten = if continuation {
                None
            } else {
                rewrite(&payload).or_else(|| self.login_rewrite(&payload))
            };
            let payload = rewritten.unwrap_or(payload);
            let n = payload.len();
            self.outgoing.extend_from_slice(&[
                (n & 0xff) as u8,
                (n >> 8 & 0xff) as u8,
                (n >> 16 & 0xff) as u8,
                seq,
            ]);
            self.outgoing.extend_from_slice(&payload);
        }
    }
}

/// `0xFF | code u16 | '#' | sqlstate[5] | message`: rewrites a 1105 whose message is
/// tagged; `None` for anything else.
fn rewrite(payload: &[u8]) -> Option<Vec<u8>> {
    if payload.len() < 12
        || payload[0] != 0xff
        || u16::from_le_bytes([payload[1], payload[2]]) != UNKNOWN_ERROR
    {
        return None;
    }
    let message = &payload[9..];
    if message.first() != Some(&1) {
        return None;
    }
    let end = message[1..].iter().position(|b| *b == 1)? + 1;
    let errno: u16 = std::str::from_utf8(&message[1..end]).ok()?.parse().ok()?;
    let mut out = Vec::with_capacity(payload.len());
    out.push(0xff);
    out.extend_from_slice(&errno.to_le_bytes());
    out.extend_from_slice(&payload[3..9]);
    out.extend_from_slice(&message[end + 1..]);
    Some(out)
}

impl<W: AsyncWrite + Unpin> ErrorRewriter<W> {
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.outgoing.is_empty() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.outgoing) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.outgoing.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for ErrorRewriter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Apply back-pressure once a few packets are waiting for the socket.
        if self.outgoing.len() > 4 * 1024 * 1024 {
            match self.drain(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.incoming.extend_from_slice(buf);
        self.process();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_shutdown(cx),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
        let n = payload.len();
        let mut p = vec![
            (n & 0xff) as u8,
            (n >> 8 & 0xff) as u8,
            (n >> 16) as u8,
            seq,
        ];
        p.extend_from_slice(payload);
        p
    }

    #[tokio::test]
    async fn tagged_errors_get_their_number_and_others_pass() {
        use tokio::io::AsyncWriteExt;
        let mut err = vec![0xff, 0x51, 0x04, b'#'];
        err.extend_from_slice(b"HY000");
        err.extend_from_slice(tag(9011, "OB_BACKUP_IN_PROGRESS: busy").as_bytes());
        let ok = packet(1, &[0, 0, 0, 2, 0, 0, 0]);
        let mut stream = ok.clone();
        stream.extend(packet(2, &err));
        let mut w = ErrorRewriter::new(Vec::new());
        // Written in awkward pieces, as a buffered writer may.
        for chunk in stream.chunks(5) {
            w.write_all(chunk).await.unwrap();
        }
        w.flush().await.unwrap();
        let out = w.inner;
        assert_eq!(&out[..ok.len()], &ok[..]);
        let e = &out[ok.len() + 4..];
        assert_eq!(u16::from_le_bytes([e[1], e[2]]), 9011);
        assert_eq!(&e[3..9], b"#HY000");
        assert_eq!(&e[9..], b"OB_BACKUP_IN_PROGRESS: busy");
        assert_eq!(out[ok.len()] as usize, e.len());
    }

    #[tokio::test]
    async fn a_login_that_could_not_be_checked_is_not_called_access_denied() {
        use tokio::io::AsyncWriteExt;
        let mut denied = vec![0xff, 0xa2, 0x06, b'#'];
        denied.extend_from_slice(b"28000Authenticate failed");
        let failure = LoginFailure::default();
        // A wrong password: opensrv's packet passes.
        let mut w = ErrorRewriter::with_login_failure(Vec::new(), failure.clone());
        w.write_all(&packet(2, &denied)).await.unwrap();
        w.flush().await.unwrap();
        assert_eq!(&w.inner[4..], &denied[..]);
        // The metadata service could not be reached: the shim's error replaces it.
        *failure.lock().unwrap() = Some((9022, "cannot reach the metadata service".into()));
        let mut w = ErrorRewriter::with_login_failure(Vec::new(), failure);
        w.write_all(&packet(2, &denied)).await.unwrap();
        w.flush().await.unwrap();
        let e = &w.inner[4..];
        assert_eq!(u16::from_le_bytes([e[1], e[2]]), 9022);
        assert_eq!(&e[9..], b"cannot reach the metadata service");
    }
}
