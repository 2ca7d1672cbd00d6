//! `pivot sandbox`: throwaway local clusters.

use super::EXIT_OK;
use clap::Subcommand;
use pivot_sandbox::{Network, Sandbox, SandboxSpec};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum SandboxCommand {
    /// Start N MariaDB instances with GTID replication and write DIR/pivot.toml.
    Up {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        nodes: u16,
        /// First port (node N listens on base + N - 1); default: free ports from 23306.
        #[arg(long)]
        base_port: Option<u16>,
        /// Semi-synchronous replication, AFTER_SYNC, never falling back to async.
        #[arg(long)]
        semi_sync: bool,
        /// Run each node in its own network namespace (198.18.0.0/15, port
        /// 3306 each, root only), so network faults can be drilled.
        #[arg(long)]
        netns: bool,
    },
    /// Stop every node of the sandbox (by the PIDs it recorded).
    Down {
        #[arg(long)]
        dir: PathBuf,
        /// Also delete DIR and everything in it.
        #[arg(long)]
        remove: bool,
    },
    /// SIGKILL a node: a crash.
    Kill(NodeArgs),
    /// Shut a node down cleanly.
    Stop(NodeArgs),
    /// Start a stopped or killed node.
    Start(NodeArgs),
    /// SIGSTOP a node: it hangs with its connections open.
    Pause(NodeArgs),
    /// SIGCONT a paused node.
    Resume(NodeArgs),
    /// Cut the path between pivot's side and a node; the nodes still reach each other (--netns).
    Cut(NodeArgs),
    /// Take a node off the network entirely (--netns).
    Isolate(NodeArgs),
    /// Undo cut and isolate (--netns).
    Heal(NodeArgs),
    /// STONITH for sandbox nodes, meant as pivot's `fence` hook: SIGKILL the
    /// node listening at --failed-primary. Exit 0 when it is dead.
    Stonith {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        failed_primary: pivot_core::InstanceKey,
        #[command(flatten)]
        hook: HookArgs,
    },
}

/// The other arguments pivot appends when it runs a hook (accepted, unused).
#[derive(clap::Args, Debug)]
pub struct HookArgs {
    #[arg(long, hide = true)]
    hook: Option<String>,
    #[arg(long, hide = true)]
    cluster: Option<String>,
    #[arg(long, hide = true)]
    new_primary: Option<String>,
    #[arg(long, hide = true)]
    recovery_id: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    #[arg(long)]
    dir: PathBuf,
    /// node1, node2... or just the number.
    node: String,
}

pub async fn run(cmd: SandboxCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SandboxCommand::Up { dir, nodes, base_port, semi_sync, netns } => {
            let network = if netns { Network::Namespaces } else { Network::Loopback };
            let spec = SandboxSpec { nodes, base_port, semi_sync, network, ..SandboxSpec::new(dir) };
            let sb = Sandbox::up(&spec).await?;
            print_up(&sb)?;
        }
        SandboxCommand::Down { dir, remove } => {
            let mut sb = Sandbox::open(&dir)?;
            sb.down(remove)?;
            println!("sandbox in {} stopped{}", dir.display(), if remove { " and removed" } else { "" });
        }
        SandboxCommand::Kill(a) => drill(&a, "killed (SIGKILL)", |sb, n| sb.kill(n))?,
        SandboxCommand::Stop(a) => drill(&a, "stopped", |sb, n| sb.stop(n))?,
        SandboxCommand::Pause(a) => drill(&a, "paused (SIGSTOP)", |sb, n| sb.pause(n))?,
        SandboxCommand::Resume(a) => drill(&a, "resumed (SIGCONT)", |sb, n| sb.resume(n))?,
        SandboxCommand::Cut(a) => drill(&a, "cut off from pivot's side", |sb, n| sb.cut(n))?,
        SandboxCommand::Isolate(a) => drill(&a, "isolated from everyone", |sb, n| sb.isolate(n))?,
        SandboxCommand::Heal(a) => drill(&a, "back on the network", |sb, n| sb.heal(n))?,
        SandboxCommand::Stonith { dir, failed_primary, hook: _ } => {
            let mut sb = Sandbox::open(&dir)?;
            let name = sb.node_at(&failed_primary).map(|n| n.name.clone()).ok_or_else(|| {
                anyhow::anyhow!("no node of the sandbox in {} listens at {failed_primary}", dir.display())
            })?;
            if sb.live_pid(&name)?.is_some() {
                sb.kill(&name)?;
                println!("{name} ({failed_primary}) killed: fenced");
            } else {
                println!("{name} ({failed_primary}) is not running: fenced");
            }
        }
        SandboxCommand::Start(a) => {
            let mut sb = Sandbox::open(&a.dir)?;
            sb.start(&a.node).await?;
            let n = sb.node(&a.node)?;
            println!("{} ({}:{}) started, pid {}", n.name, n.host, n.port, n.pid.unwrap_or_default());
        }
    }
    Ok(ExitCode::from(EXIT_OK))
}

fn drill(
    a: &NodeArgs,
    what: &str,
    f: impl FnOnce(&mut Sandbox, &str) -> Result<(), pivot_sandbox::SandboxError>,
) -> anyhow::Result<()> {
    let mut sb = Sandbox::open(&a.dir)?;
    let (name, host, port) = {
        let n = sb.node(&a.node)?;
        (n.name.clone(), n.host.clone(), n.port)
    };
    f(&mut sb, &a.node)?;
    println!("{name} ({host}:{port}) {what}");
    Ok(())
}

fn print_up(sb: &Sandbox) -> anyhow::Result<()> {
    let d = sb.dir.display();
    let m = &sb.manifest;
    println!(
        "sandbox up in {d}: MariaDB {}, {} node(s), semi-sync {}",
        m.mariadb_version,
        m.nodes.len(),
        if m.semi_sync { "on (AFTER_SYNC)" } else { "off" }
    );
    for (i, n) in m.nodes.iter().enumerate() {
        let role = if i == 0 { "primary" } else { "replica" };
        println!("  {:<6} {}:{:<6} {role:<8} pid {}", n.name, n.host, n.port, n.pid.unwrap_or_default());
    }
    let app = sb.credentials("app")?;
    println!("pivot configuration: {d}/pivot.toml");
    println!("application user: app, password {} , database test (also in {d}/app.cnf)", app.password.expose());
    println!(
        "  try: mariadb --defaults-file={d}/app.cnf -e 'CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1)'"
    );
    println!("next:");
    println!("  pivot status --config {d}/pivot.toml");
    println!("  pivot run --config {d}/pivot.toml");
    println!("  pivot sandbox kill --dir {d} node1");
    println!("  pivot sandbox down --dir {d} --remove");
    Ok(())
}
