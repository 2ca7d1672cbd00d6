//! The session tracker: fed every packet a session exchanges after login,
//! it knows where each command's response ends (result sets, multi-results,
//! prepared statements, LOAD DATA LOCAL), the server's status flags (in a
//! transaction or not), the state a new server session must be given (the
//! default database and the session variables the client changed, read from
//! the server's session-state tracking), and the state that cannot be moved.
//! Pure: bytes in, decisions out.

use super::ok::{self, status, Change};
use super::packet::{Cursor, MAX_PAYLOAD};

/// Why a session could not be moved to the new primary (it was ended).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// TLS or compression: the proxy cannot read the packets.
    Unreadable,
    /// An authentication plugin other than `mysql_native_password`.
    AuthPlugin,
    /// The server would not track the session's state.
    Untracked,
    Prepared,
    UserVariable,
    TemporaryTable,
    /// `GET_LOCK`, `LOCK TABLES`.
    Lock,
    /// Other state the server reported as changed, `SET TRANSACTION`,
    /// `COM_SET_OPTION`, `COM_RESET_CONNECTION`.
    SessionState,
    /// A command the tracker does not follow (`COM_CHANGE_USER`, cursors,
    /// replication, pipelining).
    Unfollowed,
    /// Still in a transaction (or a command) at the grace deadline.
    Transaction,
    /// Logging in on the new primary or restoring the state failed.
    MigrationFailed,
    /// No new primary within the hold timeout.
    HoldTimeout,
}

impl Reason {
    pub const ALL: [Reason; 12] = [
        Reason::Unreadable,
        Reason::AuthPlugin,
        Reason::Untracked,
        Reason::Prepared,
        Reason::UserVariable,
        Reason::TemporaryTable,
        Reason::Lock,
        Reason::SessionState,
        Reason::Unfollowed,
        Reason::Transaction,
        Reason::MigrationFailed,
        Reason::HoldTimeout,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::Unreadable => "unreadable",
            Reason::AuthPlugin => "auth_plugin",
            Reason::Untracked => "untracked",
            Reason::Prepared => "prepared_statement",
            Reason::UserVariable => "user_variable",
            Reason::TemporaryTable => "temporary_table",
            Reason::Lock => "lock",
            Reason::SessionState => "session_state",
            Reason::Unfollowed => "unfollowed",
            Reason::Transaction => "transaction",
            Reason::MigrationFailed => "migration_failed",
            Reason::HoldTimeout => "hold_timeout",
        }
    }
}

/// What a client command asks of the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Response,
    /// `COM_STMT_CLOSE`, `COM_STMT_SEND_LONG_DATA`: no answer.
    Nothing,
    Quit,
    /// The tracker cannot follow this: pass bytes from now on.
    Opaque,
}

/// After definitions (columns, parameters): what comes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    Rows,
    Columns(u64),
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    /// The first packet of a result: OK, ERR, `0xFB` (send a file), or a column count.
    Result,
    Defs {
        left: u64,
        next: Next,
    },
    EofThen(Next),
    Rows,
    /// Any one packet ends the response.
    One,
    /// Until an EOF or ERR (`COM_FIELD_LIST`).
    UntilEof,
    /// The first packet of a `COM_STMT_PREPARE` response.
    Prepared,
    /// The client sends a file (LOAD DATA LOCAL) until an empty packet.
    Infile,
}

/// The state a new server session is given: set up by the login, then the
/// default database and session variables changed since (in order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionState {
    pub schema: Option<String>,
    pub variables: Vec<(String, String)>,
}

pub struct Tracker {
    deprecate_eof: bool,
    phase: Phase,
    server_continues: bool,
    client_continues: bool,
    status: u16,
    state: SessionState,
    unmovable: Option<Reason>,
}

/// Words in a query that make a session's state unmovable, lower case. A
/// false alarm only ends a session that could have moved.
const UNMOVABLE_WORDS: &[(&str, Reason)] = &[
    ("get_lock", Reason::Lock),
    ("lock table", Reason::Lock),
    ("temporary", Reason::TemporaryTable),
    ("prepare", Reason::Prepared),
    ("set transaction", Reason::SessionState),
];

/// `@name` (a user variable), not `@@name` (a system variable).
fn names_user_variable(q: &[u8]) -> bool {
    q.iter().enumerate().any(|(i, &b)| b == b'@' && q.get(i + 1) != Some(&b'@') && (i == 0 || q[i - 1] != b'@'))
}

fn contains(hay: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    hay.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

impl Tracker {
    /// After a login whose OK had `status`, with `schema` the database the
    /// client named (if any).
    pub fn new(deprecate_eof: bool, status: u16, schema: Option<String>) -> Tracker {
        Tracker {
            deprecate_eof,
            phase: Phase::Idle,
            server_continues: false,
            client_continues: false,
            status,
            state: SessionState { schema, variables: Vec::new() },
            unmovable: None,
        }
    }

    pub fn idle(&self) -> bool {
        self.phase == Phase::Idle
    }

    pub fn in_transaction(&self) -> bool {
        self.status & (status::IN_TRANS | status::IN_TRANS_READONLY) != 0
    }

    /// The server's status flags, as last reported.
    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn awaits_client(&self) -> bool {
        self.phase == Phase::Infile
    }

    pub fn unmovable(&self) -> Option<Reason> {
        self.unmovable
    }

    pub fn mark_unmovable(&mut self, r: Reason) {
        self.unmovable.get_or_insert(r);
    }

    pub fn state(&self) -> &SessionState {
        &self.state
    }

    /// A client command (the first packet's payload, seq 0), while idle.
    pub fn command(&mut self, p: &[u8]) -> Expect {
        let (phase, expect) = match p.first().copied() {
            Some(0x01) => (Phase::Idle, Expect::Quit),
            Some(0x02) | Some(0x0E) | Some(0x09) | Some(0x1A) => (Phase::One, Expect::Response),
            Some(0x03) => {
                if self.unmovable.is_none() {
                    let q = &p[1..];
                    if names_user_variable(q) {
                        self.mark_unmovable(Reason::UserVariable);
                    }
                    if let Some((_, r)) = UNMOVABLE_WORDS.iter().find(|(w, _)| contains(q, w)) {
                        self.mark_unmovable(*r);
                    }
                }
                (Phase::Result, Expect::Response)
            }
            Some(0x04) => (Phase::UntilEof, Expect::Response),
            Some(0x16) => {
                self.mark_unmovable(Reason::Prepared);
                (Phase::Prepared, Expect::Response)
            }
            // Execute without a cursor (flags byte 0); with one, rows come by fetch.
            Some(0x17) if p.get(5) == Some(&0) => (Phase::Result, Expect::Response),
            Some(0x18) | Some(0x19) => (Phase::Idle, Expect::Nothing),
            Some(0x1B) | Some(0x1F) => {
                self.mark_unmovable(Reason::SessionState);
                (Phase::One, Expect::Response)
            }
            _ => {
                self.mark_unmovable(Reason::Unfollowed);
                (Phase::Idle, Expect::Opaque)
            }
        };
        self.phase = phase;
        self.server_continues = false;
        self.client_continues = false;
        expect
    }

    /// A packet the client sent while the server waits for a file.
    pub fn client_data(&mut self, len: usize) {
        if !self.client_continues && len == 0 {
            self.phase = Phase::One;
        }
        self.client_continues = len == MAX_PAYLOAD;
    }

    /// A packet from the server during a response (`len` its payload's
    /// length; `p` its payload). Returns whether it is an OK packet (which
    /// a client without session tracking gets rewritten).
    pub fn server(&mut self, p: &[u8], len: usize) -> bool {
        if std::mem::replace(&mut self.server_continues, len == MAX_PAYLOAD) {
            return false; // the rest of a long packet
        }
        let first = p.first().copied();
        let small = len < 9;
        match self.phase {
            Phase::Idle | Phase::Infile => false,
            Phase::Result => match first {
                Some(0x00) => self.end_with_ok(p),
                Some(0xFB) => {
                    self.phase = Phase::Infile;
                    false
                }
                Some(0xFF) | None => {
                    self.phase = Phase::Idle;
                    false
                }
                Some(_) => {
                    match Cursor::new(p).lenenc() {
                        Some(n) if n > 0 => self.phase = Phase::Defs { left: n, next: Next::Rows },
                        _ => {
                            self.mark_unmovable(Reason::Unfollowed);
                            self.phase = Phase::Idle;
                        }
                    }
                    false
                }
            },
            Phase::Defs { left, next } => {
                if first == Some(0xFF) {
                    self.phase = Phase::Idle;
                } else if left > 1 {
                    self.phase = Phase::Defs { left: left - 1, next };
                } else if self.deprecate_eof {
                    self.go(next);
                } else {
                    self.phase = Phase::EofThen(next);
                }
                false
            }
            Phase::EofThen(next) => {
                if let Some(s) = ok::eof_status(p) {
                    self.status = s;
                    self.go(next);
                } else {
                    self.phase = Phase::Idle;
                }
                false
            }
            Phase::Rows => match first {
                Some(0xFE) if len < MAX_PAYLOAD && self.deprecate_eof => self.end_with_ok(p),
                Some(0xFE) if small => {
                    self.end_with_status(ok::eof_status(p));
                    false
                }
                Some(0xFF) => {
                    self.phase = Phase::Idle;
                    false
                }
                _ => false,
            },
            Phase::One => match first {
                Some(0x00) => self.end_with_ok(p),
                Some(0xFE) if small => {
                    let s = ok::eof_status(p);
                    self.status = s.unwrap_or(self.status);
                    self.phase = Phase::Idle;
                    false
                }
                _ => {
                    self.phase = Phase::Idle;
                    false
                }
            },
            Phase::UntilEof => {
                if first == Some(0xFF) || (first == Some(0xFE) && small) {
                    self.phase = Phase::Idle;
                }
                false
            }
            Phase::Prepared => {
                let mut c = Cursor::new(p);
                let head = (c.u8(), c.u32(), c.u16(), c.u16());
                self.phase = match head {
                    (Some(0x00), Some(_), Some(cols), Some(params)) => {
                        let (cols, params) = (u64::from(cols), u64::from(params));
                        match (params, cols) {
                            (0, 0) => Phase::Idle,
                            (0, c) => Phase::Defs { left: c, next: Next::Done },
                            (p, 0) => Phase::Defs { left: p, next: Next::Done },
                            (p, c) => Phase::Defs { left: p, next: Next::Columns(c) },
                        }
                    }
                    _ => Phase::Idle,
                };
                false
            }
        }
    }

    fn go(&mut self, next: Next) {
        self.phase = match next {
            Next::Rows => Phase::Rows,
            Next::Columns(n) => Phase::Defs { left: n, next: Next::Done },
            Next::Done => Phase::Idle,
        };
    }

    fn end_with_status(&mut self, s: Option<u16>) {
        match s {
            Some(s) => {
                self.status = s;
                self.phase = if s & status::MORE_RESULTS_EXISTS != 0 { Phase::Result } else { Phase::Idle };
            }
            None => self.phase = Phase::Idle,
        }
    }

    /// An OK ends this result (another may follow); its state changes are
    /// applied.
    fn end_with_ok(&mut self, p: &[u8]) -> bool {
        match ok::parse_ok(p) {
            Some(okp) => {
                self.apply(&okp.changes);
                self.end_with_status(Some(okp.status));
            }
            None => {
                self.mark_unmovable(Reason::Unfollowed);
                self.phase = Phase::Idle;
            }
        }
        true
    }

    /// Apply the state changes of an OK packet (also the login's).
    pub fn apply(&mut self, changes: &[Change]) {
        let mut explained = false;
        let mut state_changed = false;
        for c in changes {
            match c {
                Change::Variable(name, value) => {
                    explained = true;
                    if name.starts_with("session_track") {
                        self.mark_unmovable(Reason::Untracked);
                    }
                    self.state.variables.retain(|(n, _)| n != name);
                    self.state.variables.push((name.clone(), value.clone()));
                }
                Change::Schema(s) => {
                    explained = true;
                    self.state.schema = (!s.is_empty()).then(|| s.clone());
                }
                Change::StateChanged => state_changed = true,
                Change::Other(_) => {}
            }
        }
        if state_changed && !explained {
            // A user variable, a temporary table, a prepared statement...:
            // nothing the server says how to restore.
            self.mark_unmovable(Reason::SessionState);
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
