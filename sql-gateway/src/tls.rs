//! TLS on the MySQL port: what `mysql --ssl` (and every driver's `useSSL` /
//! `sslmode`) talks to. The client asks for it in its first packet (MySQL's
//! `SSLRequest`, `CLIENT_SSL`), the gateway switches the socket to TLS and the login
//! continues encrypted, as in MySQL. The certificate is the gateway's own (MySQL's
//! `ssl_cert` / `ssl_key`); clients verify it with the cluster CA (`--ssl-ca`).
//!
//! With `require_secure_transport` (MySQL's name) a client that does not ask for TLS
//! gets `ER_SECURE_TRANSPORT_REQUIRED` (3159) before any password is sent.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Join, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::OwnedWriteHalf;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

use crate::limit::PacketLimit;

/// MySQL's `ER_SECURE_TRANSPORT_REQUIRED`.
pub const ER_SECURE_TRANSPORT_REQUIRED: u16 = 3159;

/// The largest first packet a client may send before it has logged in (the
/// `SSLRequest` or the handshake response with its connection attributes), bytes.
pub const MAX_FIRST_PACKET: usize = 64 * 1024;

/// Why the MySQL port's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SqlTlsError {
    /// A file could not be read.
    #[error("read {what} {}: {source}", path.display())]
    Read {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A file does not hold a PEM certificate or PKCS#8/PKCS#1/SEC1 key, or the key
    /// does not fit the certificate.
    #[error("{}: {reason}", path.display())]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// The MySQL port's TLS server configuration (cheap to clone).
#[derive(Clone)]
pub struct SqlTls(pub(crate) Arc<ServerConfig>);

impl std::fmt::Debug for SqlTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqlTls")
    }
}

impl SqlTls {
    /// Reads a PEM certificate chain and its private key. Errors:
    /// [`SqlTlsError::Read`] for a missing file, [`SqlTlsError::Bad`] for one that
    /// holds no certificate or key, or a key that is not the certificate's.
    pub fn load(cert: &Path, key: &Path) -> Result<SqlTls, SqlTlsError> {
        let read = |what, path: &Path| {
            std::fs::read(path).map_err(|source| SqlTlsError::Read {
                what,
                path: path.to_path_buf(),
                source,
            })
        };
        let bad = |path: &Path, reason: String| SqlTlsError::Bad {
            path: path.to_path_buf(),
            reason,
        };
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&read("certificate", cert)?)
                .collect::<Result<_, _>>()
                .map_err(|e| bad(cert, format!("not a PEM certificate: {e}")))?;
        if chain.is_empty() {
            return Err(bad(cert, "no certificate in the file".to_string()));
        }
        let private = PrivateKeyDer::from_pem_slice(&read("private key", key)?)
            .map_err(|e| bad(key, format!("not a PEM private key: {e}")))?;
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| bad(key, format!("does not fit the certificate: {e}")))?;
        Ok(SqlTls(Arc::new(config)))
    }
}

/// The client's side of a connection before it has logged in: reads never go past
/// the end of the client's first packet, so that the protocol library holds no
/// bytes of what follows it (the TLS handshake, or pipelined statements), and that
/// packet may be at most [`MAX_FIRST_PACKET`] bytes. After it, bytes pass through.
pub struct FirstPacket<R> {
    inner: R,
    header: [u8; 4],
    header_len: usize,
    /// Payload bytes of the first packet still to pass; `None` once it has passed.
    left: Option<usize>,
}

impl<R> FirstPacket<R> {
    /// Wraps a connection's read half.
    pub fn new(inner: R) -> Self {
        FirstPacket {
            inner,
            header: [0; 4],
            header_len: 0,
            left: Some(0),
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for FirstPacket<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let Some(left) = this.left else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        // How much may be read now: the rest of the header, or of the payload.
        let want = if this.header_len < 4 {
            4 - this.header_len
        } else {
            left
        };
        let mut limited = buf.take(want.min(buf.remaining()));
        match Pin::new(&mut this.inner).poll_read(cx, &mut limited) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let got = limited.filled().to_vec();
        let n = got.len();
        // `take` reads into the same memory; tell `buf` about it.
        buf.put_slice(&got);
        if n == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.header_len < 4 {
            this.header[this.header_len..this.header_len + n].copy_from_slice(&got);
            this.header_len += n;
            if this.header_len == 4 {
                let len = usize::from(this.header[0])
                    | usize::from(this.header[1]) << 8
                    | usize::from(this.header[2]) << 16;
                if len > MAX_FIRST_PACKET {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "a first packet of {len} bytes (at most {MAX_FIRST_PACKET} before login)"
                        ),
                    )));
                }
                this.left = if len == 0 { None } else { Some(len) };
            }
        } else {
            let rest = left - n;
            this.left = if rest == 0 { None } else { Some(rest) };
        }
        Poll::Ready(Ok(()))
    }
}

/// The socket's read half below TLS: deadlines, and the first-packet bound.
type RawRead = FirstPacket<crate::guard::IdleTimeout<tokio::net::tcp::OwnedReadHalf>>;
type Tls = TlsStream<Join<RawRead, OwnedWriteHalf>>;

/// What the read side of a connection reads from: the plain socket, then (after an
/// `SSLRequest`) the TLS stream over it. Either way through the packet-size bound.
enum ReadSide {
    Plain(PacketLimit<RawRead>),
    Tls(PacketLimit<ReadHalf<Tls>>),
    /// While the TLS handshake runs (nothing reads then).
    Switching,
}

enum WriteSide {
    Plain(OwnedWriteHalf),
    Tls(WriteHalf<Tls>),
    Switching,
}

/// A connection's read half that can switch to TLS under the protocol library,
/// which keeps reading from the same value.
#[derive(Clone)]
pub struct SwitchRead(Arc<Mutex<ReadSide>>);

/// The write half that switches with it.
#[derive(Clone)]
pub struct SwitchWrite(Arc<Mutex<WriteSide>>);

/// The two halves of one connection, plain for now.
pub fn switchable(read: PacketLimit<RawRead>, write: OwnedWriteHalf) -> (SwitchRead, SwitchWrite) {
    (
        SwitchRead(Arc::new(Mutex::new(ReadSide::Plain(read)))),
        SwitchWrite(Arc::new(Mutex::new(WriteSide::Plain(write)))),
    )
}

fn switching() -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        "the connection is switching to TLS",
    )
}

/// Runs the TLS handshake over the plain halves and makes both halves use it.
/// [`FirstPacket`] made sure the protocol library holds none of the client's TLS
/// bytes. The handshake has the connection's login deadline (its reads are below
/// TLS).
pub async fn switch_to_tls(
    config: Arc<ServerConfig>,
    read: &SwitchRead,
    write: &SwitchWrite,
) -> io::Result<()> {
    let r = std::mem::replace(&mut *lock(&read.0), ReadSide::Switching);
    let w = std::mem::replace(&mut *lock(&write.0), WriteSide::Switching);
    let (ReadSide::Plain(r), WriteSide::Plain(w)) = (r, w) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a second SSLRequest on one connection",
        ));
    };
    let stream = tokio_rustls::TlsAcceptor::from(config)
        .accept(tokio::io::join(r.into_inner(), w))
        .await?;
    let (tr, tw) = tokio::io::split(stream);
    *lock(&read.0) = ReadSide::Tls(PacketLimit::new(tr));
    *lock(&write.0) = WriteSide::Tls(tw);
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AsyncRead for SwitchRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut *lock(&self.0) {
            ReadSide::Plain(r) => Pin::new(r).poll_read(cx, buf),
            ReadSide::Tls(r) => Pin::new(r).poll_read(cx, buf),
            ReadSide::Switching => Poll::Ready(Err(switching())),
        }
    }
}

impl AsyncWrite for SwitchWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut *lock(&self.0) {
            WriteSide::Plain(w) => Pin::new(w).poll_write(cx, data),
            WriteSide::Tls(w) => Pin::new(w).poll_write(cx, data),
            WriteSide::Switching => Poll::Ready(Err(switching())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut *lock(&self.0) {
            WriteSide::Plain(w) => Pin::new(w).poll_flush(cx),
            WriteSide::Tls(w) => Pin::new(w).poll_flush(cx),
            WriteSide::Switching => Poll::Ready(Err(switching())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut *lock(&self.0) {
            WriteSide::Plain(w) => Pin::new(w).poll_shutdown(cx),
            WriteSide::Tls(w) => Pin::new(w).poll_shutdown(cx),
            WriteSide::Switching => Poll::Ready(Ok(())),
        }
    }
}

/// Answers a client that did not ask for TLS on a gateway that requires it: MySQL's
/// error 3159 as the reply to its handshake response (`seq` is that packet's
/// sequence number), then closes. Bounded like every write before login.
pub async fn refuse_insecure<W: AsyncWrite + Unpin>(mut w: W, seq: u8) {
    let message =
        b"Connections using insecure transport are prohibited while --require_secure_transport=ON.";
    let mut payload = vec![0xff];
    payload.extend_from_slice(&ER_SECURE_TRANSPORT_REQUIRED.to_le_bytes());
    payload.extend_from_slice(b"#HY000");
    payload.extend_from_slice(message);
    let len = payload.len();
    let mut packet = vec![
        len as u8,
        (len >> 8) as u8,
        (len >> 16) as u8,
        seq.wrapping_add(1),
    ];
    packet.extend_from_slice(&payload);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        let _ = w.write_all(&packet).await;
        let _ = w.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn reads_stop_at_the_end_of_the_first_packet_then_pass_through() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut bytes = vec![3, 0, 0, 1, b'a', b'b', b'c'];
        bytes.extend_from_slice(b"after");
        client.write_all(&bytes).await.unwrap();
        drop(client);
        let mut r = FirstPacket::new(server);
        let mut first = [0u8; 64];
        let mut got = Vec::new();
        while got.len() < 7 {
            let n = r.read(&mut first).await.unwrap();
            assert!(got.len() + n <= 7, "read past the first packet");
            got.extend_from_slice(&first[..n]);
        }
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"after");
    }

    #[tokio::test]
    async fn a_huge_first_packet_is_refused() {
        let (mut client, server) = tokio::io::duplex(1024);
        client.write_all(&[0xff, 0xff, 0xff, 1]).await.unwrap();
        let mut r = FirstPacket::new(server);
        let mut b = [0u8; 16];
        let mut err = None;
        for _ in 0..4 {
            if let Err(e) = r.read(&mut b).await {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::InvalidData));
    }
}
