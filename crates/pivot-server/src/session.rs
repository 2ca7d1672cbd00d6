//! One connection to one instance, with a timeout on every call.

use crate::credentials::Credentials;
use crate::errors::SessionError;
use crate::greeting;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row, Value};
use pivot_core::{InstanceKey, ServerVersion};
use pivot_dialect::{Dialect, Sql, TextRow};
use std::future::Future;
use std::time::Duration;

/// A connection plus the dialect of the server behind it. After any error or
/// timeout the session must be dropped: its protocol state is unknown.
pub struct Session {
    conn: Option<Conn>,
    pub key: InstanceKey,
    pub version: ServerVersion,
    pub dialect: Dialect,
    timeout: Duration,
}

impl Session {
    /// Connect and learn the server's version. `timeout` bounds the connect and
    /// becomes the default for every later call.
    pub async fn connect(key: &InstanceKey, creds: &Credentials, timeout: Duration) -> Result<Session, SessionError> {
        let opts = OptsBuilder::default()
            .ip_or_hostname(key.host.clone())
            .tcp_port(key.port)
            .user(Some(creds.user.clone()))
            .pass(Some(creds.password.expose().to_string()))
            // Never switch to a Unix socket behind pivot's back: faults are
            // injected on the network path pivot is configured with.
            .prefer_socket(false)
            .stmt_cache_size(0)
            .tcp_nodelay(true);
        let mut conn = match bounded(timeout, Conn::new(opts)).await {
            Ok(conn) => conn,
            Err(e) if greeting::worth_a_look(&e) => return Err(greeting::explain(key, e, None).await),
            Err(e) => return Err(e),
        };
        let version_query = Dialect::version_query();
        let row = match bounded(timeout, conn.query_first::<Row, _>(version_query.text())).await {
            Ok(Some(row)) => to_text_row(row),
            Ok(None) => return Err(SessionError::Unexpected(format!("{version_query} returned no row"))),
            Err(e) => {
                discard(conn);
                return Err(e);
            }
        };
        let version = pivot_dialect::parse_version(&row).map_err(|e| SessionError::Unexpected(e.to_string()))?;
        let dialect = Dialect::for_version(&version);
        Ok(Session { conn: Some(conn), key: key.clone(), version, dialect, timeout })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The server's id for this connection (for `KILL` exclusions).
    pub fn connection_id(&self) -> Option<u32> {
        self.conn.as_ref().map(Conn::id)
    }

    /// Run a query and return its rows as text.
    pub async fn rows(&mut self, sql: &Sql) -> Result<Vec<TextRow>, SessionError> {
        let timeout = self.timeout;
        self.rows_within(sql, timeout).await
    }

    pub async fn rows_within(&mut self, sql: &Sql, timeout: Duration) -> Result<Vec<TextRow>, SessionError> {
        let conn = self.conn.as_mut().ok_or_else(|| SessionError::Unexpected("session already failed".into()))?;
        let result = bounded(timeout, conn.query::<Row, _>(sql.text())).await;
        match result {
            Ok(rows) => Ok(rows.into_iter().map(to_text_row).collect()),
            Err(e) => {
                self.poison_unless_server_error(&e);
                Err(e)
            }
        }
    }

    /// Run a statement that returns no rows.
    pub async fn exec(&mut self, sql: &Sql) -> Result<(), SessionError> {
        let timeout = self.timeout;
        self.exec_within(sql, timeout).await
    }

    pub async fn exec_within(&mut self, sql: &Sql, timeout: Duration) -> Result<(), SessionError> {
        let conn = self.conn.as_mut().ok_or_else(|| SessionError::Unexpected("session already failed".into()))?;
        match bounded(timeout, conn.query_drop(sql.text())).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.poison_unless_server_error(&e);
                Err(e)
            }
        }
    }

    pub fn is_usable(&self) -> bool {
        self.conn.is_some()
    }

    /// A server error leaves the protocol in a known state; anything else
    /// (timeout, broken connection) does not, and the connection is dropped.
    fn poison_unless_server_error(&mut self, e: &SessionError) {
        if !e.is_server_error() {
            self.poison();
        }
    }

    /// Give up the connection without waiting for a possibly hung server.
    fn poison(&mut self) {
        if let Some(conn) = self.conn.take() {
            discard(conn);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.poison();
    }
}

/// Close a connection in the background, bounded: a hung server must not keep
/// tasks and sockets alive forever.
fn discard(conn: Conn) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            // disconnect() marks the connection closed before writing COM_QUIT,
            // so dropping it on timeout does not spawn the driver's own cleanup.
            let _ = tokio::time::timeout(Duration::from_millis(500), conn.disconnect()).await;
        });
    }
}

async fn bounded<T>(
    timeout: Duration,
    fut: impl Future<Output = Result<T, mysql_async::Error>>,
) -> Result<T, SessionError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r.map_err(SessionError::from),
        Err(_) => Err(SessionError::Timeout(timeout.as_millis() as u64)),
    }
}

fn to_text_row(row: Row) -> TextRow {
    let columns = row.columns_ref().iter().map(|c| c.name_str().into_owned()).collect::<Vec<_>>();
    let values = row.unwrap();
    columns
        .into_iter()
        .zip(values)
        .map(|(name, value)| {
            let text = match value {
                Value::NULL => None,
                Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                Value::Int(i) => Some(i.to_string()),
                Value::UInt(u) => Some(u.to_string()),
                Value::Float(f) => Some(f.to_string()),
                Value::Double(d) => Some(d.to_string()),
                other => Some(format!("{other:?}")),
            };
            (name, text)
        })
        .collect()
}
