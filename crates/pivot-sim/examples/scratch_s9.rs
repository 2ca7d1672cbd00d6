use pivot_sim::{Config, Sim};
fn ok<T>(r: Result<T, pivot_sim::Failure>) -> T {
    r.unwrap_or_else(|f| panic!("{f}"))
}
fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let mut s;
    if which == "f2" {
        let mut cfg = Config { semi_sync: false, full_trace: true, ..Config::scripted() };
        cfg.timing.block_period_ms = 20_000;
        s = Sim::new(1, &cfg);
        ok(s.run_until(3_000));
        s.crash(2);
        ok(s.run_until(s.world.now + 1_000));
        s.crash(0);
        ok(s.run_while_not(30_000, |s| s.writable().iter().any(|&i| i != 0)));
        s.restart(2);
        ok(s.run_until(s.world.now + 25_000));
        s.hang(1);
        let r = s.run_until(s.world.now + 20_000);
        println!("{:?}", r.err().map(|f| f.invariant));
        s.resume(1);
        let r = s.run_until(s.world.now + 5_000);
        println!(
            "{:?} writable {:?} recoveries {}",
            r.err().map(|f| f.invariant),
            s.writable(),
            s.world.store.recoveries.len()
        );
    } else if which == "f10" {
        let cfg = Config { full_trace: true, ..Config::scripted() };
        s = Sim::new(1, &cfg);
        ok(s.run_until(3_000));
        s.hang(2);
        ok(s.run_until(s.world.now + 500));
        s.crash(0);
        ok(s.run_while_not(30_000, |s| s.writable().iter().any(|&i| i != 0)));
        ok(s.run_until(s.world.now + 2_000));
        s.restart(0);
        ok(s.run_until(s.world.now + 2_000));
        println!("fence {:?}", s.world.store.fences);
        s.crash(0);
        ok(s.run_until(s.world.now + 2_000));
        s.restart(0);
        s.resume(2);
        let r = s.run_until(s.world.now + 5_000);
        println!("{:?}", r.err().map(|f| format!("{} {}", f.invariant, f.detail)));
    } else {
        let cfg = Config { semi_sync: false, full_trace: true, ..Config::scripted() };
        s = Sim::new(1, &cfg);
        ok(s.run_until(3_000));
        s.stop_writers();
        ok(s.run_until(4_000));
        use pivot_sim::network::Party;
        let far = s.world.now + 600_000;
        s.world.net.cut(Party::Server(0), Party::Server(1), far);
        s.world.net.cut(Party::Server(0), Party::Server(2), far);
        let g = s.local_write(0, 0);
        ok(s.run_until(s.world.now + 100));
        s.crash(0);
        s.world.net.heal_all();
        ok(s.run_while_not(30_000, |s| s.world.store.last_recovery().is_some_and(|r| r.status.is_some())));
        s.restart(0);
        ok(s.run_while_not(5_000, |s| s.world.servers[0].read_only));
        println!("{g} fence {:?}", s.world.store.fences);
        ok(s.run_until(s.world.now + 5_000));
        println!("{g} fence {:?}", s.world.store.fences);
    }
    for l in s.world.trace.full().unwrap() {
        println!("{l}");
    }
}
