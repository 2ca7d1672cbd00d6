//! `pivot-bench simulate`: random seeds through the deterministic simulator
//! (`pivot-sim`), on every core. Prints seeds per second, the faults
//! injected by kind, and the distribution of simulated recovery times
//! (fault to new primary writable). A seed that breaks an invariant is
//! printed with its last events, and the command fails: the seed replays
//! exactly (`cargo run -p pivot-sim --example trace -- SEED`).

use pivot_sim::{run_seed, Config, Failure, Report};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

pub fn run(seeds: u64, from: u64, expose_known: bool) -> anyhow::Result<()> {
    anyhow::ensure!(seeds > 0, "--seeds must be at least 1");
    let cfg = Config { expose_known, ..Config::default() };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(seeds as usize);
    let next = AtomicU64::new(from);
    let end = from.checked_add(seeds).ok_or_else(|| anyhow::anyhow!("--from + --seeds overflows"))?;
    let results: Mutex<Vec<Result<Report, Failure>>> = Mutex::new(Vec::with_capacity(seeds as usize));
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    return;
                }
                let r = run_seed(seed, &cfg);
                results.lock().expect("no worker panics while holding the lock").push(r);
            });
        }
    });
    let elapsed = started.elapsed();
    let mut results = results.into_inner().expect("workers are done");
    results.sort_by_key(|r| match r {
        Ok(rep) => rep.seed,
        Err(f) => f.seed,
    });
    let reports: Vec<&Report> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let failures: Vec<&Failure> = results.iter().filter_map(|r| r.as_ref().err()).collect();

    println!(
        "simulate: seeds {from}..{end}{} on {threads} thread(s)",
        if expose_known { " (known findings exposed)" } else { "" }
    );
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!("  {seeds} seeds in {:.2} s: {:.1} seeds/s", secs, seeds as f64 / secs);
    let simulated: u64 = reports.iter().map(|r| r.simulated_ms).sum();
    let events: u64 = reports.iter().map(|r| r.events).sum();
    println!(
        "  simulated {:.1} h of cluster time ({:.0}x real time), {events} events ({:.0} events/s)",
        simulated as f64 / 3_600_000.0,
        simulated as f64 / 1000.0 / secs,
        events as f64 / secs
    );
    let mut faults: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &reports {
        for (k, n) in &r.faults {
            *faults.entry(k).or_insert(0) += n;
        }
    }
    let total: u64 = faults.values().sum();
    println!("  faults injected: {total}");
    for (k, n) in &faults {
        println!("    {k:<22} {n:>8}");
    }
    let recoveries: usize = reports.iter().map(|r| r.recoveries).sum();
    let promotions: usize = reports.iter().map(|r| r.promotions).sum();
    let acked: usize = reports.iter().map(|r| r.acknowledged_writes).sum();
    println!("  recoveries started: {recoveries}, promotions: {promotions}, acknowledged writes: {acked}");
    let mut times: Vec<u64> = reports.iter().flat_map(|r| r.recovery_times_ms.iter().copied()).collect();
    times.sort_unstable();
    if times.is_empty() {
        println!("  recovery time (fault to new primary writable): no sample");
    } else {
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        println!(
            "  recovery time (fault to new primary writable, simulated): n={} median {} ms, p90 {} ms, worst {} ms",
            times.len(),
            at(0.5),
            at(0.9),
            times[times.len() - 1]
        );
    }
    if let Some(first) = failures.first() {
        let seeds: Vec<u64> = failures.iter().map(|f| f.seed).collect();
        println!("  FAILED: {} seed(s) broke an invariant: {seeds:?}\n", failures.len());
        println!("{first}");
        anyhow::bail!("{} seed(s) broke an invariant, first {}", failures.len(), first.seed);
    }
    println!("  every invariant held in every seed");
    Ok(())
}
