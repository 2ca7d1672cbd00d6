//! Turning probe result sets into an [`InstanceState`].

use crate::rows::{flag, name_value_map, number, seconds_as_ms, text, text_or_empty, TextRow};
use pivot_core::observation::*;
use pivot_core::version::{Flavor, ServerVersion};
use pivot_core::{GtidSet, InstanceKey};
use std::collections::BTreeMap;

/// Everything one probe read, as the server returned it.
#[derive(Clone, Debug, Default)]
pub struct ProbeRows {
    /// The one row of [`crate::Dialect::variables_query`].
    pub variables: TextRow,
    pub replica_status: Vec<TextRow>,
    pub heartbeats: Vec<TextRow>,
    pub semi_sync_variables: Vec<TextRow>,
    pub semi_sync_status: Vec<TextRow>,
    pub replica_hosts: Vec<TextRow>,
    pub dump_threads: Vec<TextRow>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unexpected probe result: {0}")]
pub struct ParseError(pub String);

/// The version from the row of [`crate::Dialect::version_query`] (or of the
/// variables query, which has the same columns).
pub fn parse_version(row: &TextRow) -> Result<ServerVersion, ParseError> {
    let version_text = text(row, &["version"]).ok_or_else(|| ParseError("no @@version".into()))?;
    ServerVersion::parse(version_text, text(row, &["version_comment"]).unwrap_or_default())
        .map_err(|e| ParseError(e.to_string()))
}

impl ProbeRows {
    pub fn into_state(self) -> Result<InstanceState, ParseError> {
        let v = &self.variables;
        let version = parse_version(v)?;
        let flavor = version.flavor;
        let gtid = |name: &str| -> Result<GtidSet, ParseError> {
            GtidSet::parse(flavor, text(v, &[name]).unwrap_or_default())
                .map_err(|e| ParseError(format!("@@{name}: {e}")))
        };
        let executed = gtid("gtid_executed")?;
        let gtid_state = match flavor {
            Flavor::MariaDb => GtidState {
                executed: executed.clone(),
                applied: gtid("gtid_applied")?,
                binlog_pos: Some(gtid("gtid_binlog_pos")?),
                replica_pos: Some(gtid("gtid_replica_pos")?),
                strict_mode: flag(v, &["gtid_strict_mode"]),
            },
            Flavor::MySql => GtidState {
                executed: executed.clone(),
                applied: executed.clone(),
                binlog_pos: None,
                replica_pos: None,
                strict_mode: None,
            },
        };
        let server_id = number(v, &["server_id"]).ok_or_else(|| ParseError("no @@server_id".into()))?;
        let replication = replication(flavor, &self.replica_status, &self.heartbeats, &executed)?;
        Ok(InstanceState {
            server_id: u32::try_from(server_id).map_err(|_| ParseError(format!("server_id {server_id} too large")))?,
            server_uuid: text(v, &["server_uuid"]).map(str::to_ascii_lowercase),
            read_only: flag(v, &["read_only"]).unwrap_or(false),
            super_read_only: match flavor {
                Flavor::MariaDb => None,
                Flavor::MySql => flag(v, &["super_read_only"]),
            },
            log_bin: flag(v, &["log_bin"]).unwrap_or(false),
            log_replica_updates: flag(v, &["log_replica_updates"]).unwrap_or(false),
            gtid: gtid_state,
            replication,
            semi_sync: semi_sync(v, &self.semi_sync_variables, &self.semi_sync_status),
            registered_replicas: registered_replicas(&self.replica_hosts),
            dump_thread_hosts: self
                .dump_threads
                .iter()
                .filter_map(|r| text(r, &["host", "HOST"]))
                .map(|h| strip_port(h).to_string())
                .collect(),
            // Read by the prober after the rest, when the heartbeat is on.
            heartbeat: None,
            version,
        })
    }
}

/// `127.0.0.1:51234` -> `127.0.0.1` (processlist hosts carry the client port).
fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    }
}

fn replication(
    flavor: Flavor,
    rows: &[TextRow],
    heartbeat_rows: &[TextRow],
    executed: &GtidSet,
) -> Result<Option<ReplicationStatus>, ParseError> {
    // The default channel (MariaDB connection '' / MySQL channel '') first.
    // MySQL 5.7's manual spells the column `Channel_name`, 8.0's `Channel_Name`.
    let channel_of = |r: &TextRow| text_or_empty(r, &["Connection_name", "Channel_Name", "Channel_name"]);
    let Some(row) = rows.iter().find(|r| channel_of(r).is_empty()).or_else(|| rows.first()) else {
        return Ok(None);
    };
    let channel = channel_of(row);
    let host = text(row, &["Master_Host", "Source_Host"]).unwrap_or_default();
    if host.is_empty() {
        // RESET SLAVE (without ALL) leaves an empty row behind.
        return Ok(None);
    }
    let port = number(row, &["Master_Port", "Source_Port"])
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| ParseError("replica status without a valid source port".into()))?;
    let io_thread = match text(row, &["Slave_IO_Running", "Replica_IO_Running"]).unwrap_or("No") {
        "Yes" => IoThread::Running,
        "No" => IoThread::Stopped,
        _ => IoThread::Connecting,
    };
    let error = |num: &str, msg: &str| {
        number(row, &[num])
            .filter(|n| *n != 0)
            .map(|n| ReplicationError { number: n as u32, message: text_or_empty(row, &[msg]) })
    };
    let received = match flavor {
        Flavor::MariaDb => GtidSet::parse(flavor, text(row, &["Gtid_IO_Pos"]).unwrap_or_default())
            .map_err(|e| ParseError(format!("Gtid_IO_Pos: {e}")))?,
        Flavor::MySql => GtidSet::parse(flavor, text(row, &["Retrieved_Gtid_Set"]).unwrap_or_default())
            .map_err(|e| ParseError(format!("Retrieved_Gtid_Set: {e}")))?
            .union(executed),
    };
    let hb_row = heartbeat_rows.iter().find(|r| text_or_empty(r, &["channel"]) == channel);
    let (heartbeats, heartbeat_period_ms) = match flavor {
        Flavor::MariaDb => {
            (number(row, &["Slave_received_heartbeats"]), seconds_as_ms(row, &["Slave_heartbeat_period"]))
        }
        Flavor::MySql => (
            hb_row.and_then(|r| number(r, &["heartbeats"])),
            hb_row.and_then(|r| seconds_as_ms(r, &["heartbeat_period"])),
        ),
    };
    Ok(Some(ReplicationStatus {
        channel,
        source: InstanceKey::new(host, port),
        source_server_id: number(row, &["Master_Server_Id", "Source_Server_Id"]).and_then(|n| u32::try_from(n).ok()),
        io_thread,
        sql_running: text(row, &["Slave_SQL_Running", "Replica_SQL_Running"]) == Some("Yes"),
        io_state: text_or_empty(row, &["Slave_IO_State", "Replica_IO_State"]),
        sql_state: text_or_empty(row, &["Slave_SQL_Running_State", "Replica_SQL_Running_State"]),
        io_error: error("Last_IO_Errno", "Last_IO_Error"),
        sql_error: error("Last_SQL_Errno", "Last_SQL_Error"),
        seconds_behind: number(row, &["Seconds_Behind_Master", "Seconds_Behind_Source"]),
        sql_delay_s: number(row, &["SQL_Delay"]).unwrap_or(0),
        using_gtid: match flavor {
            Flavor::MariaDb => !matches!(text(row, &["Using_Gtid"]), None | Some("No")),
            Flavor::MySql => flag(row, &["Auto_Position"]).unwrap_or(false),
        },
        received,
        source_log_file: text_or_empty(row, &["Master_Log_File", "Source_Log_File"]),
        source_log_pos: number(row, &["Read_Master_Log_Pos", "Read_Source_Log_Pos"]).unwrap_or(0),
        heartbeats,
        heartbeat_period_ms,
        connect_retry_s: number(row, &["Connect_Retry"]).unwrap_or(60) as u32,
        filters: ReplicationFilters {
            do_db: text_or_empty(row, &["Replicate_Do_DB"]),
            ignore_db: text_or_empty(row, &["Replicate_Ignore_DB"]),
            do_table: text_or_empty(row, &["Replicate_Do_Table"]),
            ignore_table: text_or_empty(row, &["Replicate_Ignore_Table"]),
            wild_do_table: text_or_empty(row, &["Replicate_Wild_Do_Table"]),
            wild_ignore_table: text_or_empty(row, &["Replicate_Wild_Ignore_Table"]),
            do_domain_ids: text_or_empty(row, &["Replicate_Do_Domain_Ids"]),
            ignore_domain_ids: text_or_empty(row, &["Replicate_Ignore_Domain_Ids"]),
        },
    }))
}

fn semi_sync(inline: &TextRow, variables: &[TextRow], status: &[TextRow]) -> SemiSyncState {
    let mut vars = name_value_map(variables);
    // Read with the other variables where the server always has them.
    for (name, value) in inline.iter().filter(|(k, _)| k.starts_with("rpl_semi_sync")) {
        vars.insert(name.clone(), value.clone().unwrap_or_default());
    }
    let stat = name_value_map(status);
    let get = |m: &BTreeMap<String, String>, a: &str, b: &str| m.get(a).or_else(|| m.get(b)).cloned();
    let on = |v: Option<String>| v.is_some_and(|v| v.eq_ignore_ascii_case("ON") || v == "1");
    let yes_no = |v: Option<String>| v.map(|v| v.eq_ignore_ascii_case("ON") || v == "1");
    let num = |v: Option<String>| v.and_then(|v| v.parse::<u64>().ok());
    SemiSyncState {
        available: !vars.is_empty(),
        primary_enabled: on(get(&vars, "rpl_semi_sync_master_enabled", "rpl_semi_sync_source_enabled")),
        primary_active: on(get(&stat, "rpl_semi_sync_master_status", "rpl_semi_sync_source_status")),
        primary_clients: num(get(&stat, "rpl_semi_sync_master_clients", "rpl_semi_sync_source_clients")).unwrap_or(0)
            as u32,
        primary_waiting_sessions: num(get(
            &stat,
            "rpl_semi_sync_master_wait_sessions",
            "rpl_semi_sync_source_wait_sessions",
        ))
        .unwrap_or(0) as u32,
        primary_timeout_ms: num(get(&vars, "rpl_semi_sync_master_timeout", "rpl_semi_sync_source_timeout")),
        primary_wait_point: get(&vars, "rpl_semi_sync_master_wait_point", "rpl_semi_sync_source_wait_point"),
        primary_wait_no_replica: yes_no(get(
            &vars,
            "rpl_semi_sync_master_wait_no_slave",
            "rpl_semi_sync_source_wait_no_replica",
        )),
        replica_enabled: on(get(&vars, "rpl_semi_sync_slave_enabled", "rpl_semi_sync_replica_enabled")),
        replica_active: on(get(&stat, "rpl_semi_sync_slave_status", "rpl_semi_sync_replica_status")),
    }
}

fn registered_replicas(rows: &[TextRow]) -> Vec<InstanceKey> {
    rows.iter()
        .filter_map(|r| {
            let host = text(r, &["Host"]).filter(|h| !h.is_empty())?;
            let port = number(r, &["Port"]).and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0)?;
            Some(InstanceKey::new(host, port))
        })
        .collect()
}

#[cfg(test)]
mod tests;
