//! A physical replication client: the WAL streamed over PostgreSQL's replication
//! protocol ("Streaming Replication Protocol" in the PostgreSQL docs), as
//! `pg_receivewal` receives it.
//!
//! The connection starts with `replication=true`, authenticates (trust, password,
//! MD5 or SCRAM-SHA-256, through `postgres-protocol`), runs `IDENTIFY_SYSTEM`, then
//! `START_REPLICATION SLOT s PHYSICAL X/Y TIMELINE t` and enters copy-both mode: the
//! server sends `XLogData` (`w`: start LSN, end LSN, send time, WAL bytes) and
//! keepalives (`k`); the client answers with standby status updates (`r`: written,
//! flushed and applied LSNs), and the flushed LSN is what the server keeps the slot
//! at. The end of the timeline (the server was promoted) ends the copy.
//!
//! `postgres-protocol` builds the frontend messages and runs the SCRAM exchange;
//! the backend framing is read here, because its parser does not know copy-both mode.
//! Every read is bounded: messages over [`MAX_MESSAGE`] are refused.

use std::time::Duration;

use backstop_common::source::PgSource;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{CONNECT_TIMEOUT, Lsn, PgError, Result};

/// Largest backend message accepted, bytes (a WAL data message carries at most what
/// the server reads at once, 128 KiB in PostgreSQL 15).
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_US: i64 = 946_684_800_000_000;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A backend message: its tag and body.
type Msg = (u8, Bytes);

/// A replication connection in copy-both mode, streaming one timeline's WAL.
pub struct WalStream {
    io: Box<dyn Io>,
    buf: BytesMut,
    /// The next LSN [`WalStream::recv_wal`] hands out.
    pub next: u64,
    /// The next LSN expected from the server (`next` plus what is pending).
    received: u64,
    /// Bytes received past what the last `recv_wal` could take: `[next, received)`.
    pending: Vec<u8>,
    /// The server's WAL end as its last message said.
    pub server_end: u64,
    flushed: u64,
    ended: bool,
}

fn proto(what: &str, e: impl std::fmt::Display) -> PgError {
    PgError::Query(format!("replication connection: {what}: {e}"))
}

fn error_text(body: &[u8]) -> String {
    // Fields: a type byte and a NUL-terminated string each; `M` is the message.
    let mut parts = body.split(|b| *b == 0);
    let mut message = String::new();
    let mut code = String::new();
    for f in parts.by_ref() {
        if f.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(&f[1..]).into_owned();
        match f[0] {
            b'M' => message = text,
            b'C' => code = text,
            _ => {}
        }
    }
    if code.is_empty() {
        message
    } else {
        format!("{message} (SQLSTATE {code})")
    }
}

impl WalStream {
    async fn send(&mut self, buf: BytesMut) -> Result<()> {
        self.io
            .write_all(&buf)
            .await
            .map_err(|e| proto("write", e))?;
        self.io.flush().await.map_err(|e| proto("write", e))
    }

    /// The next backend message; `None` when `wait` passes first.
    async fn recv(&mut self, wait: Option<Duration>) -> Result<Option<Msg>> {
        loop {
            if self.buf.len() >= 5 {
                let tag = self.buf[0];
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if !(4..=MAX_MESSAGE).contains(&len) {
                    return Err(proto("message", format!("bad length {len}")));
                }
                if self.buf.len() > len {
                    let mut m = self.buf.split_to(len + 1);
                    m.advance(5);
                    let body = m.freeze();
                    if tag == b'E' {
                        return Err(PgError::Query(format!(
                            "replication: {}",
                            error_text(&body)
                        )));
                    }
                    return Ok(Some((tag, body)));
                }
            }
            let read = self.io.read_buf(&mut self.buf);
            let n = match wait {
                Some(d) => match tokio::time::timeout(d, read).await {
                    Ok(r) => r,
                    Err(_) => return Ok(None),
                },
                None => read.await,
            }
            .map_err(|e| proto("read", e))?;
            if n == 0 {
                return Err(proto("read", "the server closed the connection"));
            }
        }
    }

    async fn recv_now(&mut self) -> Result<Msg> {
        match self.recv(Some(CONNECT_TIMEOUT)).await? {
            Some(m) => Ok(m),
            None => Err(proto("answer", "no answer in time")),
        }
    }

    /// Connects with `replication=true` and authenticates.
    async fn connect(src: &PgSource, password: Option<String>) -> Result<WalStream> {
        let target = src.to_uri(true);
        let failed = |reason: String| PgError::Connect {
            target: target.clone(),
            reason,
        };
        let io: Box<dyn Io> = if src.is_socket() {
            let path = format!("{}/.s.PGSQL.{}", src.host.trim_end_matches('/'), src.port);
            let connecting = tokio::net::UnixStream::connect(path);
            let s = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
                .await
                .map_err(|_| failed("timed out".into()))?
                .map_err(|e| failed(e.to_string()))?;
            Box::new(s)
        } else {
            let connecting = tokio::net::TcpStream::connect((src.host.as_str(), src.port));
            let s = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
                .await
                .map_err(|_| failed("timed out".into()))?
                .map_err(|e| failed(e.to_string()))?;
            let _ = s.set_nodelay(true);
            Box::new(s)
        };
        let mut w = WalStream {
            io,
            buf: BytesMut::with_capacity(64 * 1024),
            next: 0,
            received: 0,
            pending: Vec::new(),
            server_end: 0,
            flushed: 0,
            ended: false,
        };
        let mut out = BytesMut::new();
        frontend::startup_message(
            [
                ("user", src.user.as_str()),
                ("replication", "true"),
                ("application_name", "backstop"),
            ],
            &mut out,
        )
        .map_err(|e| proto("startup", e))?;
        w.send(out).await?;
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            let (tag, body) = w.recv_now().await?;
            match tag {
                b'R' => {
                    if body.len() < 4 {
                        return Err(proto("authentication", "short message"));
                    }
                    let kind = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                    let pw = || {
                        password.clone().ok_or_else(|| PgError::Connect {
                            target: target.clone(),
                            reason: "the server asks for a password and none is configured (password= or PGPASSFILE)".into(),
                        })
                    };
                    let mut out = BytesMut::new();
                    match kind {
                        0 => continue,
                        3 => frontend::password_message(pw()?.as_bytes(), &mut out)
                            .map_err(|e| proto("password", e))?,
                        5 => {
                            let salt: [u8; 4] = body
                                .get(4..8)
                                .and_then(|s| s.try_into().ok())
                                .ok_or_else(|| proto("MD5 authentication", "no salt"))?;
                            let hash = md5_hash(src.user.as_bytes(), pw()?.as_bytes(), salt);
                            frontend::password_message(hash.as_bytes(), &mut out)
                                .map_err(|e| proto("password", e))?;
                        }
                        10 => {
                            let s = sasl::ScramSha256::new(
                                pw()?.as_bytes(),
                                sasl::ChannelBinding::unsupported(),
                            );
                            frontend::sasl_initial_response(
                                sasl::SCRAM_SHA_256,
                                s.message(),
                                &mut out,
                            )
                            .map_err(|e| proto("SCRAM", e))?;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram
                                .as_mut()
                                .ok_or_else(|| proto("SCRAM", "out of order"))?;
                            s.update(&body[4..]).map_err(|e| proto("SCRAM", e))?;
                            frontend::sasl_response(s.message(), &mut out)
                                .map_err(|e| proto("SCRAM", e))?;
                        }
                        12 => {
                            let s = scram
                                .as_mut()
                                .ok_or_else(|| proto("SCRAM", "out of order"))?;
                            s.finish(&body[4..]).map_err(|e| proto("SCRAM", e))?;
                            continue;
                        }
                        other => {
                            return Err(PgError::Connect {
                                target,
                                reason: format!("unsupported authentication method {other}"),
                            });
                        }
                    }
                    w.send(out).await?;
                }
                b'Z' => return Ok(w),
                // ParameterStatus, BackendKeyData, notices.
                _ => {}
            }
        }
    }

    /// Runs a replication command that answers with one row; returns its fields.
    async fn query_row(&mut self, sql: &str) -> Result<Vec<Option<String>>> {
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out).map_err(|e| proto("query", e))?;
        self.send(out).await?;
        let mut row = Vec::new();
        loop {
            let (tag, body) = self.recv_now().await?;
            match tag {
                b'D' => {
                    let mut b = body.clone();
                    if b.len() < 2 {
                        return Err(proto(sql, "short row"));
                    }
                    let n = b.get_u16() as usize;
                    for _ in 0..n {
                        if b.len() < 4 {
                            return Err(proto(sql, "short row"));
                        }
                        let len = b.get_i32();
                        if len < 0 {
                            row.push(None);
                        } else if b.len() < len as usize {
                            return Err(proto(sql, "short row"));
                        } else {
                            let v = b.split_to(len as usize);
                            row.push(Some(String::from_utf8_lossy(&v).into_owned()));
                        }
                    }
                }
                b'Z' => return Ok(row),
                _ => {}
            }
        }
    }

    /// Connects and starts streaming the slot's WAL from `from` on `timeline`.
    ///
    /// Errors: [`PgError::Connect`] (unreachable, refused, authentication: a
    /// `pg_hba.conf` without a `replication` line); [`PgError::WalLost`] when the
    /// server no longer has WAL at `from`; [`PgError::Query`] otherwise.
    pub async fn start(
        src: &PgSource,
        password: Option<String>,
        slot: &str,
        from: Lsn,
        timeline: u32,
    ) -> Result<WalStream> {
        let mut w = WalStream::connect(src, password).await?;
        let id = w.query_row("IDENTIFY_SYSTEM").await?;
        let tli: u32 = id
            .get(1)
            .cloned()
            .flatten()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| proto("IDENTIFY_SYSTEM", "no timeline"))?;
        if tli != timeline {
            return Err(PgError::WalLost(format!(
                "the server is on timeline {tli}, the archive follows timeline {timeline}"
            )));
        }
        let mut out = BytesMut::new();
        frontend::query(
            &format!("START_REPLICATION SLOT {slot} PHYSICAL {from} TIMELINE {timeline}"),
            &mut out,
        )
        .map_err(|e| proto("START_REPLICATION", e))?;
        w.send(out).await?;
        loop {
            let msg = w.recv_now().await;
            match msg {
                Ok((b'W', _)) => break,
                Ok(_) => {}
                Err(PgError::Query(m)) if m.contains("has already been removed") => {
                    return Err(PgError::WalLost(m));
                }
                Err(e) => return Err(e),
            }
        }
        w.next = from.0;
        w.received = from.0;
        w.flushed = from.0;
        Ok(w)
    }

    /// Receives WAL for up to `wait`, at most `max` bytes (the rest of a server
    /// message that does not fit is kept for the next call); empty when nothing came.
    /// Answers keepalives that ask for it.
    ///
    /// Errors: [`PgError::WalLost`] when the timeline ended (the server was
    /// promoted); [`PgError::Query`] for a broken stream.
    pub async fn recv_wal(&mut self, max: usize, wait: Duration) -> Result<Vec<u8>> {
        let mut data = Vec::new();
        if !self.pending.is_empty() {
            let take = max.min(self.pending.len());
            data.extend(self.pending.drain(..take));
            self.next += take as u64;
            if data.len() >= max {
                return Ok(data);
            }
        }
        let mut wait = Some(wait);
        while data.len() < max {
            let Some((tag, body)) = self.recv(wait).await? else {
                break;
            };
            // After the first message, take only what is already buffered.
            wait = Some(Duration::from_millis(1));
            match tag {
                b'd' => {
                    let mut b = body;
                    if b.is_empty() {
                        continue;
                    }
                    match b.get_u8() {
                        b'w' if b.len() >= 24 => {
                            let start = b.get_u64();
                            let end = b.get_u64();
                            let _sent = b.get_i64();
                            if start != self.received {
                                return Err(proto(
                                    "XLogData",
                                    format!(
                                        "WAL at {} where {} was expected",
                                        Lsn(start),
                                        Lsn(self.received)
                                    ),
                                ));
                            }
                            self.received = start + b.len() as u64;
                            self.server_end = self.server_end.max(end);
                            let room = max - data.len();
                            let take = room.min(b.len());
                            data.extend_from_slice(&b[..take]);
                            self.pending.extend_from_slice(&b[take..]);
                            self.next = self.received - self.pending.len() as u64;
                        }
                        b'k' if b.len() >= 17 => {
                            let end = b.get_u64();
                            let _sent = b.get_i64();
                            self.server_end = self.server_end.max(end);
                            if b.get_u8() == 1 {
                                self.status(self.flushed).await?;
                            }
                        }
                        other => {
                            return Err(proto("copy data", format!("unknown kind {other}")));
                        }
                    }
                }
                b'c' => {
                    self.ended = true;
                    return Err(PgError::WalLost(format!(
                        "the server ended timeline streaming at {} (it was promoted or switched timeline)",
                        Lsn(self.received)
                    )));
                }
                _ => {}
            }
        }
        Ok(data)
    }

    /// Sends a standby status update: everything below `flushed` is durable at the
    /// destination (the slot keeps WAL from there on).
    pub async fn status(&mut self, flushed: u64) -> Result<()> {
        self.flushed = self.flushed.max(flushed);
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64)
            - PG_EPOCH_US;
        let mut msg = BytesMut::with_capacity(34);
        msg.put_u8(b'r');
        msg.put_u64(self.received);
        msg.put_u64(self.flushed);
        msg.put_u64(self.flushed);
        msg.put_i64(now_us);
        msg.put_u8(0);
        let mut out = BytesMut::new();
        frontend::CopyData::new(msg.freeze())
            .map_err(|e| proto("status", e))?
            .write(&mut out);
        self.send(out).await
    }

    /// Whether the server ended the stream.
    pub fn ended(&self) -> bool {
        self.ended
    }
}
