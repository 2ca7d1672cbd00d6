//! Active/passive dual primaries (a two-node ring): exploratory.

use crate::support::*;
use pivot_dialect::ChangeSource;
use pivot_drill::TestSandbox;

/// Make the sandbox's node1 (the active) replicate from node2 (the
/// passive): the ring of the field report.
pub async fn close_ring(sb: &TestSandbox) {
    let repl = sb.credentials("repl").unwrap();
    let mut s = sb.admin("node1").await.unwrap();
    let change = ChangeSource {
        source: Some(sb.key("node2").unwrap()),
        user: Some(repl.user.clone()),
        password: Some(repl.password.expose().to_string()),
        heartbeat_ms: Some(250),
        connect_retry_s: Some(1),
    };
    let sql = s.dialect.change_source(&change);
    s.exec(&sql).await.unwrap();
    pivot_server::actions::start_replica(&mut s).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn explore_ring() {
    let rig = Rig::start(2, false, |_| String::new()).await;
    close_ring(&rig.sb).await;
    for _ in 0..20 {
        let c = api_cluster(rig.addr).await.unwrap();
        eprintln!("{} {} {} problems={}", c["code"], c["primary"], c["signal"], c["problems"]);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let c = api_cluster(rig.addr).await.unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&c).unwrap());
    panic!("explore");
}
