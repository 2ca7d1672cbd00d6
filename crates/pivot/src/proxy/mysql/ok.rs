//! OK packets and the session-state changes they carry
//! (`CLIENT_SESSION_TRACK`), and their rewriting for a client that did not
//! ask for session tracking (the proxy asks the server for it on every
//! session). Pure.

use super::packet::{put_lenenc, Cursor};

/// Server status flags.
pub mod status {
    pub const IN_TRANS: u16 = 0x0001;
    pub const MORE_RESULTS_EXISTS: u16 = 0x0008;
    pub const IN_TRANS_READONLY: u16 = 0x2000;
    pub const SESSION_STATE_CHANGED: u16 = 0x4000;
}

/// One session-state change reported by the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// `SESSION_TRACK_SYSTEM_VARIABLES`: a session variable and its new value.
    Variable(String, String),
    /// `SESSION_TRACK_SCHEMA`: the new default database.
    Schema(String),
    /// `SESSION_TRACK_STATE_CHANGE`: something in the session changed.
    StateChanged,
    /// GTIDs, transaction characteristics or state: not session state to move.
    Other(u8),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OkPacket {
    pub status: u16,
    pub changes: Vec<Change>,
}

/// An OK packet (`0x00`, or `0xFE` ending a result set under
/// `CLIENT_DEPRECATE_EOF`) as a server sends it to a session that has
/// `CLIENT_SESSION_TRACK`. `None` if it does not parse.
pub fn parse_ok(p: &[u8]) -> Option<OkPacket> {
    let mut c = Cursor::new(p);
    if !matches!(c.u8()?, 0x00 | 0xFE) {
        return None;
    }
    c.lenenc()?; // affected rows
    c.lenenc()?; // last insert id
    let status = c.u16()?;
    c.u16()?; // warnings
    let mut changes = Vec::new();
    if c.is_empty() {
        return Some(OkPacket { status, changes });
    }
    c.lenenc_bytes()?; // info
    if status & status::SESSION_STATE_CHANGED != 0 && !c.is_empty() {
        let mut all = Cursor::new(c.lenenc_bytes()?);
        while !all.is_empty() {
            let kind = all.u8()?;
            let mut data = Cursor::new(all.lenenc_bytes()?);
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            changes.push(match kind {
                0 => Change::Variable(text(data.lenenc_bytes()?), text(data.lenenc_bytes()?)),
                1 => Change::Schema(text(data.lenenc_bytes()?)),
                2 => Change::StateChanged,
                k => Change::Other(k),
            });
        }
    }
    Some(OkPacket { status, changes })
}

/// The OK packet as a client without `CLIENT_SESSION_TRACK` reads it: the
/// info as the rest of the packet, no session state, its flag cleared.
pub fn without_session_state(p: &[u8]) -> Option<Vec<u8>> {
    let mut c = Cursor::new(p);
    let head = c.u8()?;
    let affected = c.lenenc()?;
    let last_id = c.lenenc()?;
    let status = c.u16()? & !status::SESSION_STATE_CHANGED;
    let warnings = c.u16()?;
    let info = if c.is_empty() { &[][..] } else { c.lenenc_bytes()? };
    let mut out = Vec::with_capacity(p.len());
    out.push(head);
    put_lenenc(&mut out, affected);
    put_lenenc(&mut out, last_id);
    out.extend_from_slice(&status.to_le_bytes());
    out.extend_from_slice(&warnings.to_le_bytes());
    out.extend_from_slice(info);
    Some(out)
}

/// The status flags of an EOF packet (`0xFE`, under 9 bytes).
pub fn eof_status(p: &[u8]) -> Option<u16> {
    let mut c = Cursor::new(p);
    (c.u8()? == 0xFE && p.len() < 9).then_some(())?;
    c.u16()?; // warnings
    c.u16()
}

/// An ERR packet with MariaDB's `ER_CONNECTION_KILLED` (1927, `70100`).
pub fn connection_killed(message: &str) -> Vec<u8> {
    let mut p = vec![0xFF];
    p.extend_from_slice(&1927u16.to_le_bytes());
    p.extend_from_slice(b"#70100");
    p.extend_from_slice(message.as_bytes());
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OK MariaDB 10.11 sends for `SET NAMES utf8mb4` with
    /// `session_track_system_variables='*'` and `session_track_state_change=ON`
    /// (status: autocommit, session state changed).
    fn set_names_ok() -> Vec<u8> {
        let mut state = Vec::new();
        for (k, v) in [("character_set_client", "utf8mb4"), ("character_set_results", "utf8mb4")] {
            let mut d = Vec::new();
            super::super::packet::put_lenenc_bytes(&mut d, k.as_bytes());
            super::super::packet::put_lenenc_bytes(&mut d, v.as_bytes());
            state.push(0);
            super::super::packet::put_lenenc_bytes(&mut state, &d);
        }
        state.extend_from_slice(b"\x02\x01\x31"); // state change "1"
        state.extend_from_slice(b"\x01\x05\x04test"); // schema "test"
        let mut p = vec![0x00, 0x00, 0x00, 0x02, 0x40, 0x00, 0x00, 0x00];
        super::super::packet::put_lenenc_bytes(&mut p, &state);
        p
    }

    #[test]
    fn session_state_changes_are_read_from_an_ok_packet() {
        let ok = parse_ok(&set_names_ok()).unwrap();
        assert_eq!(ok.status, 0x4002);
        assert_eq!(
            ok.changes,
            vec![
                Change::Variable("character_set_client".into(), "utf8mb4".into()),
                Change::Variable("character_set_results".into(), "utf8mb4".into()),
                Change::StateChanged,
                Change::Schema("test".into()),
            ]
        );
        // A plain OK: affected 1, insert id 300 (0xFC 2-byte), in a transaction.
        let plain = [0x00, 0x01, 0xFC, 0x2C, 0x01, 0x01, 0x00, 0x00, 0x00];
        assert_eq!(parse_ok(&plain), Some(OkPacket { status: status::IN_TRANS, changes: vec![] }));
        assert_eq!(parse_ok(&[0x00, 0x01]), None, "truncated");
        assert_eq!(parse_ok(&[0xFF, 0x01, 0x02]), None, "an error is no OK");
    }

    #[test]
    fn a_client_without_session_tracking_gets_the_ok_packet_it_expects() {
        let out = without_session_state(&set_names_ok()).unwrap();
        assert_eq!(out, [0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00], "flag cleared, state gone, empty info");
        let mut with_info = vec![0x00, 0x03, 0x00, 0x02, 0x00, 0x01, 0x00];
        super::super::packet::put_lenenc_bytes(&mut with_info, b"Rows matched: 3");
        assert_eq!(&without_session_state(&with_info).unwrap()[7..], b"Rows matched: 3");
    }

    #[test]
    fn eof_status_and_the_killed_error() {
        assert_eq!(eof_status(&[0xFE, 0, 0, 0x0A, 0x00]), Some(0x000A));
        assert_eq!(eof_status(&[0xFE, 1, 2, 3, 4, 5, 6, 7, 8]), None, "a long 0xFE packet is a row");
        let e = connection_killed("moved");
        assert_eq!(&e[..9], b"\xff\x87\x07#70100");
    }
}
