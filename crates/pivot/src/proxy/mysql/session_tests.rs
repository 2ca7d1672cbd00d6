//! The tracker against packet sequences as MariaDB 10.11 sends them.

use super::*;
use crate::proxy::mysql::packet::put_lenenc_bytes;

const OK_AUTOCOMMIT: &[u8] = &[0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00];
const OK_IN_TRANS: &[u8] = &[0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00];
const EOF_AUTOCOMMIT: &[u8] = &[0xFE, 0x00, 0x00, 0x02, 0x00];
const EOF_END_OK: &[u8] = &[0xFE, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00];
const COLUMN_DEF: &[u8] = b"\x03def\x00\x00\x00\x01x\x00\x0c\x3f\x00\x01\x00\x00\x00\x08\x81\x00\x00\x00\x00";
const ERR: &[u8] = b"\xff\x7a\x04#42S02Table 'test.t' doesn't exist";

fn query(q: &str) -> Vec<u8> {
    let mut p = vec![0x03];
    p.extend_from_slice(q.as_bytes());
    p
}

/// Feed the server's packets; returns after which packet (index) the
/// response ended, if it did.
fn feed(t: &mut Tracker, packets: &[&[u8]]) -> Option<usize> {
    for (i, p) in packets.iter().enumerate() {
        t.server(p, p.len());
        if t.idle() {
            return Some(i);
        }
    }
    None
}

fn ok_with_state(status: u16, entries: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut state = Vec::new();
    for (kind, data) in entries {
        state.push(*kind);
        put_lenenc_bytes(&mut state, data);
    }
    let mut p = vec![0x00, 0x00, 0x00];
    p.extend_from_slice(&(status | ok::status::SESSION_STATE_CHANGED).to_le_bytes());
    p.extend_from_slice(&[0, 0, 0]); // warnings, empty info
    put_lenenc_bytes(&mut p, &state);
    p
}

fn var(name: &str, value: &str) -> (u8, Vec<u8>) {
    let mut d = Vec::new();
    put_lenenc_bytes(&mut d, name.as_bytes());
    put_lenenc_bytes(&mut d, value.as_bytes());
    (0, d)
}

fn schema(name: &str) -> (u8, Vec<u8>) {
    let mut d = Vec::new();
    put_lenenc_bytes(&mut d, name.as_bytes());
    (1, d)
}

const STATE_CHANGED: (u8, &[u8]) = (2, b"\x011");

#[test]
fn a_result_set_ends_at_its_terminator_with_and_without_deprecate_eof() {
    // CLIENT_DEPRECATE_EOF: count, definition, rows (one starting with 0x00:
    // an empty string), the 0xFE OK.
    let mut t = Tracker::new(true, 2, None);
    assert_eq!(t.command(&query("SELECT x FROM t")), Expect::Response);
    let rows: [&[u8]; 5] = [b"\x01", COLUMN_DEF, b"\x011", b"\x00", EOF_END_OK];
    assert_eq!(feed(&mut t, &rows), Some(4));
    // Classic: count, definition, EOF, rows, EOF.
    let mut t = Tracker::new(false, 2, None);
    t.command(&query("SELECT x FROM t"));
    let rows: [&[u8]; 6] = [b"\x01", COLUMN_DEF, EOF_AUTOCOMMIT, b"\x011", b"\x012", EOF_AUTOCOMMIT];
    assert_eq!(feed(&mut t, &rows), Some(5), "the EOF after the definitions does not end it");
}

#[test]
fn multiple_results_continue_while_the_server_says_more_exist() {
    let mut t = Tracker::new(true, 2, None);
    t.command(&query("CALL p()"));
    let more_ok: &[u8] = &[0x00, 0x01, 0x00, 0x0A, 0x00, 0x00, 0x00];
    let more_end: &[u8] = &[0xFE, 0x00, 0x00, 0x0A, 0x00, 0x00, 0x00];
    let seq: [&[u8]; 6] = [more_ok, b"\x01", COLUMN_DEF, b"\x011", more_end, OK_AUTOCOMMIT];
    assert_eq!(feed(&mut t, &seq), Some(5));
    let mut t = Tracker::new(true, 2, None);
    t.command(&query("CALL p()"));
    assert_eq!(feed(&mut t, &[more_ok, ERR]), Some(1), "an error ends the chain");
}

#[test]
fn status_flags_say_whether_a_transaction_is_open() {
    let mut t = Tracker::new(true, 2, None);
    assert!(!t.in_transaction());
    t.command(&query("BEGIN"));
    feed(&mut t, &[OK_IN_TRANS]);
    assert!(t.in_transaction() && t.idle());
    t.command(&query("UPDATE t SET x = 1"));
    feed(&mut t, &[ERR]);
    assert!(t.in_transaction(), "an error keeps the last known status");
    t.command(&query("COMMIT"));
    feed(&mut t, &[OK_AUTOCOMMIT]);
    assert!(!t.in_transaction());
    let ro = [0x00, 0x00, 0x00, 0x02, 0x20, 0x00, 0x00];
    t.command(&query("START TRANSACTION READ ONLY"));
    feed(&mut t, &[&ro]);
    assert!(t.in_transaction(), "a read-only transaction is one too");
    assert_eq!(t.unmovable(), None);
}

#[test]
fn tracked_variables_and_schema_become_the_state_to_restore() {
    let mut t = Tracker::new(true, 2, Some("test".into()));
    t.command(&query("SET NAMES utf8mb4"));
    let ok = ok_with_state(
        2,
        &[
            var("character_set_client", "utf8mb4"),
            var("collation_connection", "utf8mb4_general_ci"),
            (STATE_CHANGED.0, STATE_CHANGED.1.to_vec()),
        ],
    );
    assert_eq!(feed(&mut t, &[&ok]), Some(0));
    t.command(&query("SET SESSION sql_mode = 'ANSI'"));
    feed(&mut t, &[&ok_with_state(2, &[var("sql_mode", "ANSI")])]);
    t.command(&query("SET NAMES latin1"));
    feed(&mut t, &[&ok_with_state(2, &[var("character_set_client", "latin1")])]);
    t.command(&[&[0x02u8][..], b"other"].concat());
    feed(&mut t, &[&ok_with_state(2, &[schema("other"), (2, b"\x011".to_vec())])]);
    assert_eq!(t.state().schema.as_deref(), Some("other"));
    assert_eq!(
        t.state().variables,
        vec![
            ("collation_connection".into(), "utf8mb4_general_ci".into()),
            ("sql_mode".into(), "ANSI".into()),
            ("character_set_client".into(), "latin1".into()),
        ],
        "each variable once, in the order of its last change"
    );
    assert_eq!(t.unmovable(), None);
}

#[test]
fn state_the_server_cannot_describe_makes_the_session_unmovable() {
    let cases: [(&str, Reason); 7] = [
        ("SET @x = 1", Reason::UserVariable),
        ("SELECT GET_LOCK('a', 1)", Reason::Lock),
        ("LOCK TABLES t WRITE", Reason::Lock),
        ("CREATE TEMPORARY TABLE tt (a int)", Reason::TemporaryTable),
        ("PREPARE s FROM 'SELECT 1'", Reason::Prepared),
        ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", Reason::SessionState),
        ("SET SESSION session_track_schema = OFF", Reason::Untracked),
    ];
    for (q, reason) in cases {
        let mut t = Tracker::new(true, 2, None);
        t.command(&query(q));
        let ok = if q.contains("session_track") {
            ok_with_state(2, &[var("session_track_schema", "OFF")])
        } else {
            OK_AUTOCOMMIT.to_vec()
        };
        feed(&mut t, &[&ok]);
        assert_eq!(t.unmovable(), Some(reason), "{q}");
    }
    // The server says the state changed without saying what.
    let mut t = Tracker::new(true, 2, None);
    t.command(&query("DO 1"));
    feed(&mut t, &[&ok_with_state(2, &[(2, b"\x011".to_vec())])]);
    assert_eq!(t.unmovable(), Some(Reason::SessionState));
    // System variables and e-mail-free queries are fine.
    let mut t = Tracker::new(true, 2, None);
    t.command(&query("SELECT @@server_id, c FROM sbtest1 WHERE id = 7"));
    assert_eq!(t.unmovable(), None);
}

#[test]
fn a_prepared_statement_is_followed_and_unmovable() {
    let mut t = Tracker::new(true, 2, None);
    let mut prep = vec![0x16];
    prep.extend_from_slice(b"SELECT ? + ?");
    assert_eq!(t.command(&prep), Expect::Response);
    // stmt 1, 1 column, 2 parameters.
    let head: &[u8] = &[0x00, 0x01, 0, 0, 0, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00];
    assert_eq!(feed(&mut t, &[head, COLUMN_DEF, COLUMN_DEF, COLUMN_DEF]), Some(3));
    assert_eq!(t.unmovable(), Some(Reason::Prepared));
    // Without deprecate EOF: an EOF after each block.
    let mut t = Tracker::new(false, 2, None);
    t.command(&prep);
    let seq: [&[u8]; 6] = [head, COLUMN_DEF, COLUMN_DEF, EOF_AUTOCOMMIT, COLUMN_DEF, EOF_AUTOCOMMIT];
    assert_eq!(feed(&mut t, &seq), Some(5));
    // Execute (no cursor) answers like a query; close answers nothing.
    let exec = [0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0];
    assert_eq!(t.command(&exec), Expect::Response);
    assert_eq!(feed(&mut t, &[OK_AUTOCOMMIT]), Some(0));
    assert_eq!(t.command(&[0x19, 1, 0, 0, 0]), Expect::Nothing);
    assert!(t.idle());
    let cursor = [0x17, 1, 0, 0, 0, 1, 1, 0, 0, 0];
    assert_eq!(t.command(&cursor), Expect::Opaque, "a cursor is not followed");
}

#[test]
fn load_data_local_waits_for_the_clients_file_then_the_servers_ok() {
    let mut t = Tracker::new(true, 2, None);
    t.command(&query("LOAD DATA LOCAL INFILE 'x' INTO TABLE t"));
    feed(&mut t, &[b"\xfbx"]);
    assert!(t.awaits_client());
    t.client_data(100);
    assert!(t.awaits_client());
    t.client_data(0);
    assert!(!t.awaits_client() && !t.idle());
    assert_eq!(feed(&mut t, &[OK_AUTOCOMMIT]), Some(0));
}

#[test]
fn other_commands_and_errors() {
    let mut t = Tracker::new(true, 2, None);
    assert_eq!(t.command(&[0x0E]), Expect::Response); // ping
    assert_eq!(feed(&mut t, &[OK_AUTOCOMMIT]), Some(0));
    assert_eq!(t.command(&[0x01]), Expect::Quit);
    let mut t = Tracker::new(true, 2, None);
    assert_eq!(t.command(&[0x11, b'u', 0]), Expect::Opaque, "change user");
    assert_eq!(t.unmovable(), Some(Reason::Unfollowed));
    let mut t = Tracker::new(true, 2, None);
    t.command(&query("SELECT x FROM t"));
    assert_eq!(feed(&mut t, &[b"\x01", COLUMN_DEF, b"\x011", ERR]), Some(3), "an error in the rows ends it");
    t.command(&[0x1F]);
    feed(&mut t, &[OK_AUTOCOMMIT]);
    assert_eq!(t.unmovable(), Some(Reason::SessionState), "a reset connection");
}

#[test]
fn a_long_row_is_not_mistaken_for_a_terminator() {
    let mut t = Tracker::new(true, 2, None);
    t.command(&query("SELECT big FROM t"));
    t.server(b"\x01", 1);
    t.server(COLUMN_DEF, COLUMN_DEF.len());
    // A row of 2^24-1 bytes whose continuation starts with 0xFE.
    t.server(b"\xfe\xff\xff\xff\x00", MAX_PAYLOAD);
    t.server(b"\xfe\x00\x00\x02\x00\x00\x00", 7);
    assert!(!t.idle(), "the continuation is part of the row");
    t.server(EOF_END_OK, EOF_END_OK.len());
    assert!(t.idle());
}
