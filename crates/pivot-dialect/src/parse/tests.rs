//! Result sets in, [`InstanceState`] out.
//!
//! The MariaDB rows were captured from a MariaDB 10.11 sandbox with `\G`. No
//! MySQL server runs in pivot's test environment (only MariaDB is packaged for
//! it), so the MySQL dialect is tested from result sets alone: MySQL 5.7's
//! `SHOW SLAVE STATUS` is the example published in MySQL's 5.7 reference
//! manual (the source is named at the constant); the 8.0 and 8.4 rows are
//! trimmed result sets in those servers' column names.

use super::*;

/// A `\G`-style block (`Column: value`, `NULL` for SQL NULL) as one row.
fn row(block: &str) -> TextRow {
    block
        .lines()
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim(), v.trim())))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), if v == "NULL" { None } else { Some(v.to_string()) }))
        .collect()
}

fn name_values(pairs: &[(&str, &str)]) -> Vec<TextRow> {
    pairs.iter().map(|(n, v)| row(&format!("Variable_name: {n}\nValue: {v}"))).collect()
}

const MARIADB_REPLICA_STATUS: &str = "
               Connection_name:
               Slave_SQL_State: Slave has read all relay log; waiting for more updates
                Slave_IO_State: Waiting for master to send event
                   Master_Host: 127.0.0.1
                   Master_User: repl
                   Master_Port: 33901
                 Connect_Retry: 1
               Master_Log_File: mb.000001
           Read_Master_Log_Pos: 627
              Slave_IO_Running: Yes
             Slave_SQL_Running: Yes
               Replicate_Do_DB:
           Replicate_Ignore_DB:
                    Last_Errno: 0
                    Last_Error:
         Seconds_Behind_Master: 0
                 Last_IO_Errno: 0
                 Last_IO_Error:
                Last_SQL_Errno: 0
                Last_SQL_Error:
              Master_Server_Id: 1
                    Using_Gtid: Slave_Pos
                   Gtid_IO_Pos: 0-1-2
                     SQL_Delay: 0
           SQL_Remaining_Delay: NULL
       Slave_SQL_Running_State: Slave has read all relay log; waiting for more updates
     Slave_received_heartbeats: 4
        Slave_heartbeat_period: 0.250
                Gtid_Slave_Pos: 0-1-2";

fn mariadb_vars(read_only: &str) -> TextRow {
    row(&format!(
        "server_id: 2\nversion: 10.11.19-MariaDB-0+deb12u1-log\nversion_comment: Debian 12\nread_only: {read_only}\n\
         log_bin: 1\nlog_replica_updates: 1\ngtid_executed: 0-1-2\ngtid_applied: 0-1-2\ngtid_binlog_pos: 0-1-2\n\
         gtid_replica_pos: 0-1-2\ngtid_strict_mode: 1"
    ))
}

#[test]
fn mariadb_replica() {
    let rows = ProbeRows {
        variables: mariadb_vars("1"),
        replica_status: vec![row(MARIADB_REPLICA_STATUS)],
        semi_sync_variables: name_values(&[
            ("rpl_semi_sync_master_enabled", "OFF"),
            ("rpl_semi_sync_master_timeout", "10000"),
            ("rpl_semi_sync_master_wait_no_slave", "ON"),
            ("rpl_semi_sync_master_wait_point", "AFTER_SYNC"),
            ("rpl_semi_sync_slave_enabled", "ON"),
        ]),
        semi_sync_status: name_values(&[("Rpl_semi_sync_slave_status", "ON"), ("Rpl_semi_sync_master_clients", "0")]),
        ..ProbeRows::default()
    };
    let s = rows.into_state().unwrap();
    assert_eq!(s.version.flavor, Flavor::MariaDb);
    assert_eq!(
        (s.server_id, s.read_only, s.super_read_only, s.log_bin, s.log_replica_updates),
        (2, true, None, true, true)
    );
    assert_eq!(s.gtid.executed.to_string(), "0-1-2");
    let r = s.replication.unwrap();
    assert_eq!(r.source.to_string(), "127.0.0.1:33901");
    assert_eq!((r.io_thread, r.sql_running, r.seconds_behind), (IoThread::Running, true, Some(0)));
    assert_eq!((r.heartbeats, r.heartbeat_period_ms, r.connect_retry_s), (Some(4), Some(250), 1));
    assert_eq!(
        (r.source_log_file.as_str(), r.source_log_pos, r.received.to_string()),
        ("mb.000001", 627, "0-1-2".into())
    );
    assert!(r.using_gtid && r.filters.is_empty());
    assert!(
        s.semi_sync.available
            && s.semi_sync.replica_enabled
            && s.semi_sync.replica_active
            && !s.semi_sync.primary_enabled
    );
    assert_eq!(s.semi_sync.primary_wait_point.as_deref(), Some("AFTER_SYNC"));
}

#[test]
fn mariadb_replica_with_sql_error_and_primary_side() {
    let broken = MARIADB_REPLICA_STATUS
        .replace("Slave_SQL_Running: Yes", "Slave_SQL_Running: No")
        .replace("Last_SQL_Errno: 0", "Last_SQL_Errno: 1062")
        .replace(
            "Last_SQL_Error:",
            "Last_SQL_Error: Could not execute Write_rows_v1 event on table test.t; Duplicate entry '1' for key 'PRIMARY'",
        )
        .replace("Seconds_Behind_Master: 0", "Seconds_Behind_Master: NULL");
    let rows = ProbeRows {
        variables: mariadb_vars("0"),
        replica_status: vec![row(&broken)],
        replica_hosts: vec![
            row("Server_id: 3\nHost: 127.0.0.1\nPort: 33903\nMaster_id: 2"),
            row("Server_id: 4\nHost:\nPort: 0"),
        ],
        dump_threads: vec![row("host: 127.0.0.1:47672")],
        ..ProbeRows::default()
    };
    let s = rows.into_state().unwrap();
    let r = s.replication.as_ref().unwrap();
    assert!(!r.sql_running && r.seconds_behind.is_none());
    let e = r.sql_error.as_ref().unwrap();
    assert_eq!(e.number, 1062);
    assert!(e.message.contains("Duplicate entry"));
    assert_eq!(
        s.registered_replicas,
        vec!["127.0.0.1:33903".parse().unwrap()],
        "replicas without report_host are skipped"
    );
    assert_eq!(s.dump_thread_hosts, vec!["127.0.0.1".to_string()]);
    assert!(!s.semi_sync.available);
}

#[test]
fn mariadb_primary_without_replication() {
    let rows = ProbeRows { variables: mariadb_vars("0"), ..ProbeRows::default() };
    let s = rows.into_state().unwrap();
    assert!(s.replication.is_none() && s.writable());
    // RESET SLAVE without ALL leaves a row with an empty host: not a replica.
    let reset = ProbeRows {
        variables: mariadb_vars("0"),
        replica_status: vec![row("Connection_name:\nMaster_Host:\nMaster_Port: 3306\nSlave_IO_Running: No")],
        ..ProbeRows::default()
    };
    assert!(reset.into_state().unwrap().replication.is_none());
}

// ---- MySQL: result sets (no MySQL server runs here) ----------------------------

const UUID_P: &str = "8a94f357-aab4-11df-86ab-c80aa9429562";
const UUID_R: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

fn mysql_vars(version: &str, comment: &str) -> TextRow {
    row(&format!(
        "server_id: 2\nversion: {version}\nversion_comment: {comment}\nread_only: 1\nlog_bin: 1\n\
         log_replica_updates: 1\nsuper_read_only: 1\nserver_uuid: {UUID_R}\n\
         gtid_executed: {UUID_P}:1-1000\ngtid_mode: ON"
    ))
}

/// `SHOW REPLICA STATUS\G` of MySQL 8.0.36, trimmed of SSL and until columns.
fn mysql80_replica_status(io: &str, sql: &str) -> String {
    format!(
        "Replica_IO_State: Waiting for source to send event
        Source_Host: 10.0.0.1
        Source_User: repl
        Source_Port: 3306
        Connect_Retry: 60
        Source_Log_File: binlog.000003
        Read_Source_Log_Pos: 197254
        Relay_Log_File: relay.000002
        Relay_Log_Pos: 197430
        Relay_Source_Log_File: binlog.000003
        Replica_IO_Running: {io}
        Replica_SQL_Running: {sql}
        Replicate_Do_DB: app
        Replicate_Ignore_DB:
        Last_Errno: 0
        Last_Error:
        Exec_Source_Log_Pos: 197254
        Seconds_Behind_Source: 3
        Last_IO_Errno: 2003
        Last_IO_Error: error connecting to source 'repl@10.0.0.1:3306' - retry-time: 60 retries: 1 message: Can't connect to MySQL server on '10.0.0.1:3306' (111)
        Last_SQL_Errno: 0
        Last_SQL_Error:
        Source_Server_Id: 1
        Source_UUID: {UUID_P}
        SQL_Delay: 0
        SQL_Remaining_Delay: NULL
        Replica_SQL_Running_State: Replica has read all relay log; waiting for more updates
        Retrieved_Gtid_Set: {UUID_P}:900-1005
        Executed_Gtid_Set: {UUID_P}:1-1000
        Auto_Position: 1
        Channel_Name:"
    )
}

#[test]
fn mysql80_replica() {
    let rows = ProbeRows {
        variables: mysql_vars("8.0.36", "MySQL Community Server - GPL"),
        replica_status: vec![row(&mysql80_replica_status("Connecting", "Yes"))],
        heartbeats: vec![row("channel:\nheartbeats: 77\nheartbeat_period: 30.000")],
        semi_sync_variables: name_values(&[
            ("rpl_semi_sync_replica_enabled", "ON"),
            ("rpl_semi_sync_replica_trace_level", "32"),
        ]),
        semi_sync_status: name_values(&[("Rpl_semi_sync_replica_status", "OFF")]),
        ..ProbeRows::default()
    };
    let s = rows.into_state().unwrap();
    assert_eq!((s.version.flavor, s.version.major, s.version.minor), (Flavor::MySql, 8, 0));
    assert_eq!(s.super_read_only, Some(true));
    assert_eq!(s.server_uuid.as_deref(), Some(UUID_R));
    let r = s.replication.unwrap();
    assert_eq!(r.source.to_string(), "10.0.0.1:3306");
    assert_eq!(r.io_thread, IoThread::Connecting);
    assert_eq!(r.io_error.as_ref().map(|e| e.number), Some(2003));
    assert_eq!(r.received.to_string(), format!("{UUID_P}:1-1005"), "retrieved joined with executed");
    assert_eq!((r.heartbeats, r.heartbeat_period_ms), (Some(77), Some(30_000)));
    assert_eq!(r.filters.do_db, "app");
    assert!(r.using_gtid);
    assert!(s.semi_sync.replica_enabled && !s.semi_sync.replica_active && !s.semi_sync.primary_enabled);
}

/// `SHOW SLAVE STATUS\G` as published in the MySQL 5.7 Reference Manual,
/// section 13.7.5.34 "SHOW SLAVE STATUS Statement"
/// (<https://dev.mysql.com/doc/refman/5.7/en/show-slave-status.html>), verbatim.
const MYSQL57_MANUAL_SLAVE_STATUS: &str = "
               Slave_IO_State: Waiting for master to send event
                  Master_Host: localhost
                  Master_User: repl
                  Master_Port: 13000
                Connect_Retry: 60
              Master_Log_File: source-bin.000002
          Read_Master_Log_Pos: 1307
               Relay_Log_File: replica-relay-bin.000003
                Relay_Log_Pos: 1508
        Relay_Master_Log_File: source-bin.000002
             Slave_IO_Running: Yes
            Slave_SQL_Running: Yes
              Replicate_Do_DB:
          Replicate_Ignore_DB:
           Replicate_Do_Table:
       Replicate_Ignore_Table:
      Replicate_Wild_Do_Table:
  Replicate_Wild_Ignore_Table:
                   Last_Errno: 0
                   Last_Error:
                 Skip_Counter: 0
          Exec_Master_Log_Pos: 1307
              Relay_Log_Space: 1858
              Until_Condition: None
               Until_Log_File:
                Until_Log_Pos: 0
           Master_SSL_Allowed: No
           Master_SSL_CA_File:
           Master_SSL_CA_Path:
              Master_SSL_Cert:
            Master_SSL_Cipher:
               Master_SSL_Key:
        Seconds_Behind_Master: 0
Master_SSL_Verify_Server_Cert: No
                Last_IO_Errno: 0
                Last_IO_Error:
               Last_SQL_Errno: 0
               Last_SQL_Error:
  Replicate_Ignore_Server_Ids:
             Master_Server_Id: 1
                  Master_UUID: 3e11fa47-71ca-11e1-9e33-c80aa9429562
             Master_Info_File: /var/mysqld.2/data/master.info
                    SQL_Delay: 0
          SQL_Remaining_Delay: NULL
      Slave_SQL_Running_State: Reading event from the relay log
           Master_Retry_Count: 10
                  Master_Bind:
      Last_IO_Error_Timestamp:
     Last_SQL_Error_Timestamp:
               Master_SSL_Crl:
           Master_SSL_Crlpath:
           Retrieved_Gtid_Set: 3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5
            Executed_Gtid_Set: 3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5
                Auto_Position: 1
         Replicate_Rewrite_DB:
                 Channel_name:
           Master_TLS_Version: TLSv1.2";

/// Variables of the replica in the manual's example: its source is
/// 3e11fa47-... and it has executed what it retrieved.
fn mysql57_vars() -> TextRow {
    let mut vars = mysql_vars("5.7.44-log", "MySQL Community Server (GPL)");
    vars.insert("server_uuid".into(), Some(UUID_P.into()));
    vars.insert("gtid_executed".into(), Some(format!("{UUID_R}:1-5")));
    vars
}

#[test]
fn mysql57_replica_from_the_manual() {
    let rows = ProbeRows {
        variables: mysql57_vars(),
        replica_status: vec![row(MYSQL57_MANUAL_SLAVE_STATUS)],
        ..ProbeRows::default()
    };
    let s = rows.into_state().unwrap();
    assert_eq!((s.version.flavor, s.version.major, s.version.minor), (Flavor::MySql, 5, 7));
    let r = s.replication.unwrap();
    assert_eq!(r.channel, "", "the default channel (5.7 spells the column Channel_name)");
    assert_eq!(r.source.to_string(), "127.0.0.1:13000", "Master_Host localhost, normalized");
    assert_eq!(r.source_server_id, Some(1));
    assert_eq!((r.io_thread, r.sql_running, r.seconds_behind), (IoThread::Running, true, Some(0)));
    assert_eq!(r.io_state, "Waiting for master to send event");
    assert_eq!(r.sql_state, "Reading event from the relay log");
    assert!(r.io_error.is_none() && r.sql_error.is_none());
    assert_eq!((r.source_log_file.as_str(), r.source_log_pos, r.connect_retry_s), ("source-bin.000002", 1307, 60));
    assert_eq!(r.received.to_string(), format!("{UUID_R}:1-5"));
    assert!(r.using_gtid && r.filters.is_empty() && r.sql_delay_s == 0);
    assert_eq!(r.heartbeats, None, "5.7 keeps heartbeats in performance_schema, not captured here");
    let named = ProbeRows {
        variables: mysql57_vars(),
        replica_status: vec![row(&MYSQL57_MANUAL_SLAVE_STATUS.replace("Channel_name:", "Channel_name: ch2"))],
        ..ProbeRows::default()
    };
    assert_eq!(named.into_state().unwrap().replication.unwrap().channel, "ch2");
}

#[test]
fn mysql57_replica_with_sql_error_and_semi_sync_primary_side() {
    // The manual's example with the SQL thread stopped by an error: these
    // four fields are edited, everything else is as published.
    let status = MYSQL57_MANUAL_SLAVE_STATUS
        .replace("Slave_SQL_Running: Yes", "Slave_SQL_Running: No")
        .replace("Seconds_Behind_Master: 0", "Seconds_Behind_Master: NULL")
        .replace("Last_SQL_Errno: 0", "Last_SQL_Errno: 1146")
        .replace("Last_SQL_Error:", "Last_SQL_Error: Error executing row event: 'Table 'app.t' doesn't exist'");
    let rows = ProbeRows {
        variables: mysql57_vars(),
        replica_status: vec![row(&status)],
        semi_sync_variables: name_values(&[
            ("rpl_semi_sync_master_enabled", "ON"),
            ("rpl_semi_sync_master_timeout", "10000"),
            ("rpl_semi_sync_master_wait_point", "AFTER_SYNC"),
            ("rpl_semi_sync_master_wait_no_slave", "ON"),
        ]),
        semi_sync_status: name_values(&[
            ("Rpl_semi_sync_master_status", "ON"),
            ("Rpl_semi_sync_master_clients", "2"),
            ("Rpl_semi_sync_master_wait_sessions", "0"),
        ]),
        replica_hosts: vec![row("Server_id: 3\nHost: 10.0.0.3\nPort: 3306\nMaster_id: 2\nSlave_UUID: x")],
        ..ProbeRows::default()
    };
    let s = rows.into_state().unwrap();
    let r = s.replication.as_ref().unwrap();
    assert_eq!((r.io_thread, r.sql_running, r.seconds_behind), (IoThread::Running, false, None));
    let e = r.sql_error.as_ref().unwrap();
    assert_eq!(e.number, 1146);
    assert!(e.message.contains("doesn't exist"), "{e:?}");
    let ss = &s.semi_sync;
    assert!(ss.primary_enabled && ss.primary_active && ss.primary_clients == 2);
    assert_eq!((ss.primary_timeout_ms, ss.primary_wait_no_replica), (Some(10000), Some(true)));
    assert_eq!(s.registered_replicas, vec!["10.0.0.3:3306".parse().unwrap()]);
}

#[test]
fn mysql84_primary_with_source_semi_sync_names() {
    let mut vars = mysql_vars("8.4.0", "MySQL Community Server - GPL");
    vars.insert("read_only".into(), Some("0".into()));
    vars.insert("super_read_only".into(), Some("0".into()));
    let rows = ProbeRows {
        variables: vars,
        semi_sync_variables: name_values(&[
            ("rpl_semi_sync_source_enabled", "ON"),
            ("rpl_semi_sync_source_timeout", "18446744073709551615"),
            ("rpl_semi_sync_source_wait_no_replica", "ON"),
            ("rpl_semi_sync_source_wait_point", "AFTER_SYNC"),
        ]),
        semi_sync_status: name_values(&[
            ("Rpl_semi_sync_source_status", "ON"),
            ("Rpl_semi_sync_source_clients", "0"),
            ("Rpl_semi_sync_source_wait_sessions", "4"),
        ]),
        replica_hosts: vec![row("Server_Id: 3\nHost: 10.0.0.3\nPort: 3306\nSource_Id: 1\nReplica_UUID: x")],
        ..ProbeRows::default()
    };
    let s = rows.into_state().unwrap();
    assert!(s.writable() && s.replication.is_none());
    let ss = &s.semi_sync;
    assert!(ss.primary_enabled && ss.primary_waiting_sessions == 4 && ss.primary_clients == 0);
    assert_eq!(ss.primary_timeout_ms, Some(u64::MAX));
}

#[test]
fn malformed_results_are_errors_not_panics() {
    let mut vars = mariadb_vars("0");
    vars.insert("gtid_executed".into(), Some("zero-one".into()));
    let err = ProbeRows { variables: vars, ..ProbeRows::default() }.into_state().unwrap_err();
    assert!(err.to_string().contains("gtid_executed"), "{err}");
    let err = ProbeRows::default().into_state().unwrap_err();
    assert!(err.to_string().contains("@@version"));
    let bad_port = ProbeRows {
        variables: mariadb_vars("1"),
        replica_status: vec![row(&MARIADB_REPLICA_STATUS.replace("Master_Port: 33901", "Master_Port: 99999"))],
        ..ProbeRows::default()
    };
    assert!(bad_port.into_state().is_err());
}
