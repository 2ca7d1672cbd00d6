//! The text of the files a sandbox writes: server option files, the pivot
//! configuration, the application's client option file.

use crate::manifest::NodeRecord;
use std::path::Path;

/// Settings every node shares. `primary` decides `read_only`.
pub fn my_cnf(node: &NodeRecord, node_dir: &Path, primary: bool, semi_sync: bool) -> String {
    let d = node_dir.display();
    let mut cnf = format!(
        "# Written by `pivot sandbox up`. Throwaway: do not use for real data.
[mariadbd]
datadir = {d}/data
socket = {d}/mariadbd.sock
pid-file = {d}/data/mariadbd.pid
log-error = {d}/error.log
tmpdir = {d}/tmp
bind-address = {bind}
port = {port}
server_id = {server_id}
report_host = {host}
report_port = {port}
skip_name_resolve = ON
# Replication: GTID, row-based, every node can serve as a source.
log_bin = mariadb-bin
log_slave_updates = ON
binlog_format = ROW
gtid_strict_mode = ON
relay_log = relay-bin
# A replica notices a silent source after this many seconds and reconnects.
slave_net_timeout = 2
read_only = {read_only}
# Small footprint: several sandboxes run side by side in tests.
innodb_buffer_pool_size = 16M
innodb_log_file_size = 8M
innodb_use_native_aio = OFF
innodb_flush_log_at_trx_commit = 2
performance_schema = OFF
max_connections = 300
",
        host = node.host,
        port = node.port,
        // In its own network namespace a node listens on every address of
        // it, so a virtual IP put up there reaches it too.
        bind = if node.netns.is_some() { "0.0.0.0" } else { node.host.as_str() },
        server_id = node.server_id,
        read_only = if primary { "OFF" } else { "ON" },
    );
    if semi_sync {
        cnf.push_str(
            "# Semi-sync: a commit is acknowledged only after a replica has it. The
# primary side is switched on at run time on the primary only (pivot does it
# on the new primary at a failover). The timeout never expires: a primary
# that cannot get an acknowledgement must not acknowledge (no split-brain writes).
rpl_semi_sync_slave_enabled = ON
rpl_semi_sync_master_wait_point = AFTER_SYNC
rpl_semi_sync_master_wait_no_slave = ON
rpl_semi_sync_master_timeout = 18446744073709551615
",
        );
    }
    cnf
}

/// A pivot configuration for the sandbox, accepted by `pivot run` as is.
pub fn pivot_toml(dir: &Path, seeds: &[String], http_port: u16) -> String {
    let d = dir.display();
    let seeds = seeds.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    format!(
        "# Written by `pivot sandbox up`: pivot watching the throwaway cluster in {d}.
# See pivot.example.toml in the pivot repository for every setting.

[pivot]
state = \"{d}/pivot.db\"
http = \"127.0.0.1:{http_port}\"

[[cluster]]
name = \"sandbox\"
seeds = [{seeds}]
poll_interval = \"250ms\"
probe_timeout = \"1s\"

[cluster.credentials]
user = \"pivot\"
password_file = \"{d}/secrets/pivot.password\"

[cluster.replication]
user = \"repl\"
password_file = \"{d}/secrets/repl.password\"

# Heartbeat lag next to Seconds_Behind_Master (README \"Lag: heartbeat\"); the
# sandbox's pivot account has the grant it needs on the `pivot` schema.
# [cluster.heartbeat]
# enabled = true
"
    )
}

/// A client option file: `mariadb --defaults-file=DIR/app.cnf test`.
pub fn app_cnf(host: &str, port: u16, password: &str) -> String {
    format!("[client]\nuser = app\npassword = {password}\nhost = {host}\nport = {port}\ndatabase = test\n")
}

/// The SQL run once in bootstrap mode on the template datadir: no server is
/// listening and the binary log is off, so nothing here becomes a GTID.
pub fn bootstrap_sql(passwords: &Passwords, fine_grained_privileges: bool) -> String {
    let pivot_privileges = if fine_grained_privileges {
        // MariaDB 10.5.9+ split SUPER; 10.11 no longer lets SUPER change read_only.
        // RELOAD: RESET SLAVE ALL on the promoted replica.
        "RELOAD, PROCESS, SLAVE MONITOR, BINLOG MONITOR, REPLICATION SLAVE ADMIN, REPLICATION MASTER ADMIN, \
         READ_ONLY ADMIN, CONNECTION ADMIN"
    } else {
        "PROCESS, SUPER, REPLICATION CLIENT, RELOAD"
    };
    format!(
        "FLUSH PRIVILEGES;
CREATE DATABASE IF NOT EXISTS test;
CREATE USER 'repl'@'%' IDENTIFIED BY '{repl}';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
CREATE USER 'pivot'@'%' IDENTIFIED BY '{pivot}';
GRANT {pivot_privileges} ON *.* TO 'pivot'@'%';
GRANT SELECT ON mysql.global_priv TO 'pivot'@'%';
GRANT SELECT, INSERT, UPDATE, CREATE ON `pivot`.* TO 'pivot'@'%';
CREATE USER 'app'@'%' IDENTIFIED BY '{app}';
GRANT ALL ON test.* TO 'app'@'%';
CREATE USER 'admin'@'%' IDENTIFIED BY '{admin}';
GRANT ALL ON *.* TO 'admin'@'%' WITH GRANT OPTION;
",
        repl = passwords.repl,
        pivot = passwords.pivot,
        app = passwords.app,
        admin = passwords.admin,
    )
}

/// The sandbox's generated passwords (alphanumeric, so they quote as is).
#[derive(Clone)]
pub struct Passwords {
    pub repl: String,
    pub pivot: String,
    pub app: String,
    pub admin: String,
}

impl Passwords {
    pub const FILES: [&'static str; 4] = ["repl", "pivot", "app", "admin"];

    pub fn by_name(&self, name: &str) -> &str {
        match name {
            "repl" => &self.repl,
            "pivot" => &self.pivot,
            "app" => &self.app,
            _ => &self.admin,
        }
    }
}
