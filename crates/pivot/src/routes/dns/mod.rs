//! The optional authoritative DNS responder for the routes (`[pivot.dns]`):
//! `primary.<cluster>.<domain>`, `replicas.<cluster>.<domain>` and their
//! `_mysql._tcp.` SRV records, answered from each cluster's route table at
//! query time. [`answer`] decides (pure), [`server`] speaks DNS.

pub mod answer;
mod server;

pub use answer::{Answer, QType, Rcode, Zone};
pub use server::DnsServer;
