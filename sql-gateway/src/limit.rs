//! A guard on the client's side of the socket: it follows the MySQL packet headers
//! (3-byte length, 1-byte sequence) and ends the connection when one logical packet
//! (a 16 MiB packet and its continuations) grows beyond `max_allowed_packet`, so a
//! client cannot make the gateway buffer an unbounded query. Bytes pass through
//! unchanged; only the headers are read.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// Largest logical packet accepted (bytes); also what `@@max_allowed_packet` says.
pub const MAX_ALLOWED_PACKET: usize = 16 * 1024 * 1024;
const MAX_PACKET: usize = 0xff_ffff;

/// Wraps the socket's read half.
pub struct PacketLimit<R> {
    inner: R,
    /// Header bytes of the packet being read (until 4 are seen).
    header: [u8; 4],
    header_len: usize,
    /// Payload bytes still to pass in the current packet.
    remaining: usize,
    /// Bytes of the current logical packet so far (across continuations).
    logical: usize,
}

impl<R> PacketLimit<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        PacketLimit {
            inner,
            header: [0; 4],
            header_len: 0,
            remaining: 0,
            logical: 0,
        }
    }

    /// The wrapped reader (for a switch to TLS at a packet boundary).
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Follows `data` through the packet framing; an error if a packet is too big.
    fn track(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                continue;
            }
            let need = 4 - self.header_len;
            let n = need.min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len < 4 {
                return Ok(());
            }
            self.header_len = 0;
            let len = usize::from(self.header[0])
                | usize::from(self.header[1]) << 8
                | usize::from(self.header[2]) << 16;
            self.logical += len;
            if self.logical > MAX_ALLOWED_PACKET {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "Got a packet bigger than 'max_allowed_packet' bytes ({MAX_ALLOWED_PACKET})"
                    ),
                ));
            }
            if len < MAX_PACKET {
                self.logical = 0;
            }
            self.remaining = len;
        }
        Ok(())
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for PacketLimit<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = buf.filled()[before..].to_vec();
                Poll::Ready(self.track(&new))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: usize, seq: u8) -> Vec<u8> {
        vec![len as u8, (len >> 8) as u8, (len >> 16) as u8, seq]
    }

    #[test]
    fn small_packets_pass_and_a_huge_logical_packet_is_refused() {
        let mut g = PacketLimit::new(());
        let mut p = header(3, 0);
        p.extend_from_slice(b"abc");
        // Split anywhere, including inside the header.
        for chunk in p.chunks(2) {
            g.track(chunk).unwrap();
        }
        assert_eq!((g.remaining, g.header_len, g.logical), (0, 0, 0));
        // A 16 MiB packet with a continuation: refused once past the limit.
        g.track(&header(MAX_PACKET, 1)).unwrap();
        g.track(&vec![0u8; MAX_PACKET]).unwrap();
        assert!(g.track(&header(10, 2)).is_err());
    }
}
