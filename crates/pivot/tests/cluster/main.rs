//! Integration tests on real MariaDB servers started by pivot's own sandbox
//! code, driving the real `pivot` binary. Each test builds its own sandbox on
//! free ports in a temporary directory and tears it down, even on failure.

mod support;

mod alerts;
mod check;
mod cli_errors;
mod discovery;
mod dual_primary;
mod failover_crash;
mod failover_network;
mod failover_ops;
mod failover_outcomes;
mod failover_restart;
mod failover_rules;
mod heartbeat;
mod hostile;
mod hostile_issue9;
mod monitoring;
mod proxy_migrate;
mod proxy_switchover;
mod proxy_target;
mod rebuild;
mod rebuild_agents;
mod rebuild_disk;
mod rebuild_refusals;
mod rejoin;
mod routes_dns;
mod routes_haproxy;
mod routes_hostile;
mod routes_keepalived;
mod routes_kv;
mod routes_proxy;
mod routes_vip;
mod switchover;
