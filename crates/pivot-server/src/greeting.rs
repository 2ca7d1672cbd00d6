//! Is it a MySQL server at all? A look at what the port sends first.
//!
//! A MySQL or MariaDB server speaks first: a packet of a 3-byte little-endian
//! length, sequence number 0, then protocol version 10 (or 0xff, an error
//! packet such as "too many connections"). When the driver fails in a way
//! that says nothing useful (a timeout, "packet larger than
//! max_allowed_packet"), a raw read of those first bytes tells a wrong port
//! (an SSH or HTTP server) from a MySQL server with a problem.

use crate::errors::SessionError;
use pivot_core::InstanceKey;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// What the port sent when connected to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Greeting {
    /// The start of a MySQL greeting (or error packet).
    MySql,
    /// Bytes that cannot begin one.
    Other(Vec<u8>),
    /// Connected, nothing received before the bound.
    Silent,
    /// Connected, closed by the other side before sending anything.
    Closed,
    /// No connection, or too little seen to tell.
    Unknown,
}

/// Protocol version of the handshake packet, and the first byte of an error packet.
const PROTOCOL_V10: u8 = 10;
const ERROR_PACKET: u8 = 0xff;
/// Enough of a first line to recognize what answered.
const SHOWN_BYTES: usize = 64;
/// After bytes that are not MySQL arrived, how long to wait for the rest of the line.
const REST_OF_LINE: Duration = Duration::from_millis(50);

/// What the first bytes say, or `None` if they may still become a greeting.
pub(crate) fn judge(bytes: &[u8]) -> Option<bool> {
    let plausible_header = |b: &[u8]| b.len() < 4 || b[3] == 0;
    match bytes {
        [] => None,
        b if !plausible_header(b) => Some(false),
        [l0, l1, l2, 0, kind, ..] => Some((*l0, *l1, *l2) != (0, 0, 0) && matches!(*kind, PROTOCOL_V10 | ERROR_PACKET)),
        _ => None,
    }
}

/// Connect to `key` and read what it sends first, within `within`.
pub(crate) async fn peek(key: &InstanceKey, within: Duration) -> Greeting {
    let deadline = tokio::time::Instant::now() + within;
    let Ok(Ok(mut stream)) = tokio::time::timeout_at(deadline, TcpStream::connect((key.host.as_str(), key.port))).await
    else {
        return Greeting::Unknown;
    };
    let mut seen = Vec::new();
    let mut chunk = [0u8; 256];
    let mut until = deadline;
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => seen.extend_from_slice(&chunk[..n]),
            Err(_) if seen.is_empty() => return Greeting::Silent,
            Err(_) => break,
        }
        match judge(&seen) {
            Some(true) => return Greeting::MySql,
            Some(false) if seen.contains(&b'\n') || seen.len() >= SHOWN_BYTES => break,
            Some(false) => until = until.min(tokio::time::Instant::now() + REST_OF_LINE),
            None => {}
        }
    }
    match judge(&seen) {
        Some(true) => Greeting::MySql,
        Some(false) => Greeting::Other(seen),
        None if seen.is_empty() => Greeting::Closed,
        None => Greeting::Unknown,
    }
}

/// How long to look at what a port sends after a connect failed.
pub(crate) const PEEK: Duration = Duration::from_millis(300);

/// Whether a connect failure may mean the port does not speak MySQL: the
/// driver could not make sense of what it received, or the connection ended.
/// Refusals, unreachable hosts, timeouts and server errors say enough.
pub(crate) fn worth_a_look(err: &SessionError) -> bool {
    use std::io::ErrorKind::*;
    match err {
        SessionError::Driver(mysql_async::Error::Io(mysql_async::IoError::Io(io))) => !matches!(
            io.kind(),
            ConnectionRefused | TimedOut | WouldBlock | HostUnreachable | NetworkUnreachable | AddrNotAvailable
        ),
        SessionError::Driver(mysql_async::Error::Driver(_)) => true,
        _ => false,
    }
}

/// Replace a connect failure by what the port's first bytes say, when they
/// say it is not a MySQL server. `waited` is how long the driver waited for
/// a greeting when it timed out.
pub(crate) async fn explain(key: &InstanceKey, err: SessionError, waited: Option<Duration>) -> SessionError {
    match peek(key, PEEK).await {
        Greeting::Other(bytes) => SessionError::NotMySql(format!(
            "{key} is not a MySQL server: it sent {} where a MySQL server sends its greeting (is the port right?)",
            shown(&bytes)
        )),
        Greeting::Closed => SessionError::NotMySql(format!(
            "{key} closed the connection without a MySQL greeting: is it a MySQL server, and does it accept \
             connections from this host?"
        )),
        Greeting::Silent => match waited {
            Some(w) => SessionError::NoGreeting(format!(
                "{key} accepted the connection but sent no MySQL greeting within {}: is it a MySQL server (or a \
                 hung one)?",
                humantime_ms(w)
            )),
            None => err,
        },
        Greeting::MySql | Greeting::Unknown => err,
    }
}

/// `1s`, `250ms`, `1.5s`.
fn humantime_ms(d: Duration) -> String {
    let ms = d.as_millis();
    match (ms / 1000, ms % 1000) {
        (0, ms) => format!("{ms}ms"),
        (s, 0) => format!("{s}s"),
        (s, ms) => format!("{s}.{}s", format!("{ms:03}").trim_end_matches('0')),
    }
}

/// The first line of `bytes`, quoted, non-printable bytes escaped:
/// `"SSH-2.0-OpenSSH_9.2"`, `"\xde\xad\xbe\xef"`.
pub(crate) fn shown(bytes: &[u8]) -> String {
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (line, more) = if line.len() > SHOWN_BYTES { (&line[..SHOWN_BYTES], "...") } else { (line, "") };
    format!("\"{}{more}\"", line.escape_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings_are_told_from_other_protocols() {
        // A MariaDB 10.11 greeting begins like this (length 0x6e, sequence 0, protocol 10).
        assert_eq!(judge(b"\x6e\x00\x00\x00\x0a5.5.5-10.11"), Some(true));
        assert_eq!(judge(b"\x17\x00\x00\x00\xff\x10\x04Too many connections"), Some(true));
        assert_eq!(judge(b"SSH-2.0-OpenSSH_9.2\r\n"), Some(false));
        assert_eq!(judge(b"HTTP/1.1 400 Bad Request\r\n"), Some(false));
        assert_eq!(judge(b"\x10\x00\x00\x00abc"), Some(false), "sequence 0 but not protocol 10");
        assert_eq!(judge(b"\x00\x00\x00\x00\x0a"), Some(false), "an empty packet is no greeting");
        assert_eq!(judge(b"\x6e\x00"), None, "too little to tell");
        assert_eq!(judge(b""), None);
    }

    #[test]
    fn what_was_seen_is_shown_as_one_escaped_line() {
        assert_eq!(shown(b"SSH-2.0-OpenSSH_9.2\r\n"), "\"SSH-2.0-OpenSSH_9.2\"");
        assert_eq!(shown(b"\xde\xad\xbe\xef"), "\"\\xde\\xad\\xbe\\xef\"");
        assert_eq!(shown(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"), "\"HTTP/1.1 400 Bad Request\"");
        assert_eq!(shown(&[b'a'; 100]), format!("\"{}...\"", "a".repeat(64)));
    }

    #[test]
    fn waits_are_shown_as_configured() {
        assert_eq!(humantime_ms(Duration::from_secs(1)), "1s");
        assert_eq!(humantime_ms(Duration::from_millis(250)), "250ms");
        assert_eq!(humantime_ms(Duration::from_millis(1500)), "1.5s");
    }
}
