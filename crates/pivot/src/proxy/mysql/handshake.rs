//! The connection phase: the server's initial handshake (protocol 10), the
//! client's `HandshakeResponse41`, and the `mysql_native_password` math that
//! lets the proxy log a client in again on another server. Pure.
//!
//! `mysql_native_password`: the client sends
//! `SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw)))`. Knowing the scramble the
//! server sent and the stored hash `SHA1(SHA1(pw))`, the proxy recovers
//! `SHA1(pw)`, checks it against the stored hash, and can answer another
//! server's scramble. It never learns the password itself.

use super::packet::{put_lenenc_bytes, Cursor};
use sha1::{Digest, Sha1};
use std::fmt;

/// Capability flags (the low 32 bits of the protocol's).
pub mod caps {
    /// MariaDB clears this bit in its handshake to say its 4 extended bytes are set.
    pub const CLIENT_MYSQL: u32 = 1;
    pub const CONNECT_WITH_DB: u32 = 1 << 3;
    pub const COMPRESS: u32 = 1 << 5;
    pub const PROTOCOL_41: u32 = 1 << 9;
    pub const SSL: u32 = 1 << 11;
    pub const SECURE_CONNECTION: u32 = 1 << 15;
    pub const MULTI_STATEMENTS: u32 = 1 << 16;
    pub const PLUGIN_AUTH: u32 = 1 << 19;
    pub const CONNECT_ATTRS: u32 = 1 << 20;
    pub const PLUGIN_AUTH_LENENC: u32 = 1 << 21;
    pub const SESSION_TRACK: u32 = 1 << 23;
    pub const DEPRECATE_EOF: u32 = 1 << 24;
    /// Zstandard compression (MySQL 8.0.18+).
    pub const ZSTD: u32 = 1 << 26;
    /// MariaDB's extended capabilities the proxy lets through: the extra
    /// column-definition data (it does not read column definitions).
    /// Progress reports, metadata caching, `COM_MULTI` and bulk execution
    /// change the packet flow and are hidden from clients in protocol mode.
    pub const MARIADB_KEPT: u32 = 1 << 3;
}

pub const NATIVE_PASSWORD: &str = "mysql_native_password";

/// The server's initial handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Greeting {
    pub server_version: String,
    pub connection_id: u32,
    /// The 20 bytes the client's answer proves the password against.
    pub scramble: Vec<u8>,
    pub capabilities: u32,
    pub status: u16,
    pub plugin: String,
    /// Where MariaDB's 4 extended capability bytes are in the payload.
    mariadb_caps_at: Option<usize>,
}

pub fn parse_greeting(p: &[u8]) -> Result<Greeting, String> {
    let bad = |what: &str| format!("not a protocol 10 handshake: {what}");
    let mut c = Cursor::new(p);
    if c.u8() != Some(10) {
        return Err(bad("protocol version"));
    }
    let server_version = String::from_utf8_lossy(c.nul_terminated().ok_or_else(|| bad("version"))?).into_owned();
    let connection_id = c.u32().ok_or_else(|| bad("connection id"))?;
    let mut scramble = c.bytes(8).ok_or_else(|| bad("scramble"))?.to_vec();
    c.u8().ok_or_else(|| bad("filler"))?;
    let low = c.u16().ok_or_else(|| bad("capabilities"))?;
    let _charset = c.u8().ok_or_else(|| bad("character set"))?;
    let status = c.u16().ok_or_else(|| bad("status"))?;
    let high = c.u16().ok_or_else(|| bad("capabilities"))?;
    let capabilities = u32::from(low) | u32::from(high) << 16;
    let data_len = c.u8().ok_or_else(|| bad("auth data length"))?;
    let reserved_at = c.pos();
    c.bytes(10).ok_or_else(|| bad("reserved"))?;
    let mariadb_caps_at = (capabilities & caps::CLIENT_MYSQL == 0).then_some(reserved_at + 6);
    if capabilities & caps::SECURE_CONNECTION != 0 {
        let n = usize::from(data_len).saturating_sub(8).max(13);
        let part2 = c.bytes(n).ok_or_else(|| bad("scramble part 2"))?;
        scramble.extend_from_slice(&part2[..12.min(part2.len())]);
    }
    let plugin = if capabilities & caps::PLUGIN_AUTH != 0 {
        let rest = c.rest();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        String::from_utf8_lossy(&rest[..end]).into_owned()
    } else {
        String::new()
    };
    Ok(Greeting { server_version, connection_id, scramble, capabilities, status, plugin, mariadb_caps_at })
}

/// Hide from the client what protocol mode cannot follow: MariaDB's
/// extended capabilities but [`caps::MARIADB_KEPT`], and compression.
pub fn restrict_greeting(p: &mut [u8], g: &Greeting) {
    if let Some(at) = g.mariadb_caps_at {
        if let Some(b) = p.get_mut(at..at + 4) {
            let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & caps::MARIADB_KEPT;
            b.copy_from_slice(&v.to_le_bytes());
        }
    }
    // Capabilities' low bytes: right after the version, id, scramble, filler.
    let low_at = 1 + g.server_version.len() + 1 + 4 + 8 + 1;
    if let Some(b) = p.get_mut(low_at..low_at + 2) {
        let v = u16::from_le_bytes([b[0], b[1]]) & !(caps::COMPRESS as u16);
        b.copy_from_slice(&v.to_le_bytes());
    }
    let high_at = low_at + 2 + 1 + 2;
    if let Some(b) = p.get_mut(high_at..high_at + 2) {
        let v = u16::from_le_bytes([b[0], b[1]]) & !((caps::ZSTD >> 16) as u16);
        b.copy_from_slice(&v.to_le_bytes());
    }
}

/// The client's `HandshakeResponse41`.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub capabilities: u32,
    max_packet: u32,
    pub charset: u8,
    /// The 23 reserved bytes (MariaDB's extended capabilities in the last 4).
    reserved: [u8; 23],
    pub user: Vec<u8>,
    pub auth: Vec<u8>,
    pub database: Option<Vec<u8>>,
    pub plugin: Option<String>,
    /// The connection attributes block as sent (without its length).
    attrs: Option<Vec<u8>>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("capabilities", &format_args!("{:#x}", self.capabilities))
            .field("user", &String::from_utf8_lossy(&self.user))
            .field("auth", &"<redacted>")
            .field("database", &self.database.as_deref().map(String::from_utf8_lossy))
            .field("plugin", &self.plugin)
            .finish()
    }
}

/// A 32-byte response asking for TLS before the real one.
pub fn is_ssl_request(p: &[u8]) -> bool {
    p.len() == 32 && Cursor::new(p).u32().is_some_and(|c| c & caps::SSL != 0)
}

pub fn parse_response(p: &[u8]) -> Result<Response, String> {
    let bad = |what: &str| format!("not a HandshakeResponse41: {what}");
    let mut c = Cursor::new(p);
    let capabilities = c.u32().ok_or_else(|| bad("capabilities"))?;
    if capabilities & caps::PROTOCOL_41 == 0 {
        return Err(bad("a pre-4.1 client"));
    }
    let max_packet = c.u32().ok_or_else(|| bad("max packet"))?;
    let charset = c.u8().ok_or_else(|| bad("character set"))?;
    let reserved: [u8; 23] = c.bytes(23).ok_or_else(|| bad("reserved"))?.try_into().expect("23 bytes");
    let user = c.nul_terminated().ok_or_else(|| bad("user"))?.to_vec();
    let auth = if capabilities & caps::PLUGIN_AUTH_LENENC != 0 {
        c.lenenc_bytes()
    } else if capabilities & caps::SECURE_CONNECTION != 0 {
        c.u8().and_then(|n| c.bytes(usize::from(n)))
    } else {
        c.nul_terminated()
    }
    .ok_or_else(|| bad("auth response"))?
    .to_vec();
    let database = if capabilities & caps::CONNECT_WITH_DB != 0 && !c.is_empty() {
        Some(c.nul_terminated().ok_or_else(|| bad("database"))?.to_vec())
    } else {
        None
    };
    let plugin = if capabilities & caps::PLUGIN_AUTH != 0 && !c.is_empty() {
        Some(String::from_utf8_lossy(c.nul_terminated().ok_or_else(|| bad("plugin"))?).into_owned())
    } else {
        None
    };
    let attrs = if capabilities & caps::CONNECT_ATTRS != 0 && !c.is_empty() {
        Some(c.lenenc_bytes().ok_or_else(|| bad("connection attributes"))?.to_vec())
    } else {
        None
    };
    Ok(Response { capabilities, max_packet, charset, reserved, user, auth, database, plugin, attrs })
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.user.len() + self.auth.len());
        out.extend_from_slice(&self.capabilities.to_le_bytes());
        out.extend_from_slice(&self.max_packet.to_le_bytes());
        out.push(self.charset);
        out.extend_from_slice(&self.reserved);
        out.extend_from_slice(&self.user);
        out.push(0);
        if self.capabilities & caps::PLUGIN_AUTH_LENENC != 0 {
            put_lenenc_bytes(&mut out, &self.auth);
        } else if self.capabilities & caps::SECURE_CONNECTION != 0 {
            out.push(self.auth.len() as u8);
            out.extend_from_slice(&self.auth);
        } else {
            out.extend_from_slice(&self.auth);
            out.push(0);
        }
        if self.capabilities & caps::CONNECT_WITH_DB != 0 {
            out.extend_from_slice(self.database.as_deref().unwrap_or(b""));
            out.push(0);
        }
        if self.capabilities & caps::PLUGIN_AUTH != 0 {
            out.extend_from_slice(self.plugin.as_deref().unwrap_or("").as_bytes());
            out.push(0);
        }
        if let Some(a) = &self.attrs {
            put_lenenc_bytes(&mut out, a);
        }
        out
    }

    /// The plugin the client answered with (`mysql_native_password` when it
    /// names none, as a 4.1 client with a 20-byte answer means).
    pub fn answers_native_password(&self) -> bool {
        self.plugin.as_deref().unwrap_or(NATIVE_PASSWORD) == NATIVE_PASSWORD
            && (self.auth.len() == 20 || self.auth.is_empty())
    }
}

/// `SHA1(password)`: what the proxy keeps to log the client in again. Never
/// printed; overwritten when dropped.
pub struct PasswordSha1([u8; 20]);

impl fmt::Debug for PasswordSha1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordSha1(<redacted>)")
    }
}

impl Drop for PasswordSha1 {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: a valid, aligned, exclusive reference.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn xor(a: &[u8; 20], b: &[u8; 20]) -> [u8; 20] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// The stored form `*` + 40 hex digits of `SHA1(SHA1(pw))`.
pub fn parse_stored_hash(s: &str) -> Option<[u8; 20]> {
    let hex = s.strip_prefix('*')?;
    if hex.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// `SHA1(pw)` from a client's answer to `scramble`, if it matches `stored`.
pub fn recover(answer: &[u8], scramble: &[u8], stored: &[u8; 20]) -> Option<PasswordSha1> {
    let answer: &[u8; 20] = answer.try_into().ok()?;
    let stage1 = xor(answer, &sha1(&[scramble, stored]));
    (sha1(&[&stage1]) == *stored).then_some(PasswordSha1(stage1))
}

/// The answer to `scramble` for the password whose SHA1 is `pw`.
pub fn answer(pw: &PasswordSha1, scramble: &[u8]) -> [u8; 20] {
    let stored = sha1(&[&pw.0]);
    xor(&pw.0, &sha1(&[scramble, &stored]))
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
pub(super) mod tests;
