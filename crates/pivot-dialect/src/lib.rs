//! Server dialects behind one small interface.
//!
//! MariaDB and MySQL (5.7, 8.0, 8.4) name the same things differently:
//! `SHOW ALL SLAVES STATUS` / `SHOW SLAVE STATUS` / `SHOW REPLICA STATUS`,
//! `CHANGE MASTER` / `CHANGE REPLICATION SOURCE`, `MASTER_USE_GTID` /
//! `SOURCE_AUTO_POSITION`, semi-sync `master`/`slave` vs `source`/`replica`.
//! [`Dialect::for_version`] picks the right words from the version string; the
//! rest of pivot never spells a statement itself.
//!
//! Architecture invariant: no I/O here. Statements go out as [`Sql`] (whose
//! `Display` hides secrets) and results come back as [`TextRow`]s, so every
//! dialect is testable from captured result sets.

mod check;
mod dialect;
mod heartbeat;
mod parse;
mod privileges;
mod proxy_session;
mod rows;
mod sql;

pub use dialect::{ChangeSource, Dialect};
pub use heartbeat::HeartbeatTable;
pub use parse::{parse_version, ParseError, ProbeRows};
pub use privileges::{MissingPrivilege, PrivilegeNeed, PrivilegeReport};
pub use rows::TextRow;
pub use sql::{quote, Sql};
