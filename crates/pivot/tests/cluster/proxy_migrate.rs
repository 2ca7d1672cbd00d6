//! The write port's protocol mode (`mode = "mysql"`) on a real sandbox: an
//! idle session moves to the new primary with its default database,
//! character set and SQL mode, and its client never notices; sessions whose
//! state cannot move (a transaction, a prepared statement, a user variable,
//! a temporary table) are ended and counted in `/metrics`.

use crate::support::*;
use mysql_async::prelude::*;
use mysql_async::{Conn, OptsBuilder};
use pivot_core::InstanceKey;
use pivot_drill::{eventually, http_get};
use std::time::Duration;

fn proxy_toml() -> (InstanceKey, String) {
    let w = free_port();
    let key = format!("127.0.0.1:{w}").parse().unwrap();
    let toml = format!(
        "[cluster.proxy]\nwrite = \"127.0.0.1:{w}\"\nmode = \"mysql\"\nhold_timeout = \"30s\"\ntransaction_grace = \"1s\"\n"
    );
    (key, toml)
}

async fn client(rig: &Rig, via: &InstanceKey) -> Result<Conn, String> {
    let creds = rig.sb.credentials("app").map_err(|e| e.to_string())?;
    let opts = OptsBuilder::default()
        .ip_or_hostname(via.host.clone())
        .tcp_port(via.port)
        .user(Some(creds.user.clone()))
        .pass(Some(creds.password.expose().to_string()))
        .prefer_socket(false);
    tokio::time::timeout(Duration::from_secs(5), Conn::new(opts))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())
}

async fn metrics(rig: &Rig) -> String {
    http_get(rig.addr, "/metrics").await.map(|(_, b)| b).unwrap_or_default()
}

fn sample(text: &str, name: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// What a session sees of itself: server, database, SQL mode, client character set.
type Seen = (u32, Option<String>, String, String);

async fn seen(c: &mut Conn) -> Result<Seen, String> {
    let row: Option<Seen> = c
        .query_first("SELECT @@server_id, DATABASE(), @@session.sql_mode, @@session.character_set_client")
        .await
        .map_err(|e| e.to_string())?;
    row.ok_or_else(|| "no row".to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_session_moves_to_the_new_primary_with_its_state_and_unmovable_ones_are_ended_and_counted() {
    let (write, toml) = proxy_toml();
    let rig = Rig::start(3, true, |_| toml).await;
    let mut moving = eventually(WAIT, "a session through the write port", || client(&rig, &write)).await;
    for q in ["USE test", "SET NAMES latin1", "SET SESSION sql_mode = 'ANSI_QUOTES'"] {
        moving.query_drop(q).await.unwrap();
    }
    let before = seen(&mut moving).await.unwrap();
    assert_eq!(before, (1, Some("test".into()), "ANSI_QUOTES".into(), "latin1".into()));

    // Sessions with state that cannot move.
    let mut in_trans = client(&rig, &write).await.unwrap();
    in_trans.query_drop("BEGIN").await.unwrap();
    in_trans.query_drop("SELECT 1").await.unwrap();
    let mut prepared = client(&rig, &write).await.unwrap();
    let stmt = prepared.prep("SELECT ? + 1").await.unwrap();
    let two: Option<i64> = prepared.exec_first(&stmt, (1,)).await.unwrap();
    assert_eq!(two, Some(2), "prepared statements work through the protocol mode");
    let mut user_var = client(&rig, &write).await.unwrap();
    user_var.query_drop("SET @x = 1").await.unwrap();
    let mut temp = client(&rig, &write).await.unwrap();
    temp.query_drop("CREATE TEMPORARY TABLE test.scratch (a INT)").await.unwrap();
    // A multi-row result and an error pass through as they are.
    let rows: Vec<u64> = moving.query("SELECT seq FROM seq_1_to_500").await.unwrap();
    assert_eq!(rows.len(), 500);
    assert!(moving.query_drop("SELECT * FROM no_such_table").await.is_err());

    // The write target moves: pivot fences the live primary, then promotes node2.
    let out = cli(&rig, &["failover", "--cluster", "sandbox", "--to", &rig.key("node2"), "--force"]);
    assert!(out.status.success(), "failover: {}", String::from_utf8_lossy(&out.stderr));
    rig.wait_new_primary(&rig.key("node1")).await;

    // The same connection, with no error: the new primary, the same state.
    let after = seen(&mut moving).await.expect("the idle session moved without an error");
    assert_eq!(after, (2, Some("test".into()), "ANSI_QUOTES".into(), "latin1".into()));
    moving
        .query_drop("INSERT INTO test.drill_writes (id, writer, at) VALUES (99, 99, NOW(6))")
        .await
        .expect("the moved session writes on the new primary");
    let m = metrics(&rig).await;
    assert_eq!(sample(&m, "pivot_proxy_sessions_migrated_total", "sandbox"), 1, "{m}");

    // The others were ended; their next statement fails, cleanly.
    for (name, c) in [("transaction", &mut in_trans), ("prepared", &mut prepared), ("user variable", &mut user_var)] {
        assert!(c.query_drop("SELECT 1").await.is_err(), "the {name} session was ended");
    }
    assert!(temp.query_drop("SELECT 1").await.is_err(), "the temporary-table session was ended");
    let m = eventually(WAIT, "the ended sessions counted", || async {
        let m = metrics(&rig).await;
        let ended = |r: &str| sample(&m, "pivot_proxy_sessions_ended_total", &format!("reason=\"{r}\""));
        let all = [ended("transaction"), ended("prepared_statement"), ended("user_variable"), ended("temporary_table")];
        (all == [1, 1, 1, 1]).then(|| m.clone()).ok_or(format!("{all:?}"))
    })
    .await;
    eprintln!("{}", m.lines().filter(|l| l.contains("sessions")).collect::<Vec<_>>().join("\n"));
}

/// kill -9 of the primary under an idle session: the proxy notices its
/// server went away, waits for the new primary's epoch, and the client's
/// next statement runs there, in its database, without an error.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_session_survives_the_crash_of_its_primary() {
    let (write, toml) = proxy_toml();
    let mut rig = Rig::start(3, true, |_| toml).await;
    let mut idle = eventually(WAIT, "a session through the write port", || client(&rig, &write)).await;
    idle.query_drop("USE test").await.unwrap();
    idle.query_drop("SET SESSION time_zone = '+03:00'").await.unwrap();
    assert_eq!(seen(&mut idle).await.unwrap().0, 1);
    rig.sb.kill("node1").unwrap();
    let new = rig.wait_new_primary(&rig.key("node1")).await;
    let (id, db, _, _) = seen(&mut idle).await.expect("the idle session moved without an error");
    assert_eq!(new, rig.key(if id == 2 { "node2" } else { "node3" }), "on the new primary");
    assert_eq!(db.as_deref(), Some("test"));
    let tz: Option<String> = idle.query_first("SELECT @@session.time_zone").await.unwrap();
    assert_eq!(tz.as_deref(), Some("+03:00"));
    let m = metrics(&rig).await;
    assert_eq!(sample(&m, "pivot_proxy_sessions_migrated_total", "sandbox"), 1, "{m}");
}
