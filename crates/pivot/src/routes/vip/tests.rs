//! pivot's side and the agents' together, in this process: real HTTP on
//! the loopback, keepalived's mode (the agents change no address, so no
//! root is needed). The address itself is tested in network namespaces
//! (`tests/cluster/routes_vip.rs`).

use super::protocol::{AgentState, LeaseRequest};
use super::*;
use crate::agent::core::AgentCore;
use crate::agent::server::{self, Agent, Inner};
use crate::config::AgentConfig;
use pivot_core::routes::{EpochRecord, InstanceRoute, Role};
use pivot_server::Secret;
use std::time::Duration;

const TOKEN: &str = "unit-test-token-0123456789";

fn key(s: &str) -> InstanceKey {
    s.parse().unwrap()
}

/// An agent for `instance` on a free loopback port; its address.
async fn agent(instance: &str) -> (InstanceKey, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = AgentConfig {
        path: "agent.toml".into(),
        listen: addr,
        token: Secret::new(TOKEN),
        instance: key(instance),
        interface: None,
        rebuild: None,
    };
    let a = Arc::new(Agent {
        inner: tokio::sync::Mutex::new(Inner {
            core: AgentCore::new(format!("boot-{instance}"), key(instance)),
            placed: None,
        }),
        cfg,
    });
    let app = server::router(a);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (key(&addr.to_string()), task)
}

fn config(agents: Vec<(InstanceKey, InstanceKey)>) -> VipConfig {
    VipConfig {
        address: "10.0.0.100/24".parse().unwrap(),
        interface: "eth0".into(),
        agents,
        token: Secret::new(TOKEN),
        lease: Duration::from_secs(1),
        timeout: Duration::from_millis(300),
        required: true,
        keepalived: true,
    }
}

/// Both instances: the primary and the other as a healthy replica.
fn table(epoch: u64, primary: &str) -> RouteTable {
    let e = EpochRecord { number: epoch, primary: key(primary), recovery_id: None, since_ms: 0 };
    let mut t = RouteTable::default().after_promotion(&e, None);
    let other = if primary == "10.0.0.1:3306" { "10.0.0.2:3306" } else { "10.0.0.1:3306" };
    t.instances.push(InstanceRoute {
        instance: key(other),
        role: Role::Replica,
        reachable: true,
        healthy: true,
        lag_s: Some(0),
        reason: "replicating".into(),
    });
    t
}

async fn primary_check(c: &AgentClient) -> u16 {
    c.request(hyper::Method::GET, "/primary", None).await.unwrap().0
}

#[tokio::test]
async fn the_lease_moves_only_after_the_other_agent_released_it() {
    let (a_addr, _a) = agent("10.0.0.1:3306").await;
    let (b_addr, _b) = agent("10.0.0.2:3306").await;
    let cfg = config(vec![(key("10.0.0.1:3306"), a_addr.clone()), (key("10.0.0.2:3306"), b_addr.clone())]);
    let mover = VipMover::new("main", &cfg, new_book());
    let (a, b) = (
        AgentClient::new(a_addr.clone(), cfg.token.clone(), cfg.timeout),
        AgentClient::new(b_addr.clone(), cfg.token.clone(), cfg.timeout),
    );
    let always = || true;

    // Epoch 1 on A: B confirms a release, so no wait.
    let m = mover.round(&table(1, "10.0.0.1:3306"), None, &always).await.unwrap();
    let Moved::Leased { agent, released, expired, .. } = &m else { panic!("{m:?}") };
    assert_eq!((agent, released.clone(), expired.clone()), (&a_addr, vec![b_addr.clone()], vec![]));
    assert_eq!((primary_check(&a).await, primary_check(&b).await), (200, 503));
    assert!(mover.describe(1, &m).contains("answers keepalived's check"), "{}", mover.describe(1, &m));

    // Epoch 2 on B: A released first.
    let m = mover.round(&table(2, "10.0.0.2:3306"), None, &always).await.unwrap();
    assert!(
        matches!(&m, Moved::Leased { agent, released, .. } if *agent == b_addr && *released == vec![a_addr.clone()]),
        "{m:?}"
    );
    assert_eq!((primary_check(&a).await, primary_check(&b).await), (503, 200));
    let st: AgentState = a.state().await.unwrap();
    assert_eq!((st.epoch, st.lease), (2, None));

    // This process never goes back to epoch 1.
    let e = mover.round(&table(1, "10.0.0.1:3306"), None, &always).await.unwrap_err();
    assert!(e.contains("older than epoch 2"), "{e}");
    // Nor does A, told by anyone: an old lease is refused.
    let old = LeaseRequest {
        epoch: 1,
        boot: st.boot.clone(),
        valid_until_ms: st.clock_ms + 60_000,
        lease_ms: 1000,
        vip: None,
        table: table(1, "10.0.0.1:3306"),
    };
    let Answer::Refused(r) = a.command("/v1/lease", &old).await else { panic!("an old epoch is refused") };
    assert!(r.message.contains("epoch 1 is older than epoch 2"), "{}", r.message);
    // A lease that arrives after its deadline on the agent's clock is refused.
    let late = LeaseRequest {
        epoch: 3,
        valid_until_ms: st.clock_ms.saturating_sub(1),
        table: table(3, "10.0.0.1:3306"),
        ..old
    };
    let Answer::Refused(r) = a.command("/v1/lease", &late).await else { panic!("a late lease is refused") };
    assert!(r.message.contains("too late by this agent's clock"), "{}", r.message);
    assert_eq!(primary_check(&b).await, 200, "nothing changed");

    // Not renewed: the lease ends by itself.
    let ended = Instant::now();
    while primary_check(&b).await == 200 {
        assert!(ended.elapsed() < Duration::from_secs(3), "B's lease never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_agent_that_does_not_answer_is_waited_for() {
    let (a_addr, _a) = agent("10.0.0.1:3306").await;
    // Nothing listens there.
    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        key(&l.local_addr().unwrap().to_string())
    };
    let cfg = config(vec![(key("10.0.0.1:3306"), a_addr.clone()), (key("10.0.0.2:3306"), gone.clone())]);
    let mover = VipMover::new("main", &cfg, new_book());
    let m = mover.round(&table(1, "10.0.0.1:3306"), None, &|| true).await.unwrap();
    let Moved::Waiting { until, holders } = &m else { panic!("{m:?}") };
    assert_eq!(holders, &vec![gone]);
    let left = until.saturating_duration_since(Instant::now());
    let b = bounds_of(&cfg);
    assert!(left <= b.after_new_epoch() && left > b.after_new_epoch() - Duration::from_secs(1), "{left:?}");
    assert!(mover.describe(1, &m).contains("no answer"), "{}", mover.describe(1, &m));
    let a = AgentClient::new(a_addr, cfg.token.clone(), cfg.timeout);
    assert_eq!(primary_check(&a).await, 503, "no lease while the other may hold one");
    // A table that moved on stops the round before any lease.
    let alone = config(vec![(key("10.0.0.1:3306"), a.addr.clone())]);
    let e = VipMover::new("main", &alone, new_book()).round(&table(1, "10.0.0.1:3306"), None, &|| false).await;
    assert!(e.as_ref().is_err_and(|e| e.contains("moved on from epoch 1")), "{e:?}");
    assert_eq!(primary_check(&a).await, 503);
}

#[tokio::test]
async fn without_the_token_nothing_is_answered() {
    let (a_addr, _a) = agent("10.0.0.1:3306").await;
    let wrong = AgentClient::new(a_addr.clone(), Secret::new("another-token-0123456789"), Duration::from_secs(1));
    assert!(wrong.state().await.unwrap_err().contains("HTTP 401"));
    let Answer::Failed(e) = wrong.command("/v1/release", &serde_json::json!({})).await else { panic!() };
    assert!(e.contains("HTTP 401") && e.contains("wrong token"), "{e}");
    let right = AgentClient::new(a_addr, Secret::new(TOKEN), Duration::from_secs(1));
    let st = right.state().await.unwrap();
    assert_eq!((st.epoch, st.instance), (0, key("10.0.0.1:3306")));
}
