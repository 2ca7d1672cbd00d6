//! Turning driver errors into what the analysis understands.

use pivot_core::observation::{FailureKind, ProbeFailure};
use std::io::ErrorKind;

/// Why a session call failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("timed out after {0} ms")]
    Timeout(u64),
    #[error("{}", driver_message(.0))]
    Driver(#[from] mysql_async::Error),
    #[error("{0}")]
    Unexpected(String),
    /// Something other than a MySQL server answered (see [`crate::greeting`]).
    #[error("{0}")]
    NotMySql(String),
    /// The connection was accepted but no greeting came: a hung server, or
    /// not a MySQL server.
    #[error("{0}")]
    NoGreeting(String),
}

impl SessionError {
    /// The server answered with an error: the connection is still usable.
    pub fn is_server_error(&self) -> bool {
        matches!(self, SessionError::Driver(mysql_async::Error::Server(_)))
    }

    /// The server's error number, if it answered with one.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            SessionError::Driver(mysql_async::Error::Server(s)) => Some(s.code),
            _ => None,
        }
    }

    pub fn failure(&self) -> ProbeFailure {
        classify(self)
    }
}

/// Classify a failure: a dead or hung server, or a problem of pivot's own
/// (credentials, privileges) that says nothing about the server's health.
pub fn classify(err: &SessionError) -> ProbeFailure {
    let kind = match err {
        SessionError::Timeout(_) => FailureKind::Timeout,
        SessionError::Unexpected(_) => FailureKind::Query,
        // As the driver's protocol errors and timeouts these replace were.
        SessionError::NotMySql(_) => FailureKind::Network,
        SessionError::NoGreeting(_) => FailureKind::Timeout,
        SessionError::Driver(e) => match e {
            mysql_async::Error::Io(mysql_async::IoError::Io(io)) => match io.kind() {
                ErrorKind::ConnectionRefused => FailureKind::Refused,
                ErrorKind::TimedOut | ErrorKind::WouldBlock => FailureKind::Timeout,
                _ => FailureKind::Network,
            },
            mysql_async::Error::Server(s) => match s.code {
                // Access denied, no access to the database, host not allowed, host blocked.
                1044 | 1045 | 1130 | 1129 | 1698 => FailureKind::AccessDenied,
                _ => FailureKind::Query,
            },
            mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed) => FailureKind::Network,
            mysql_async::Error::Driver(_) => FailureKind::Network,
            mysql_async::Error::Other(_) | mysql_async::Error::Url(_) => FailureKind::Query,
        },
    };
    ProbeFailure { kind, message: message(err) }
}

fn message(err: &SessionError) -> String {
    err.to_string()
}

/// The error in words, without the driver's repeated "Input/output error" prefixes.
fn driver_message(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => io.to_string(),
        mysql_async::Error::Server(s) => format!("error {}: {}", s.code, s.message),
        other => other.to_string(),
    }
}
