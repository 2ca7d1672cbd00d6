//! Packets over a socket: a read buffer (64 KiB, grown to hold one packet
//! of at most 16 MiB, shrunk back after), complete packets found in it,
//! writes of whole batches. A read that did not fill the buffer drained the
//! socket and marks it not ready (as the TCP mode's pump does): one read per
//! message, never a second one to learn the socket is empty.

use super::packet::{header, Header, MAX_PAYLOAD};
use std::io;
use std::os::fd::AsRawFd;
use tokio::io::Interest;
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
        let fd = self.stream.as_raw_fd();
        loop {
            self.stream.readable().await?;
            let space = &mut self.buf[self.end..];
            let mut got: Option<usize> = None;
            let read = self.stream.try_io(Interest::READABLE, || {
                // SAFETY: `space` is valid for its length and `fd` is open
                // for as long as the stream is borrowed.
                let n = unsafe { libc::recv(fd, space.as_mut_ptr().cast(), space.len(), 0) };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                let n = n as usize;
                got = Some(n);
                if n > 0 && n < space.len() {
                    // Drained: marked not ready now, so that the next wait
                    // sleeps instead of reading only to learn it is empty.
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(())
            });
            match (read, got) {
                (_, Some(n)) => {
                    self.end += n;
                    return Ok(n);
                }
                (Err(e), None) if e.kind() == io::ErrorKind::WouldBlock => continue,
                (Err(e), None) => return Err(e),
                (Ok(()), None) => unreachable!("a successful read sets the count"),
            }
        }
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
