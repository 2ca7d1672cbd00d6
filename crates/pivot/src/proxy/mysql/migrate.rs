//! A client's session re-created on the new primary: the account's stored
//! hash read there with pivot's account, the client's `SHA1(password)`
//! recovered from its login answer and checked against it, a new login
//! answering the new server's scramble, then the session's state restored
//! (session tracking, the changed variables, the default database).

use super::handshake::{self, parse_greeting, parse_stored_hash, PasswordSha1, Response, NATIVE_PASSWORD};
use super::packet::{frame, Cursor};
use super::session::SessionState;
use super::wire::Wire;
use pivot_core::InstanceKey;
use pivot_server::{Credentials, Session};
use std::time::Duration;
use tokio::net::TcpStream;

/// What the client's login left to log it in again elsewhere.
pub struct Login {
    /// The client's `HandshakeResponse41` as the server got it.
    pub response: Response,
    /// The scramble its answer proves the password against.
    pub scramble: Vec<u8>,
}

/// The message of an ERR packet.
pub fn error_message(p: &[u8]) -> String {
    let mut c = Cursor::new(p);
    let (_, code) = (c.u8(), c.u16().unwrap_or(0));
    let rest = c.rest();
    let msg = if rest.first() == Some(&b'#') && rest.len() >= 6 { &rest[6..] } else { rest };
    format!("error {code}: {}", String::from_utf8_lossy(msg))
}

/// `SHA1(password)` of the client, proved by its login answer and the
/// account's stored hash on `target`; `None` for an empty password.
async fn password(
    login: &Login,
    target: &InstanceKey,
    creds: &Credentials,
    timeout: Duration,
) -> Result<Option<PasswordSha1>, String> {
    if login.response.auth.is_empty() {
        return Ok(None);
    }
    let user = String::from_utf8_lossy(&login.response.user).into_owned();
    let mut s = Session::connect(target, creds, timeout)
        .await
        .map_err(|e| format!("pivot's account cannot log in to {target} to read `{user}`'s stored hash: {e}"))?;
    let q = s.dialect.password_hashes_query(&user);
    let rows = s.rows(&q).await.map_err(|e| {
        format!(
            "cannot read `{user}`'s stored hash on {target} (pivot's account needs SELECT on mysql.global_priv): {e}"
        )
    })?;
    let hashes = s.dialect.password_hashes(&rows);
    hashes
        .iter()
        .filter_map(|h| parse_stored_hash(h))
        .find_map(|stored| handshake::recover(&login.response.auth, &login.scramble, &stored))
        .map(Some)
        .ok_or_else(|| {
            format!(
                "no mysql_native_password hash of `{user}` on {target} matches the client's login (password changed?)"
            )
        })
}

/// Read the next packet or fail naming `what`.
async fn next(w: &mut Wire, what: &str) -> Result<(u8, Vec<u8>), String> {
    match w.read_packet().await {
        Ok(Some((h, p))) => Ok((h.seq, p)),
        Ok(None) => Err(format!("the new primary closed the connection during {what}")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

async fn send(w: &Wire, seq: u8, payload: &[u8]) -> Result<(), String> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    frame(seq, payload, &mut out);
    w.write_all(&out).await.map_err(|e| format!("writing to the new primary: {e}"))
}

/// One command whose answer must be OK.
async fn command(w: &mut Wire, payload: &[u8], what: &str) -> Result<(), String> {
    send(w, 0, payload).await?;
    let (_, p) = next(w, what).await?;
    match p.first() {
        Some(0x00) => Ok(()),
        Some(0xFF) => Err(format!("{what} failed: {}", error_message(&p))),
        _ => Err(format!("{what}: an unexpected answer")),
    }
}

/// Log the client in on `target` and restore `state`; the connection is
/// ready for the client's next command.
pub async fn migrate(
    login: &Login,
    state: &SessionState,
    target: &InstanceKey,
    creds: &Credentials,
    timeout: Duration,
) -> Result<Wire, String> {
    tokio::time::timeout(timeout, async {
        let pw = password(login, target, creds, timeout).await?;
        let stream = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| format!("cannot connect to {target}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let mut w = Wire::new(stream);
        let (_, g) = next(&mut w, "the greeting").await?;
        let greeting = parse_greeting(&g).map_err(|e| format!("{target}: {e}"))?;
        let version = pivot_core::version::ServerVersion::parse(&greeting.server_version, "")
            .map_err(|e| format!("{target}: {e}"))?;
        let dialect = pivot_dialect::Dialect::for_version(&version);
        let answer = |scramble: &[u8]| pw.as_ref().map_or(Vec::new(), |pw| handshake::answer(pw, scramble).to_vec());
        let mut response = login.response.clone();
        response.auth = answer(&greeting.scramble);
        response.plugin = Some(NATIVE_PASSWORD.to_string());
        send(&w, 1, &response.encode()).await?;
        let (seq, p) = next(&mut w, "the login").await?;
        match p.first() {
            Some(0x00) => {}
            Some(0xFE) => {
                // Switch to mysql_native_password with a new scramble.
                let mut c = Cursor::new(&p[1..]);
                let plugin = c.nul_terminated().unwrap_or_default();
                if plugin != NATIVE_PASSWORD.as_bytes() {
                    return Err(format!(
                        "{target} asks for the `{}` plugin: only mysql_native_password moves",
                        String::from_utf8_lossy(plugin)
                    ));
                }
                let data = c.rest();
                let scramble = &data[..data.len().min(20)];
                send(&w, seq.wrapping_add(1), &answer(scramble)).await?;
                let (_, p) = next(&mut w, "the login").await?;
                if p.first() != Some(&0x00) {
                    return Err(format!("login refused by {target}: {}", error_message(&p)));
                }
            }
            _ => return Err(format!("login refused by {target}: {}", error_message(&p))),
        }
        let restore = dialect.restore_session(&state.variables)?;
        let mut q = vec![0x03];
        q.extend_from_slice(restore.text().as_bytes());
        command(&mut w, &q, "restoring the session's variables").await?;
        let login_db = login.response.database.as_deref().filter(|d| !d.is_empty());
        if let Some(schema) = &state.schema {
            if login_db != Some(schema.as_bytes()) {
                let mut init = vec![0x02];
                init.extend_from_slice(schema.as_bytes());
                command(&mut w, &init, "restoring the default database").await?;
            }
        }
        Ok(w)
    })
    .await
    .map_err(|_| format!("moving the session to {target} took longer than {timeout:?}"))?
}
