//! Drills on real servers.
//!
//! Used by the integration tests (`crates/pivot/tests`) and the benchmarks,
//! so both measure the same thing the same way:
//! * [`TestSandbox`]: a sandbox in a temporary directory, torn down on drop,
//!   even when the test panics;
//! * [`Writer`]: inserts rows through the application account and records
//!   each one the server acknowledged; [`missing_writes`] looks for every one
//!   of them afterwards;
//! * [`PivotProcess`]: `pivot run` as a child process, killed on drop;
//! * [`http_get`]: enough HTTP/1.1 to read pivot's API without a client library;
//! * [`eventually`]: poll until a condition holds, with a bound;
//! * the virtual IP route in network namespaces ([`Agents`], [`ClientNs`],
//!   [`NetnsRuntime`] for a writer inside the client's namespace; root only).

mod http;
mod pivot_process;
mod test_sandbox;
mod vip;
mod wait;
mod writer;

pub use http::{http_get, http_request};
pub use pivot_process::PivotProcess;
pub use test_sandbox::TestSandbox;
pub use vip::{
    agent_addr, agent_config_path, agent_get, require_root, vip_table, Agents, ClientNs, NetnsRuntime, VipLab,
    AGENT_PORT, AGENT_TOKEN,
};
pub use wait::eventually;
pub use writer::{missing_writes, Ack, Lookup, Writer, WriterTarget};
