//! Print everything one seed did: `cargo run -p pivot-sim --example trace -- SEED [--expose-known]`.
//! A failing seed from `cargo test` or `pivot-bench simulate` replays here line by line.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(seed) = args.first().and_then(|s| s.parse::<u64>().ok()) else {
        eprintln!("usage: trace SEED [--expose-known]");
        std::process::exit(2);
    };
    let cfg = pivot_sim::Config {
        full_trace: true,
        expose_known: args.iter().any(|a| a == "--expose-known"),
        ..pivot_sim::Config::default()
    };
    let mut sim = pivot_sim::Sim::new(seed, &cfg);
    let result = sim.run_to_end();
    for line in sim.world.trace.full().unwrap_or_default() {
        println!("{line}");
    }
    match result {
        Ok(()) => println!("seed {seed}: every invariant held; {:?}", sim.report().faults),
        Err(f) => {
            println!("seed {seed}: invariant `{}` broken: {}", f.invariant, f.detail);
            std::process::exit(1);
        }
    }
}
