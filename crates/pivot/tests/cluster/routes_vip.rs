//! The virtual IP route for real: each node in its own network namespace
//! (198.18.0.0/15 on a bridge) with `pivot agent` running inside it, a
//! client in another namespace on the same bridge connecting through the
//! address. The address follows pivot's primary after a kill -9, is never
//! on two hosts (every host's addresses polled throughout), leaves by
//! itself when nobody renews its lease (pivot frozen, or the agent itself
//! frozen: the kernel's lifetime), and unauthenticated requests change
//! nothing.

use crate::support::*;
pub use pivot_drill::{agent_addr, agent_config_path, agent_get, ClientNs, VipLab};
use pivot_drill::{eventually, http_request, Agents, TestSandbox};
use pivot_sandbox::Network;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The token file, the agents' configurations and the `[cluster.vip]` table.
pub fn vip_table(sb: &TestSandbox, keepalived: bool) -> String {
    pivot_drill::vip_table(sb, keepalived).expect("write the agents' files")
}

/// `pivot agent` in each node's namespace, answering.
pub async fn start_agents(sb: &TestSandbox) -> Agents {
    Agents::start(pivot_bin(), sb).await.unwrap_or_else(|e| panic!("{e}"))
}

/// The client's namespace on the lab's bridge.
pub fn client_ns(lab: &VipLab) -> ClientNs {
    ClientNs::create(lab).unwrap_or_else(|e| panic!("client namespace: {e}"))
}

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

#[derive(Default, Clone, Debug)]
pub struct Watched {
    /// Node indices holding the address at the last look.
    pub holders: Vec<usize>,
    pub samples: u64,
    /// Every look that found it on two hosts or more.
    pub doubles: Vec<String>,
    /// (time since start, holders) at each change.
    pub changes: Vec<(Duration, Vec<usize>)>,
}

/// Polls every host's addresses (`ip -n <ns> -o addr show`) every 20 ms.
pub struct VipWatch {
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<Watched>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl VipWatch {
    pub fn start(namespaces: Vec<String>, vip: String) -> VipWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(Watched::default()));
        let (s, st) = (stop.clone(), state.clone());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let needle = format!("inet {vip}/");
            while !s.load(Ordering::Relaxed) {
                let holders: Vec<usize> = namespaces
                    .iter()
                    .enumerate()
                    .filter(|(_, ns)| {
                        ip(&["-n", ns, "-o", "-4", "addr", "show", "dev", "eth0"]).is_ok_and(|o| o.contains(&needle))
                    })
                    .map(|(i, _)| i)
                    .collect();
                let t = started.elapsed();
                let mut w = st.lock().unwrap();
                w.samples += 1;
                if holders.len() > 1 {
                    w.doubles.push(format!("{t:?}: on nodes {holders:?}"));
                }
                if w.changes.last().is_none_or(|(_, h)| *h != holders) {
                    w.changes.push((t, holders.clone()));
                }
                w.holders = holders;
                drop(w);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        VipWatch { stop, state, thread: Some(thread) }
    }

    pub fn now(&self) -> Watched {
        self.state.lock().unwrap().clone()
    }

    /// Wait until the address is on exactly `want` (node indices).
    pub async fn wait_holders(&self, want: &[usize], bound: Duration, what: &str) -> Duration {
        let t = Instant::now();
        eventually(bound, what, || async {
            let w = self.now();
            (w.holders == want).then_some(()).ok_or(format!("on {:?}", w.holders))
        })
        .await;
        t.elapsed()
    }

    pub fn finish(mut self) -> Watched {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.now()
    }
}

impl Drop for VipWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn node_index(rig: &Rig, key: &str) -> usize {
    rig.sb.nodes().iter().position(|n| rig.key(&n.name) == key).expect("a node of the sandbox")
}

/// The last recovery's `route_vip` step once it has ended: the address is
/// up (and clients reach it) a moment before pivot records the step's end.
pub async fn ended_route_vip_step(rig: &Rig) -> serde_json::Value {
    eventually(WAIT, "the route_vip step ended", || async {
        let h = rig.history();
        let step = last_recovery(&h)["steps"].as_array().and_then(|s| s.iter().find(|s| s["name"] == "route_vip"));
        match step {
            Some(s) if !s["outcome"].is_null() => Ok(s.clone()),
            _ => Err(format!("{:?}", steps(last_recovery(&h)))),
        }
    })
    .await
}

/// Wait until the client reaches server `id` through the address.
pub async fn wait_client_reaches(client: &ClientNs, rig: &Rig, vip: &str, id: u32) -> Duration {
    let t = Instant::now();
    let port = rig.sb.nodes()[0].port;
    let defaults = rig.sb.dir.join("app.cnf");
    eventually(WAIT, &format!("the client reaches server {id} through {vip}"), || async {
        let got = client.server_id(vip, port, &defaults)?;
        (got == id).then_some(()).ok_or(format!("server {got}"))
    })
    .await;
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_vip_follows_pivots_primary_and_is_never_on_two_hosts() {
    let mut rig = Rig::start_in(Network::Namespaces, 3, false, |sb| vip_table(sb, false)).await;
    let lab = VipLab::of(&rig.sb);
    let vip = lab.vip();
    let watch = VipWatch::start(lab.namespaces.clone(), vip.clone());
    let agents = start_agents(&rig.sb).await;
    let client = client_ns(&lab);

    // Before: the address on node1, the client reaches node1.
    watch.wait_holders(&[0], WAIT, "the address on node1").await;
    wait_client_reaches(&client, &rig, &vip, 1).await;
    let (a1, a2) = (agent_addr(&rig.sb, 0), agent_addr(&rig.sb, 1));
    eventually(WAIT, "health checks on the agents", || async {
        let p1 = agent_get(a1, "/primary").await?;
        let p2 = agent_get(a2, "/primary").await?;
        let r2 = agent_get(a2, "/replica?lag=10s").await?;
        (p1.0 == 200 && p2.0 == 503 && r2.0 == 200).then_some(()).ok_or(format!("{p1:?} {p2:?} {r2:?}"))
    })
    .await;

    // Unauthenticated commands change nothing: 401, the address stays.
    let state = agent_get(a2, "/v1/state").await.unwrap().1;
    let boot = serde_json::from_str::<serde_json::Value>(&state).unwrap()["boot"].as_str().unwrap().to_string();
    let table =
        serde_json::json!({"epoch": 99, "primary": rig.key("node2"), "hold": false, "instances": [], "max_lag_s": 10});
    let lease = serde_json::json!({"epoch": 99, "boot": boot, "valid_until_ms": u64::MAX, "lease_ms": 60000,
        "vip": {"address": format!("{vip}/24"), "interface": "eth0"}, "table": table});
    let release = serde_json::json!({"epoch": 99, "lease_ms": 3000,
        "vip": {"address": format!("{vip}/24"), "interface": "eth0"}, "table": table});
    let wrong = "Bearer wrong-token-0123456789abcdef".to_string();
    let bad_headers: [(&str, Vec<(&str, &str)>); 3] = [
        ("no token", vec![]),
        ("a wrong token", vec![("Authorization", wrong.as_str())]),
        ("another scheme", vec![("Authorization", "Basic dGVzdDp0ZXN0")]),
    ];
    for (what, headers) in &bad_headers {
        for (addr, path, body) in [
            (a2, "/v1/lease", lease.to_string()),
            (a1, "/v1/release", release.to_string()),
            (a1, "/v1/table", serde_json::json!({"lease_ms": 3000, "table": table}).to_string()),
        ] {
            let mut h = headers.clone();
            h.push(("Content-Type", "application/json"));
            let (status, body) = http_request(addr, "POST", path, &h, &body).await.unwrap();
            assert_eq!(status, 401, "{what}: POST {path} on {addr}: {body}");
        }
        for path in ["/v1/state", "/primary", "/health"] {
            let (status, _) = http_request(a1, "GET", path, headers, "").await.unwrap();
            assert_eq!(status, 401, "{what}: GET {path}");
        }
    }
    // After pivot's next renewal of node1's lease (its deadline on the
    // agent's clock moves forward), nothing moved.
    let deadline_of = |body: &str| -> Option<u64> {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        Some(v["clock_ms"].as_u64()? + v["lease"]["left_ms"].as_u64()?)
    };
    let before = deadline_of(&agent_get(a1, "/v1/state").await.unwrap().1).expect("node1 holds a lease");
    eventually(WAIT, "pivot renewed node1's lease", || async {
        let (_, body) = agent_get(a1, "/v1/state").await?;
        let now = deadline_of(&body).ok_or(body.clone())?;
        (now > before).then_some(()).ok_or(format!("deadline {now}, was {before}"))
    })
    .await;
    assert_eq!(watch.now().holders, vec![0], "the refused commands changed nothing");
    assert_eq!(client.server_id(&vip, rig.sb.nodes()[0].port, &rig.sb.dir.join("app.cnf")), Ok(1));
    assert!(agents.log(1).contains("refused POST /v1/lease: wrong token"), "{}", agents.log(1));

    // kill -9 of the primary: the address moves to the new primary.
    let old = rig.key("node1");
    let killed = Instant::now();
    rig.sb.kill("node1").unwrap();
    let new = rig.wait_new_primary(&old).await;
    let n = node_index(&rig, &new);
    let id = rig.sb.nodes()[n].server_id;
    wait_client_reaches(&client, &rig, &vip, id).await;
    let reached = killed.elapsed();
    assert_eq!(watch.now().holders, vec![n]);
    let step = ended_route_vip_step(&rig).await;
    assert_eq!(step["outcome"], "ok", "{step}");
    let said = step["message"].as_str().unwrap_or_default();
    assert!(said.contains(&format!("{vip}/24 on {new}")) && said.contains("released by"), "{said}");
    assert!(said.contains(&a1.to_string()), "the old primary's agent confirmed: {said}");

    // Nobody renews the lease (pivot frozen): the address leaves by itself.
    let pid = rig.pivot.pid().unwrap() as i32;
    // SAFETY: signalling our own child by its PID.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let unrenewed = watch.wait_holders(&[], Duration::from_secs(8), "the address gone without renewals").await;
    let (status, body) = agent_get(agent_addr(&rig.sb, n), "/primary").await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(agents.log(n).contains("ended without a renewal from pivot"), "{}", agents.log(n));
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    watch.wait_holders(&[n], WAIT, "the address back with pivot").await;
    wait_client_reaches(&client, &rig, &vip, id).await;

    // The agent itself frozen: the kernel ends the address's lifetime.
    agents.signal(n, libc::SIGSTOP);
    let frozen = watch.wait_holders(&[], Duration::from_secs(8), "the address gone with its agent frozen").await;
    agents.signal(n, libc::SIGCONT);
    watch.wait_holders(&[n], WAIT, "the address back with its agent").await;
    wait_client_reaches(&client, &rig, &vip, id).await;

    let w = watch.finish();
    eprintln!(
        "vip: client on the new primary {:.2} s after kill -9; gone {:.2} s after pivot froze, {:.2} s after the agent \
         froze (lease 3 s); {} looks at every host; changes: {:?}",
        reached.as_secs_f64(),
        unrenewed.as_secs_f64(),
        frozen.as_secs_f64(),
        w.samples,
        w.changes
    );
    assert!(w.doubles.is_empty(), "the address was on two hosts: {:?}", w.doubles);
    // The watch ran all along (each look runs `ip` in every namespace: a
    // loaded machine looks less often; a full suite run saw 79).
    assert!(w.samples > 20, "the watch looked {} times", w.samples);
    assert!(
        unrenewed <= Duration::from_millis(4600) && frozen <= Duration::from_millis(4600),
        "{unrenewed:?} {frozen:?}"
    );
    rig.pivot.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_old_primary_keeps_the_vip_only_until_its_lease_certainly_ended() {
    let rig = Rig::start_in(Network::Namespaces, 3, false, |sb| vip_table(sb, false)).await;
    let lab = VipLab::of(&rig.sb);
    let vip = lab.vip();
    let watch = VipWatch::start(lab.namespaces.clone(), vip.clone());
    let _agents = start_agents(&rig.sb).await;
    let client = client_ns(&lab);
    watch.wait_holders(&[0], WAIT, "the address on node1").await;
    wait_client_reaches(&client, &rig, &vip, 1).await;
    // The agents move the address: a keepalived configuration is refused.
    let out = cli(&rig, &["keepalived-config", "--cluster", "sandbox"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("keepalived = false"), "{err}");

    // node1 cut off from everyone: its agent cannot be told to release.
    let old = rig.key("node1");
    let cut = Instant::now();
    rig.sb.isolate("node1").unwrap();
    let new = rig.wait_new_primary(&old).await;
    let n = node_index(&rig, &new);
    let id = rig.sb.nodes()[n].server_id;
    wait_client_reaches(&client, &rig, &vip, id).await;
    let reached = cut.elapsed();
    let step = ended_route_vip_step(&rig).await;
    assert_eq!(step["outcome"], "ok", "{step}");
    let said = step["message"].as_str().unwrap_or_default();
    assert!(said.contains("no answer from") && said.contains(&agent_addr(&rig.sb, 0).to_string()), "{said}");
    rig.sb.heal("node1").unwrap();
    // Back: the old host's agent answers again, holding nothing; the
    // address stays where it is.
    let a_old = agent_addr(&rig.sb, 0);
    eventually(WAIT, "the old host's agent answers, holding no address", || async {
        let (_, body) = agent_get(a_old, "/v1/state").await?;
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        v["vip"].is_null().then_some(()).ok_or(body)
    })
    .await;
    let w = watch.finish();
    eprintln!(
        "vip: client on the new primary {:.2} s after the old one was cut off; changes: {:?}",
        reached.as_secs_f64(),
        w.changes
    );
    assert_eq!(w.holders, vec![n]);
    assert!(w.doubles.is_empty(), "the address was on two hosts: {:?}", w.doubles);
    // It left node1 (its lease ended there) before it came up on the new one.
    let on_old = w.changes.iter().position(|(_, h)| h == &vec![0]).expect("on node1 first");
    let left = on_old + w.changes[on_old..].iter().position(|(_, h)| h.is_empty()).expect("a moment on no host");
    assert!(w.changes[on_old..left].iter().all(|(_, h)| h == &vec![0]), "{:?}", w.changes);
    assert!(w.changes[left..].iter().all(|(_, h)| h.is_empty() || h == &vec![n]), "{:?}", w.changes);
}
