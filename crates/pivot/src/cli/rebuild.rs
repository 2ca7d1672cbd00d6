//! `pivot rebuild HOST:PORT [--cluster C] [--from REPLICA]`: rebuild a
//! replica (a quarantined former primary, a broken replica) from a physical
//! backup of another replica, through the agents on both hosts, then point
//! it at the primary with GTID positioning. The primary is never touched.
//!
//! Everything that can be checked is checked before the target's server is
//! stopped: the decision (`pivot_core::rebuild::decide`), both agents, the
//! replication account.

use super::rebuild_progress::Progress;
use super::{EXIT_ATTENTION, EXIT_FAILURE, EXIT_OK};
use crate::agent::rebuild::protocol::{Job, Phase, RebuildRequest, RebuildStatus};
use crate::config::{ClusterConfig, Config};
use crate::routes::vip::client::AgentClient;
use pivot_core::analysis::ProblemKind;
use pivot_core::rebuild::{backup_info, decide, RebuildChoice, RebuildInput, Replica};
use pivot_core::InstanceKey;
use pivot_dialect::ChangeSource;
use pivot_server::{actions, Credentials, Session};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Between two looks at the target agent's progress.
const POLL: Duration = Duration::from_millis(500);

pub async fn run(
    config_path: &Path,
    target: InstanceKey,
    cluster: Option<&str>,
    from: Option<InstanceKey>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let c = match cluster {
        Some(name) => super::cluster_of(&config, name)?,
        None => match config.clusters.as_slice() {
            [only] => only,
            _ => {
                let listing = config.clusters.iter().find(|c| c.seeds.contains(&target)).map(|c| c.name.clone());
                match listing {
                    Some(name) => super::cluster_of(&config, &name)?,
                    None => anyhow::bail!("several clusters are configured: name one with --cluster"),
                }
            }
        },
    };
    let refuse = |why: String| -> anyhow::Result<ExitCode> {
        eprintln!("refused: {why}; nothing was changed");
        Ok(ExitCode::from(EXIT_ATTENTION))
    };
    let state = pivot_state::open(&config.pivot.state)?;
    let recovery_running = state.running_recovery(&c.name)?.is_some();
    let (view, analysis) = super::observe(c, Some(state.as_ref())).await;
    let fenced: Vec<InstanceKey> = state.fenced(&c.name)?.iter().filter_map(|f| f.instance.parse().ok()).collect();
    let input = rebuild_input(c, &view, &analysis, &fenced, target.clone(), from, recovery_running);
    let choice = match decide(&input) {
        Ok(choice) => choice,
        Err(r) => return refuse(r.to_string()),
    };
    let Some(repl) = c.replication.clone() else {
        return refuse(format!(
            "[cluster.replication] of `{}` is not set: pivot needs the replication account to point the rebuilt \
             server at the primary",
            c.name
        ));
    };
    let (target_agent, donor_agent) = match agents(c, &choice) {
        Ok(a) => a,
        Err(why) => return refuse(why),
    };
    // Both agents answer and can do their part, before anything changes.
    match target_agent.request(hyper::Method::GET, "/v1/rebuild/status", None).await {
        Ok((200, body)) => match serde_json::from_slice::<RebuildStatus>(&body) {
            Ok(s) if s.unconfigured.is_some() => return refuse(s.unconfigured.unwrap_or_default()),
            Ok(s) if s.job.as_ref().is_some_and(|j| !j.phase.ended()) => {
                return refuse(format!("a rebuild of {} is already running", choice.target))
            }
            Ok(_) => {}
            Err(e) => return refuse(format!("the target's agent {} answered nonsense: {e}", target_agent.addr)),
        },
        Ok((s, body)) => {
            return refuse(format!(
                "the target's agent {} answered HTTP {s}: {}",
                target_agent.addr,
                String::from_utf8_lossy(&body).trim()
            ))
        }
        Err(e) => return refuse(format!("the target's agent is unreachable: {e}")),
    }
    match donor_agent.request(hyper::Method::GET, "/v1/backup/check", None).await {
        Ok((200, _)) => {}
        Ok((s, body)) => {
            return refuse(format!(
                "the donor's agent {} cannot serve a backup (HTTP {s}): {}",
                donor_agent.addr,
                String::from_utf8_lossy(&body).trim()
            ))
        }
        Err(e) => return refuse(format!("the donor's agent is unreachable: {e}")),
    }

    let what = format!("rebuild of {} from {}", choice.target, choice.donor);
    eprintln!("{what}: the primary {} is not touched", choice.primary);
    record(&*state, &c.name, "info", &format!("{what} started"));
    let req = RebuildRequest { donor_agent: donor_agent.addr.to_string(), donor: choice.donor.to_string() };
    let body = serde_json::to_vec(&req)?;
    match target_agent.request(hyper::Method::POST, "/v1/rebuild", Some(body)).await {
        Ok((200, _)) => {}
        Ok((s, body)) => {
            let why = format!("HTTP {s}: {}", String::from_utf8_lossy(&body).trim());
            record(&*state, &c.name, "warn", &format!("{what} refused by the target's agent: {why}"));
            return refuse(format!("the target's agent {} refused: {why}", target_agent.addr));
        }
        Err(e) => {
            // The agent may have started: say so, do not guess.
            let why = format!("{e}; see `GET /v1/rebuild/status` on that agent");
            record(&*state, &c.name, "error", &format!("{what}: no answer from the target's agent: {why}"));
            eprintln!("failed: the target's agent did not answer the start: {why}");
            return Ok(ExitCode::from(EXIT_FAILURE));
        }
    }
    let job = match follow(&target_agent, c.rebuild.max_duration).await {
        Ok(j) => j,
        Err(e) => {
            record(&*state, &c.name, "error", &format!("{what}: {e}"));
            eprintln!("failed: {e}");
            return Ok(ExitCode::from(EXIT_FAILURE));
        }
    };
    if job.phase == Phase::Failed {
        let why = job.error.clone().unwrap_or_else(|| "no reason given".into());
        record(&*state, &c.name, "error", &format!("{what} failed: {why}"));
        eprintln!("failed: {why}");
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    let kept = job.old_datadir.clone().unwrap_or_else(|| "(none)".into());
    match replicate(c, &*state, &choice, &job, &repl).await {
        Ok((pos, primary)) => {
            if fenced.contains(&choice.target) {
                state.fence_remove(&c.name, &choice.target.to_string())?;
            }
            let said = format!(
                "{what} ended: replicating from {primary} from GTID {pos}; {} received; old datadir kept at {kept}",
                super::rebuild_progress::bytes(job.bytes)
            );
            record(&*state, &c.name, "info", &said);
            super::out::emit(&format!("{said}\n"))?;
            Ok(ExitCode::from(EXIT_OK))
        }
        Err(e) => {
            let why = format!("{what}: the server was rebuilt but {e}; the old datadir is kept at {kept}");
            record(&*state, &c.name, "error", &why);
            eprintln!("failed: {why}");
            Ok(ExitCode::from(EXIT_FAILURE))
        }
    }
}

/// What the core needs, from a fresh discovery.
fn rebuild_input(
    c: &ClusterConfig,
    view: &pivot_core::ClusterView,
    analysis: &pivot_core::ClusterAnalysis,
    fenced: &[InstanceKey],
    target: InstanceKey,
    from: Option<InstanceKey>,
    recovery_running: bool,
) -> RebuildInput {
    let mut known: Vec<InstanceKey> = view.keys().cloned().collect();
    known.extend(fenced.iter().filter(|f| !known.contains(f)).cloned().collect::<Vec<_>>());
    let replicas = view
        .keys()
        .filter_map(|k| {
            let rec = view.get(k)?;
            let st = rec.current_state();
            let repl = st.and_then(|s| s.replication.as_ref());
            if rec.reachable() && repl.is_none() {
                return None;
            }
            let errant = analysis.problems_of(k).any(|p| matches!(p.kind, ProblemKind::ErrantGtids { .. }));
            Some(Replica {
                key: k.clone(),
                reachable: rec.reachable(),
                source: repl.map(|r| r.source.clone()),
                threads_running: repl.is_some_and(|r| {
                    r.io_thread == pivot_core::observation::IoThread::Running
                        && r.sql_running
                        && r.io_error.is_none()
                        && r.sql_error.is_none()
                }),
                uses_gtid: repl.is_some_and(|r| r.using_gtid),
                lag_s: repl.and_then(|r| r.seconds_behind),
                executed: st.map(|s| s.gtid.executed.clone()),
                errant,
                never_promote: c.failover.never_promote.contains(k),
            })
        })
        .collect();
    RebuildInput {
        target,
        from,
        primary: analysis.primary.clone(),
        recovery_running,
        known,
        replicas,
        max_lag_s: c.detection.lag_threshold_s,
    }
}

/// The target's and the donor's agents.
fn agents(c: &ClusterConfig, choice: &RebuildChoice) -> Result<(AgentClient, AgentClient), String> {
    let (list, token) = crate::config::rebuild_agents(c);
    let Some(token) = token else {
        return Err(format!(
            "cluster `{}` names no agents' token: add [cluster.rebuild] token_file (or configure [cluster.vip])",
            c.name
        ));
    };
    let find = |k: &InstanceKey, role: &str| {
        list.iter().find(|(i, _)| i == k).map(|(_, a)| a.clone()).ok_or_else(|| {
            format!(
                "no agent is configured for the {role} {k}: add it to [cluster.rebuild] agents, like \
                 agents = {{ \"{k}\" = \"{}:9190\" }}",
                k.host
            )
        })
    };
    let t = find(&choice.target, "target")?;
    let d = find(&choice.donor, "donor")?;
    let timeout = c.rebuild.timeout;
    Ok((AgentClient::new(t, token.clone(), timeout), AgentClient::new(d, token, timeout)))
}

/// Show the target agent's progress until the job ends (bounded).
async fn follow(agent: &AgentClient, bound: Duration) -> Result<Job, String> {
    let began = Instant::now();
    let mut progress = Progress::new();
    let mut unanswered = 0;
    loop {
        match agent.request(hyper::Method::GET, "/v1/rebuild/status", None).await {
            Ok((200, body)) => {
                unanswered = 0;
                let s: RebuildStatus = serde_json::from_slice(&body).map_err(|e| format!("agent status: {e}"))?;
                let Some(job) = s.job else { return Err("the target's agent lost the rebuild (restarted?)".into()) };
                progress.show(&job);
                if job.phase.ended() {
                    return Ok(job);
                }
            }
            other => {
                // A few missed answers are tolerated: the agent is busy or the
                // network blinked.
                unanswered += 1;
                if unanswered >= 20 {
                    return Err(format!("the target's agent stopped answering: {other:?}"));
                }
            }
        }
        if began.elapsed() > bound {
            return Err(format!(
                "the rebuild did not end within [cluster.rebuild] max_duration {}; it may still run on the agent",
                humantime::format_duration(bound)
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Make the rebuilt server read-only, point it at the primary from the
/// backup's GTID position, and wait until it replicates. Returns the
/// position and the primary.
/// Read-only, replication reset to the backup's position, pointed at the
/// primary and started, on `s`. Errors say whether the connection was lost
/// (`true`: worth a new session) and what failed.
async fn point_at_primary(
    s: &mut Session,
    c: &ClusterConfig,
    state: &dyn pivot_state::StateStore,
    choice: &RebuildChoice,
    pos: &pivot_core::GtidSet,
    repl: &Credentials,
) -> Result<InstanceKey, (bool, String)> {
    fn err(what: &'static str) -> impl Fn(pivot_server::SessionError) -> (bool, String) {
        move |e| (!e.is_server_error(), format!("{what}: {e}"))
    }
    actions::make_read_only(s).await.map_err(err("making it read-only"))?;
    let primary = primary_now(c, state, choice).await.map_err(|e| (false, e))?;
    let d = s.dialect.clone();
    let set_pos = d.set_replica_position(pos).ok_or((false, "only MariaDB replicas can be rebuilt".to_string()))?;
    s.exec(&d.stop_replica()).await.map_err(err("stopping replication"))?;
    s.exec(&d.reset_replica_all()).await.map_err(err("resetting replication"))?;
    s.exec(&set_pos).await.map_err(err("setting the GTID position"))?;
    let change = ChangeSource {
        source: Some(primary.clone()),
        user: Some(repl.user.clone()),
        password: Some(repl.password.expose().to_string()),
        heartbeat_ms: None,
        connect_retry_s: Some(1),
    };
    s.exec(&d.change_source(&change)).await.map_err(err("pointing it at the primary"))?;
    actions::start_replica(s).await.map_err(err("starting replication"))?;
    Ok(primary)
}

async fn replicate(
    c: &ClusterConfig,
    state: &dyn pivot_state::StateStore,
    choice: &RebuildChoice,
    job: &Job,
    repl: &Credentials,
) -> Result<(String, InstanceKey), String> {
    let (pos, _) = backup_info::resume_position(job.slave_info.as_deref(), job.binlog_info.as_deref())?;
    let bound = c.rebuild.replicate_timeout;
    let began = Instant::now();
    // The daemon may fence the rebuilt server the moment it answers (it
    // starts writable if its option file says so), ending every client
    // session, this one included: on a lost connection the (idempotent)
    // statements are run again on a new one, within the same bound.
    let (mut s, primary) = loop {
        let mut s = loop {
            match Session::connect(&choice.target, &c.credentials, c.probe_timeout.max(Duration::from_secs(2))).await {
                Ok(s) => break s,
                Err(e) if began.elapsed() > bound => return Err(format!("it does not accept pivot's login: {e}")),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        match point_at_primary(&mut s, c, state, choice, &pos, repl).await {
            Ok(primary) => break (s, primary),
            Err((lost, e)) if lost && began.elapsed() < bound => {
                tracing::info!("rebuild: {e}; connecting again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err((_, e)) => return Err(e),
        }
    };
    let left = bound.saturating_sub(began.elapsed()).max(Duration::from_secs(5));
    actions::confirm_replicating(&mut s, &primary, left).await.map_err(|e| e.to_string())?;
    let shown = if pos.is_empty() { "none (the donor had applied nothing yet)".to_string() } else { pos.to_string() };
    Ok((shown, primary))
}

/// The primary once the backup is in place: it may have changed while the
/// backup streamed (a failover), and the rebuilt server follows whoever is
/// the primary now (the same GTID history).
async fn primary_now(
    c: &ClusterConfig,
    state: &dyn pivot_state::StateStore,
    choice: &RebuildChoice,
) -> Result<InstanceKey, String> {
    let again = "it is read-only and not replicating: run `pivot rebuild` again";
    if state.running_recovery(&c.name).map_err(|e| e.to_string())?.is_some() {
        return Err(format!("a recovery of the cluster started during the rebuild; {again} once it has ended"));
    }
    let (_, analysis) = super::observe(c, Some(state)).await;
    match analysis.primary {
        Some(p) if p != choice.target => {
            if p != choice.primary {
                eprintln!("the primary changed during the rebuild: {} is now the primary", p);
            }
            Ok(p)
        }
        _ => Err(format!("the cluster has no identifiable primary now ({}); {again}", analysis.signal)),
    }
}

/// An event in the state file's history; a failure to write it is only logged.
fn record(state: &dyn pivot_state::StateStore, cluster: &str, level: &str, message: &str) {
    if let Err(e) = state.event(cluster, crate::clock::wall_ms(), level, message) {
        tracing::warn!("cannot record `{message}` in the state file: {e}");
    }
}
