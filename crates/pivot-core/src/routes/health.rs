//! The answers of the HTTP health checks HAProxy's `option httpchk` asks, in
//! Patroni's path conventions: 200 when the instance is what the path asks
//! for, 503 otherwise, the reason in the body.

use super::table::{Role, RouteTable};
use crate::instance::InstanceKey;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthCheck {
    /// `/primary` (also `/master`, `/leader`, `/read-write`): the primary of
    /// the current epoch, writable, no recovery holding writes.
    Primary,
    /// `/replica[?lag=10s]`: a replica of the primary within the lag.
    Replica { max_lag_s: Option<u64> },
    /// `/read-only[?lag=10s]`: either of the above.
    ReadOnly { max_lag_s: Option<u64> },
    /// `/health`: answers, and is not a fenced former primary.
    Health,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthAnswer {
    pub status: u16,
    pub body: String,
}

impl HealthCheck {
    /// Read a check from a request path's first segment and its query.
    pub fn parse(path: &str, query: Option<&str>) -> Result<HealthCheck, String> {
        let lag = parse_lag(query)?;
        match path {
            "primary" | "master" | "leader" | "read-write" => Ok(HealthCheck::Primary),
            "replica" => Ok(HealthCheck::Replica { max_lag_s: lag }),
            "read-only" => Ok(HealthCheck::ReadOnly { max_lag_s: lag }),
            "health" => Ok(HealthCheck::Health),
            other => Err(format!(
                "unknown health check `{other}`: use primary, replica, read-only or health (Patroni's paths)"
            )),
        }
    }
}

/// `lag=10s`, `lag=10` (seconds), `lag=2m`, `lag=500ms` (rounded up).
fn parse_lag(query: Option<&str>) -> Result<Option<u64>, String> {
    let Some(q) = query else { return Ok(None) };
    let mut lag = None;
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != "lag" {
            return Err(format!("unknown parameter `{k}`: the only one is lag, like lag=10s"));
        }
        let bad = || format!("lag `{v}` is not a duration: write it like 10s, 2m, 500ms or 10");
        let (num, unit_ms) = if let Some(n) = v.strip_suffix("ms") {
            (n, 1)
        } else if let Some(n) = v.strip_suffix('s') {
            (n, 1_000)
        } else if let Some(n) = v.strip_suffix('m') {
            (n, 60_000)
        } else if let Some(n) = v.strip_suffix('h') {
            (n, 3_600_000)
        } else {
            (v, 1_000)
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        let ms = n.checked_mul(unit_ms).ok_or_else(bad)?;
        lag = Some(ms.div_ceil(1_000));
    }
    Ok(lag)
}

/// What the check `check` of `instance` answers under `table`.
pub fn answer(table: &RouteTable, instance: &InstanceKey, check: HealthCheck) -> HealthAnswer {
    let ok = |body: String| HealthAnswer { status: 200, body };
    let no = |body: String| HealthAnswer { status: 503, body };
    let Some(r) = table.get(instance) else {
        return HealthAnswer { status: 404, body: format!("{instance} is not an instance of this cluster") };
    };
    let epoch = table.epoch;
    let primary_ok = || {
        if r.role != Role::Primary {
            return Err(format!("not the primary (epoch {epoch}): {}", r.reason));
        }
        if table.hold {
            return Err(format!("a recovery is running: writes wait for the new primary (epoch {epoch})"));
        }
        if !r.healthy {
            return Err(format!("the primary of epoch {epoch}, but {}", r.reason));
        }
        Ok(format!("primary of epoch {epoch}: {}", r.reason))
    };
    let replica_ok = |max: Option<u64>| {
        if r.role != Role::Replica {
            return Err(format!("not a replica: {}", r.reason));
        }
        if !r.healthy {
            return Err(r.reason.clone());
        }
        let limit = max.unwrap_or(table.max_lag_s);
        match r.lag_s {
            Some(l) if l <= limit => Ok(format!("{} (limit {limit} s)", r.reason)),
            Some(l) => Err(format!("lagging {l} s (limit {limit} s)")),
            None => Err("lag unknown".into()),
        }
    };
    let result = match check {
        HealthCheck::Primary => primary_ok(),
        HealthCheck::Replica { max_lag_s } => replica_ok(max_lag_s),
        HealthCheck::ReadOnly { max_lag_s } => match r.role {
            Role::Primary => primary_ok(),
            _ => replica_ok(max_lag_s),
        },
        HealthCheck::Health => {
            if r.role == Role::Fenced {
                Err(r.reason.clone())
            } else if r.reachable {
                Ok(format!("answers: {}", r.reason))
            } else {
                Err(r.reason.clone())
            }
        }
    };
    match result {
        Ok(body) => ok(body),
        Err(body) => no(body),
    }
}
