//! Packets over a socket: a read buffer (64 KiB, grown to hold one packet
//! of at most 16 MiB, shrunk back after), complete packets found in it,
//! writes of whole batches.

use super::packet::{header, Header, MAX_PAYLOAD};
use std::io;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const INITIAL: usize = 64 * 1024;

pub struct Wire {
    pub stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Wire {
    pub fn new(stream: TcpStream) -> Wire {
        Wire { stream, buf: vec![0; INITIAL], start: 0, end: 0 }
    }

    /// The bytes read and not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The complete packet at the front, if there is one: its header and payload.
    pub fn packet(&self) -> Option<(Header, &[u8])> {
        let b = self.buffered();
        let h = header(b)?;
        b.get(4..4 + h.len).map(|p| (h, p))
    }

    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > INITIAL {
                self.buf.truncate(INITIAL);
                self.buf.shrink_to_fit();
            }
        }
    }

    /// Read at least one more byte; `Ok(0)` at the end of the stream.
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.end == self.buf.len() {
            let need = header(self.buffered()).map_or(4, |h| h.len + 4).min(MAX_PAYLOAD + 4);
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                let grown = (self.buf.len() * 2).max(need).min(MAX_PAYLOAD + 4 + INITIAL);
                self.buf.resize(grown, 0);
            }
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// Read until a complete packet is at the front; `false` if the stream
    /// ended first.
    pub async fn want_packet(&mut self) -> io::Result<bool> {
        while self.packet().is_none() {
            if self.fill().await? == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The next packet's payload, consumed; `None` at the end of the stream.
    pub async fn read_packet(&mut self) -> io::Result<Option<(Header, Vec<u8>)>> {
        if !self.want_packet().await? {
            return Ok(None);
        }
        let (h, p) = self.packet().expect("a complete packet");
        let out = (h, p.to_vec());
        self.consume(4 + h.len);
        Ok(Some(out))
    }

    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match self.stream.try_write(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.stream.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The socket and whatever was read but not consumed.
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        let rest = self.buf[self.start..self.end].to_vec();
        (self.stream, rest)
    }
}
