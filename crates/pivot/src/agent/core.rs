//! The agent's decisions, without I/O: which commands it takes, when its
//! lease is over, what its health checks answer. Time comes in as the
//! agent's clock in milliseconds.

use crate::routes::vip::protocol::{AgentState, LeaseRequest, LeaseState};
use pivot_core::routes::{answer, HealthAnswer, HealthCheck, Role, RouteTable};
use pivot_core::InstanceKey;

/// Longest lease an agent takes (an hour).
const MAX_LEASE_MS: u64 = 3_600_000;

/// A lease the agent holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub epoch: u64,
    /// Its end on the agent's clock.
    pub until_ms: u64,
}

/// Why a command is not taken, as an HTTP status and words.
pub type Refusal = (u16, String);

#[derive(Clone, Debug)]
pub struct AgentCore {
    pub boot: String,
    pub instance: InstanceKey,
    /// The newest epoch seen in any command.
    pub epoch: u64,
    pub lease: Option<Held>,
    /// The last table pushed and when it came.
    pub table: Option<(RouteTable, u64)>,
    /// How old the table may be for the health checks (the lease).
    pub fresh_ms: u64,
}

impl AgentCore {
    pub fn new(boot: String, instance: InstanceKey) -> AgentCore {
        AgentCore { boot, instance, epoch: 0, lease: None, table: None, fresh_ms: 3_000 }
    }

    fn older(&self, epoch: u64) -> Result<(), Refusal> {
        if epoch < self.epoch {
            return Err((409, format!("epoch {epoch} is older than epoch {}, which this agent has seen", self.epoch)));
        }
        Ok(())
    }

    /// Whether the lease `r` may be taken at `now_ms`.
    pub fn judge_lease(&self, r: &LeaseRequest, now_ms: u64) -> Result<(), Refusal> {
        if r.lease_ms == 0 || r.lease_ms > MAX_LEASE_MS {
            return Err((400, format!("lease_ms {} is out of range: 1 to {MAX_LEASE_MS}", r.lease_ms)));
        }
        if r.table.epoch != r.epoch {
            return Err((400, format!("the table is of epoch {}, the lease of epoch {}", r.table.epoch, r.epoch)));
        }
        if r.boot != self.boot {
            return Err((409, format!("this lease was for boot {}, this agent is boot {}", r.boot, self.boot)));
        }
        self.older(r.epoch)?;
        if now_ms > r.valid_until_ms {
            return Err((
                409,
                format!("the lease arrived {} ms too late by this agent's clock", now_ms - r.valid_until_ms),
            ));
        }
        if r.table.primary.as_ref() != Some(&self.instance) {
            let named = r.table.primary.as_ref().map_or("no primary".to_string(), ToString::to_string);
            return Err((
                409,
                format!(
                    "the table of epoch {} names {named} as the primary, but this agent serves {}: check [cluster.vip] \
                     agents in pivot's configuration and `instance` in the agent's",
                    r.epoch, self.instance
                ),
            ));
        }
        Ok(())
    }

    /// Take the lease `r` (judged first) at `now_ms`.
    pub fn take_lease(&mut self, r: &LeaseRequest, now_ms: u64) {
        self.epoch = self.epoch.max(r.epoch);
        self.lease = Some(Held { epoch: r.epoch, until_ms: now_ms + r.lease_ms });
        self.take_table(&r.table, r.lease_ms, now_ms);
    }

    pub fn judge_release(&self, epoch: u64) -> Result<(), Refusal> {
        self.older(epoch)
    }

    /// Release at `epoch` (judged first): no lease from now on.
    pub fn take_release(&mut self, epoch: u64, table: &RouteTable, lease_ms: u64, now_ms: u64) {
        self.epoch = self.epoch.max(epoch);
        self.lease = None;
        self.take_table(table, lease_ms, now_ms);
    }

    pub fn judge_table(&self, table: &RouteTable) -> Result<(), Refusal> {
        self.older(table.epoch)
    }

    /// Keep `table` for the health checks unless one of a newer epoch is kept.
    pub fn take_table(&mut self, table: &RouteTable, lease_ms: u64, now_ms: u64) {
        self.epoch = self.epoch.max(table.epoch);
        if self.table.as_ref().is_none_or(|(t, _)| table.supersedes(t)) {
            self.table = Some((table.clone(), now_ms));
        }
        if (1..=MAX_LEASE_MS).contains(&lease_ms) {
            self.fresh_ms = lease_ms;
        }
    }

    /// The lease is over and not renewed.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.lease.as_ref().is_some_and(|l| now_ms >= l.until_ms)
    }

    /// The lease of the current table's epoch, still running.
    fn holds(&self, epoch: u64, now_ms: u64) -> bool {
        self.lease.as_ref().is_some_and(|l| l.epoch == epoch && now_ms < l.until_ms)
    }

    /// What a health check of the local instance answers at `now_ms`. The
    /// primary (also through `/read-only`) needs a running lease: without
    /// one pivot cannot have confirmed it within the lease.
    pub fn health(&self, check: HealthCheck, now_ms: u64) -> HealthAnswer {
        let no = |body: String| HealthAnswer { status: 503, body };
        let Some((table, at)) = &self.table else {
            return no("pivot has not sent a route table since this agent started: it cannot confirm anything".into());
        };
        let age = now_ms.saturating_sub(*at);
        if age > self.fresh_ms {
            return no(format!(
                "the last route table from pivot is {:.1} s old (more than the lease, {:.1} s): pivot is gone or cut \
                 off, this agent cannot confirm",
                age as f64 / 1000.0,
                self.fresh_ms as f64 / 1000.0
            ));
        }
        let a = answer(table, &self.instance, check);
        let as_primary = table.get(&self.instance).is_some_and(|r| r.role == Role::Primary)
            && matches!(check, HealthCheck::Primary | HealthCheck::ReadOnly { .. });
        if a.status == 200 && as_primary && !self.holds(table.epoch, now_ms) {
            return no(format!(
                "the primary of epoch {} in pivot's table, but this agent holds no lease of it (pivot has not \
                 renewed it)",
                table.epoch
            ));
        }
        a
    }

    /// The state every answer carries.
    pub fn state(&self, now_ms: u64, vip: Option<String>) -> AgentState {
        AgentState {
            boot: self.boot.clone(),
            clock_ms: now_ms,
            epoch: self.epoch,
            instance: self.instance.clone(),
            lease: self
                .lease
                .as_ref()
                .map(|l| LeaseState { epoch: l.epoch, left_ms: l.until_ms.saturating_sub(now_ms) }),
            vip,
            table_age_ms: self.table.as_ref().map(|(_, at)| now_ms.saturating_sub(*at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pivot_core::routes::{EpochRecord, InstanceRoute};

    const ME: &str = "10.0.0.1:3306";
    const OTHER: &str = "10.0.0.2:3306";

    /// Both instances: the primary writable, the other a healthy replica.
    fn table(epoch: u64, primary: &str) -> RouteTable {
        let e = EpochRecord { number: epoch, primary: primary.parse().unwrap(), recovery_id: None, since_ms: 0 };
        let mut t = RouteTable::default().after_promotion(&e, None);
        let replica = if primary == ME { OTHER } else { ME };
        t.instances.push(InstanceRoute {
            instance: replica.parse().unwrap(),
            role: Role::Replica,
            reachable: true,
            healthy: true,
            lag_s: Some(0),
            reason: "replicating".into(),
        });
        t
    }

    fn core() -> AgentCore {
        let mut c = AgentCore::new("b1".into(), ME.parse().unwrap());
        c.epoch = 5;
        c
    }

    fn lease(epoch: u64, primary: &str, valid_until_ms: u64) -> LeaseRequest {
        LeaseRequest {
            epoch,
            boot: "b1".into(),
            valid_until_ms,
            lease_ms: 3000,
            vip: None,
            table: table(epoch, primary),
        }
    }

    #[test]
    fn which_leases_are_taken() {
        // (case, request, now, Ok or (status, words))
        let other_boot = LeaseRequest { boot: "b0".into(), ..lease(5, ME, 2000) };
        let mixed = LeaseRequest { table: table(6, ME), ..lease(5, ME, 2000) };
        let zero = LeaseRequest { lease_ms: 0, ..lease(5, ME, 2000) };
        type Case<'a> = (&'a str, LeaseRequest, u64, Result<(), (u16, &'a str)>);
        let cases: Vec<Case> = vec![
            ("current epoch, in time", lease(5, ME, 2000), 1000, Ok(())),
            ("a newer epoch", lease(7, ME, 2000), 2000, Ok(())),
            ("an older epoch", lease(4, ME, 2000), 1000, Err((409, "epoch 4 is older than epoch 5"))),
            ("late by the agent's clock", lease(5, ME, 2000), 2001, Err((409, "1 ms too late"))),
            ("before this agent's restart", other_boot, 1000, Err((409, "for boot b0"))),
            ("the table names another primary", lease(5, OTHER, 2000), 1000, Err((409, "names 10.0.0.2:3306"))),
            ("table and lease of different epochs", mixed, 1000, Err((400, "table is of epoch 6"))),
            ("no length", zero, 1000, Err((400, "lease_ms 0"))),
        ];
        for (case, r, now, want) in cases {
            let got = core().judge_lease(&r, now);
            match (got, want) {
                (Ok(()), Ok(())) => {}
                (Err((s, m)), Err((ws, wm))) => assert!(s == ws && m.contains(wm), "{case}: {s} {m}"),
                (got, want) => panic!("{case}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_lease_ends_unless_renewed_and_a_release_ends_it_at_once() {
        let mut c = core();
        c.take_lease(&lease(5, ME, 2000), 1000);
        assert!(!c.expired(3999));
        assert!(c.expired(4000), "3 s after it was taken");
        c.take_lease(&lease(5, ME, 4000), 3500);
        assert!(!c.expired(6000), "renewed at 3.5 s: runs to 6.5 s");
        assert_eq!(c.judge_release(4), Err((409, "epoch 4 is older than epoch 5, which this agent has seen".into())));
        c.take_release(6, &table(6, OTHER), 3000, 4000);
        assert_eq!((c.lease.clone(), c.epoch), (None, 6));
        assert!(c.judge_lease(&lease(5, ME, 9000), 4100).is_err(), "no lease of epoch 5 after a release of 6");
    }

    #[test]
    fn health_checks_from_the_pushed_table() {
        let now = 10_000;
        let holding = {
            let mut c = core();
            c.take_lease(&lease(5, ME, now), now - 500);
            c
        };
        let lapsed = {
            let mut c = core();
            c.take_lease(&lease(5, ME, now), now - 3500);
            c.take_table(&table(5, ME), 3000, now - 100);
            c
        };
        let replica = {
            let mut c = core();
            c.take_release(5, &table(5, OTHER), 3000, now - 100);
            c
        };
        let stale = {
            let mut c = core();
            c.take_release(5, &table(5, OTHER), 3000, now - 3001);
            c
        };
        let held = {
            let mut c = holding.clone();
            let mut t = table(5, ME);
            t.hold = true;
            c.take_table(&t, 3000, now - 100);
            c
        };
        let nothing = core();
        let ro = HealthCheck::ReadOnly { max_lag_s: None };
        // (case, agent, check, status, body contains)
        let cases: Vec<(&str, &AgentCore, HealthCheck, u16, &str)> = vec![
            ("the primary with its lease", &holding, HealthCheck::Primary, 200, "primary of epoch 5"),
            ("read-only asks the same of a primary", &holding, ro, 200, "primary"),
            ("its lease ran out", &lapsed, HealthCheck::Primary, 503, "holds no lease"),
            ("... also through read-only", &lapsed, ro, 503, "holds no lease"),
            ("not the primary", &replica, HealthCheck::Primary, 503, "not the primary"),
            ("a table older than the lease", &stale, HealthCheck::Primary, 503, "pivot is gone or cut off"),
            ("... for every check", &stale, HealthCheck::Health, 503, "cannot confirm"),
            ("a recovery holds writes", &held, HealthCheck::Primary, 503, "a recovery is running"),
            ("no table yet", &nothing, HealthCheck::Primary, 503, "has not sent a route table"),
        ];
        for (case, c, check, status, body) in cases {
            let a = c.health(check, now);
            assert_eq!(a.status, status, "{case}: {a:?}");
            assert!(a.body.contains(body), "{case}: `{}` should contain `{body}`", a.body);
        }
    }

    #[test]
    fn an_older_table_never_replaces_a_newer_one() {
        let mut c = core();
        c.take_table(&table(6, OTHER), 3000, 100);
        assert_eq!(c.judge_table(&table(5, ME)).unwrap_err().0, 409);
        c.take_table(&table(5, ME), 3000, 200);
        assert_eq!(c.table.as_ref().unwrap().0.epoch, 6);
    }
}
