//! The write port's protocol mode (`mode = "mysql"`): the proxy follows the
//! MySQL protocol's packets, so it knows when a session is idle outside a
//! transaction, and moves such sessions to a new primary without the
//! client noticing: it logs in again there with what the client's
//! `mysql_native_password` answer proves, and restores the default database
//! and the session variables the server reported as changed.
//!
//! Pure (bytes in, decisions out; unit-tested with captured packets):
//! * [`packet`]: framing and the protocol's encodings;
//! * [`handshake`]: the greeting, the client's login, the password math;
//! * [`ok`]: OK packets, session-state changes, their rewriting;
//! * [`session`]: the tracker (command boundaries, status, state, reasons).
//!
//! The shell: [`wire`] buffered packet I/O, [`relay`] the forwarding loop
//! and its decisions at a route change, [`migrate`] the new server session.

pub mod handshake;
pub mod ok;
pub mod packet;
pub mod session;

mod commands;
pub mod migrate;
pub mod relay;
#[cfg(test)]
mod relay_tests;
pub mod wire;
