use super::*;

/// A MariaDB 10.11 greeting as sent on the wire (payload only): version
/// `5.5.5-10.11.6-MariaDB-0+deb12u1`, connection 9, scramble
/// `&"pJ,sWq` + `0/V>e%3:hn[W`, plugin `mysql_native_password`.
pub(crate) const MARIADB_GREETING: &[u8] = b"\x0a5.5.5-10.11.6-MariaDB-0+deb12u1\x00\x09\x00\x00\x00&\"pJ,sWq\x00\xfe\xf7\x2d\x02\x00\xff\x81\x15\x00\x00\x00\x00\x00\x00\x1d\x00\x00\x000/V>e%3:hn[W\x00mysql_native_password\x00";

#[test]
fn a_mariadb_greeting_gives_its_scramble_capabilities_and_plugin() {
    let g = parse_greeting(MARIADB_GREETING).unwrap();
    assert_eq!(g.server_version, "5.5.5-10.11.6-MariaDB-0+deb12u1");
    assert_eq!(g.connection_id, 9);
    assert_eq!(g.scramble, b"&\"pJ,sWq0/V>e%3:hn[W");
    assert_eq!(g.plugin, NATIVE_PASSWORD);
    assert_eq!(g.capabilities & caps::CLIENT_MYSQL, 0, "MariaDB says its extended bytes are set");
    assert_ne!(g.capabilities & caps::SESSION_TRACK, 0);
    assert_ne!(g.capabilities & caps::DEPRECATE_EOF, 0);
    assert_eq!(g.mariadb_caps_at, Some(MARIADB_GREETING.len() - 13 - 22 - 4));
}

#[test]
fn the_restricted_greeting_hides_progress_reports_metadata_caching_and_compression() {
    let mut p = MARIADB_GREETING.to_vec();
    let g = parse_greeting(&p).unwrap();
    assert_ne!(g.capabilities & caps::COMPRESS, 0);
    restrict_greeting(&mut p, &g);
    let r = parse_greeting(&p).unwrap();
    assert_eq!(r.capabilities, g.capabilities & !caps::COMPRESS);
    let at = g.mariadb_caps_at.unwrap();
    assert_eq!(&p[at..at + 4], &[0x08, 0, 0, 0], "only the extended type info is left (0x1d had 1, 4, 8, 16)");
    assert_eq!(r.scramble, g.scramble);
}

#[test]
fn a_greeting_that_is_not_protocol_10_is_refused() {
    assert!(parse_greeting(b"\x09abc").is_err());
    assert!(parse_greeting(&MARIADB_GREETING[..20]).is_err());
    assert!(parse_greeting(b"\xff\x15\x04#HY000Host blocked").is_err(), "an error instead of a greeting");
}

fn client_response(db: Option<&str>) -> Vec<u8> {
    let mut caps = caps::PROTOCOL_41
        | caps::SECURE_CONNECTION
        | caps::PLUGIN_AUTH
        | caps::PLUGIN_AUTH_LENENC
        | caps::CONNECT_ATTRS
        | caps::DEPRECATE_EOF;
    if db.is_some() {
        caps |= caps::CONNECT_WITH_DB;
    }
    let mut p = Vec::new();
    p.extend_from_slice(&caps.to_le_bytes());
    p.extend_from_slice(&(16u32 << 20).to_le_bytes());
    p.push(45); // utf8mb4_general_ci
    p.extend_from_slice(&[0u8; 19]);
    p.extend_from_slice(&[0x08, 0, 0, 0]);
    p.extend_from_slice(b"app\0");
    p.push(20);
    p.extend_from_slice(&[0xAB; 20]);
    if let Some(db) = db {
        p.extend_from_slice(db.as_bytes());
        p.push(0);
    }
    p.extend_from_slice(b"mysql_native_password\0");
    p.extend_from_slice(b"\x0d\x04_pid\x0712345xx");
    p
}

#[test]
fn a_client_response_is_read_and_written_back_byte_for_byte() {
    for db in [None, Some("test")] {
        let p = client_response(db);
        let r = parse_response(&p).unwrap();
        assert_eq!(r.user, b"app");
        assert_eq!(r.auth, [0xAB; 20]);
        assert_eq!(r.database.as_deref(), db.map(str::as_bytes));
        assert_eq!(r.plugin.as_deref(), Some(NATIVE_PASSWORD));
        assert!(r.answers_native_password());
        assert_eq!(r.encode(), p, "re-encoded unchanged");
        assert!(!format!("{r:?}").contains("171"), "the auth answer never prints");
    }
}

#[test]
fn other_plugins_and_tls_requests_are_recognised() {
    let mut r = parse_response(&client_response(None)).unwrap();
    r.plugin = Some("client_ed25519".into());
    assert!(!r.answers_native_password());
    let mut ssl = Vec::new();
    ssl.extend_from_slice(&(caps::PROTOCOL_41 | caps::SSL).to_le_bytes());
    ssl.extend_from_slice(&[0u8; 28]);
    assert!(is_ssl_request(&ssl));
    assert!(!is_ssl_request(&client_response(None)));
    assert!(parse_response(&[0, 0, 0, 0]).is_err(), "a pre-4.1 or truncated response is refused");
}

/// MySQL's `PASSWORD('password')` is `*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19`.
#[test]
fn the_native_password_math_recovers_sha1_of_the_password_only_with_the_right_stored_hash() {
    let stored = parse_stored_hash("*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19").unwrap();
    assert_eq!(sha1(&[&sha1(&[b"password"])]), stored, "the known test vector");
    let pw = PasswordSha1(sha1(&[b"password"]));
    let scramble_a = b"&\"pJ,sWq0/V>e%3:hn[W";
    let client_answer = answer(&pw, scramble_a);
    let recovered = recover(&client_answer, scramble_a, &stored).expect("recovered");
    assert_eq!(recovered.0, pw.0);
    let scramble_b = b"abcdefghij0123456789";
    assert_eq!(answer(&recovered, scramble_b), answer(&pw, scramble_b), "answers another server's scramble");
    let other = parse_stored_hash("*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9").unwrap(); // '123456'
    assert!(recover(&client_answer, scramble_a, &other).is_none(), "another account's hash does not verify");
    assert!(recover(&client_answer[..19], scramble_a, &stored).is_none());
    assert!(!format!("{recovered:?}").contains("5BAA"), "never printed");
}

#[test]
fn stored_hashes_must_be_the_native_form() {
    assert!(parse_stored_hash("2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19").is_none());
    assert!(parse_stored_hash("*2470C0").is_none());
    assert!(parse_stored_hash("*ZZ70C0C06DEE42FD1618BB99005ADCA2EC9D1E19").is_none());
    assert!(parse_stored_hash("").is_none());
}
