//! A client that keeps writing and remembers what the server acknowledged.

use pivot_core::InstanceKey;
use pivot_dialect::Sql;
use pivot_server::{Credentials, Session};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where a [`Writer`] sends its writes.
#[derive(Clone)]
pub enum WriterTarget {
    /// Whichever of these instances accepts writes: the way an application
    /// behind a router behaves. Moves on at the first error.
    FollowPrimary(Vec<InstanceKey>),
    /// Always this instance, as a script with a hard-coded host would; keeps
    /// a write waiting on a hung server as long as `write_timeout` allows.
    Fixed(InstanceKey),
    /// Through a proxy (or any one address): reconnects there on error; each
    /// acknowledgement is credited to the server behind it, found by its
    /// `@@server_id` among `servers`.
    Proxy { proxy: InstanceKey, servers: Vec<(u32, InstanceKey)> },
    /// Ask `lookup` where the primary is at every (re)connect: a client of
    /// DNS or of a KV store.
    Lookup(Lookup),
}

/// Where to connect now (`None`: nowhere known yet).
pub type Lookup = std::sync::Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<InstanceKey>> + Send>> + Send + Sync,
>;

/// One acknowledged write.
#[derive(Clone, Debug)]
pub struct Ack {
    pub id: u64,
    pub instance: InstanceKey,
    /// When the acknowledgement arrived.
    pub at: Instant,
}

pub struct Writer {
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
    task: tokio::task::JoinHandle<()>,
}

/// The table every writer writes to (created by [`Writer::create_table`]).
pub const TABLE: &str = "test.drill_writes";

impl Writer {
    /// Create the table on the primary (replicated to the others).
    pub async fn create_table(primary_admin: &mut Session) {
        primary_admin
            .exec(&sql(&format!(
                "CREATE TABLE IF NOT EXISTS {TABLE} (id BIGINT PRIMARY KEY, writer INT NOT NULL, at DATETIME(6) NOT NULL)"
            )))
            .await
            .expect("create the drill table");
    }

    /// Start writing rows with ids `writer << 40 | n`.
    pub fn start(
        writer: u32,
        target: WriterTarget,
        creds: Credentials,
        write_timeout: Duration,
        pace: Duration,
    ) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let (s, a) = (stop.clone(), acks.clone());
        let task = tokio::spawn(async move {
            let nodes = match &target {
                WriterTarget::FollowPrimary(n) => n.clone(),
                WriterTarget::Fixed(k) | WriterTarget::Proxy { proxy: k, .. } => vec![k.clone()],
                WriterTarget::Lookup(_) => Vec::new(),
            };
            let lookup = match &target {
                WriterTarget::Lookup(l) => Some(l.clone()),
                _ => None,
            };
            let servers = match &target {
                WriterTarget::Proxy { servers, .. } => Some(servers.clone()),
                _ => None,
            };
            let mut behind: Option<InstanceKey> = None;
            let mut next_id = u64::from(writer) << 40;
            let follow = matches!(target, WriterTarget::FollowPrimary(_));
            let mut session: Option<Session> = None;
            while !s.load(Ordering::Relaxed) {
                if session.is_none() {
                    // Following the primary, ask every node at once who is
                    // writable, as a client behind a router would be redirected:
                    // a hung node must not hide the new primary for a timeout.
                    session = if let Some(lookup) = &lookup {
                        match lookup().await {
                            Some(k) => Session::connect(&k, &creds, write_timeout).await.ok(),
                            None => None,
                        }
                    } else if follow {
                        find_writable(&nodes, &creds, write_timeout).await
                    } else {
                        Session::connect(&nodes[0], &creds, write_timeout).await.ok()
                    };
                    if session.is_none() {
                        let pause = if follow || lookup.is_some() { 2 } else { 10 };
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                        continue;
                    }
                    if let (Some(servers), Some(sess)) = (&servers, session.as_mut()) {
                        behind = server_behind(sess, servers).await;
                        if behind.is_none() {
                            session = None;
                            continue;
                        }
                    }
                }
                let sess = session.as_mut().expect("connected");
                let key = behind.clone().unwrap_or_else(|| sess.key.clone());
                let id = next_id;
                let insert = sql(&format!("INSERT INTO {TABLE} (id, writer, at) VALUES ({id}, {writer}, NOW(6))"));
                match sess.exec(&insert).await {
                    Ok(()) => {
                        a.lock().unwrap().push(Ack { id, instance: key, at: Instant::now() });
                        next_id += 1;
                        if !pace.is_zero() {
                            tokio::time::sleep(pace).await;
                        }
                    }
                    Err(_) => {
                        // Unknown outcome or refused: not acknowledged. Use a
                        // fresh id so a late commit is never mistaken for an ack.
                        next_id += 1;
                        session = None;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
        });
        Writer { stop, acks, task }
    }

    /// What was acknowledged so far.
    pub fn acks(&self) -> Vec<Ack> {
        self.acks.lock().unwrap().clone()
    }

    /// The first acknowledgement from `instance` at or after `after`.
    pub fn first_ack_on(&self, instance: &InstanceKey, after: Instant) -> Option<Instant> {
        self.acks.lock().unwrap().iter().find(|a| &a.instance == instance && a.at >= after).map(|a| a.at)
    }

    pub async fn stop(self) -> Vec<Ack> {
        self.stop.store(true, Ordering::Relaxed);
        // A write stuck on a hung server is abandoned.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        self.acks.lock().unwrap().clone()
    }
}

/// Which of `servers` a session through a proxy reached.
async fn server_behind(s: &mut Session, servers: &[(u32, InstanceKey)]) -> Option<InstanceKey> {
    let rows = s.rows(&sql("SELECT @@server_id AS id")).await.ok()?;
    let id: u32 = rows.first()?.get("id").cloned().flatten()?.parse().ok()?;
    servers.iter().find(|(sid, _)| *sid == id).map(|(_, k)| k.clone())
}

/// A session on whichever of `nodes` answers first as writable.
async fn find_writable(nodes: &[InstanceKey], creds: &Credentials, timeout: Duration) -> Option<Session> {
    let mut probes = tokio::task::JoinSet::new();
    for key in nodes {
        let (key, creds) = (key.clone(), creds.clone());
        probes.spawn(async move {
            let mut s = Session::connect(&key, &creds, timeout).await.ok()?;
            let rows = s.rows(&sql("SELECT @@read_only AS ro")).await.ok()?;
            (rows.first()?.get("ro").cloned().flatten().as_deref() == Some("0")).then_some(s)
        });
    }
    // A hung node would hold the round for a whole timeout: give up on
    // stragglers quickly and let the caller ask again.
    let first_writable = async {
        while let Some(done) = probes.join_next().await {
            if let Ok(Some(s)) = done {
                return Some(s);
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_millis(50), first_writable).await.ok().flatten()
}

/// The acknowledged writes that `session`'s instance does not have.
pub async fn missing_writes(session: &mut Session, acks: &[Ack]) -> Vec<u64> {
    let rows = session.rows(&sql(&format!("SELECT id FROM {TABLE}"))).await.expect("read the drill table");
    let present: BTreeSet<u64> =
        rows.iter().filter_map(|r| r.get("id").cloned().flatten()).filter_map(|v| v.parse().ok()).collect();
    acks.iter().map(|a| a.id).filter(|id| !present.contains(id)).collect()
}

fn sql(text: &str) -> Sql {
    Sql::plain(text)
}
