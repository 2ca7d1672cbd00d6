//! External hooks: programs that succeed, fail (non-zero exit) or hang
//! until pivot's hook timeout kills them. Each call is recorded, so a test
//! can check which hooks ran how often (an interrupted hook is asked again).

use crate::config::{HookBehaviour, HookConfig};
use pivot_core::plan::HookPoint;
use rand::rngs::StdRng;
use rand::Rng;

#[derive(Clone, Debug)]
pub struct HookCall {
    pub point: HookPoint,
    pub recovery: i64,
    /// The pivot process that called it.
    pub incarnation: u32,
    pub at: u64,
    pub behaviour: HookBehaviour,
}

pub fn configured(cfg: &HookConfig, point: HookPoint) -> bool {
    let h = cfg.configured;
    match point {
        HookPoint::PreFailover => h.pre_failover,
        HookPoint::Fence => h.fence,
        HookPoint::MhaStop | HookPoint::MhaStart => h.mha,
        HookPoint::PostFailover => h.post_failover,
        HookPoint::PostUnsuccessfulFailover => h.post_unsuccessful_failover,
        HookPoint::PreSwitchover => h.pre_switchover,
        HookPoint::PostSwitchover => h.post_switchover,
        HookPoint::Alert => false,
    }
}

/// How the next call of `point` goes: the script first, then the dice.
pub fn draw(cfg: &mut HookConfig, point: HookPoint, random: bool, rng: &mut StdRng) -> HookBehaviour {
    if let Some(i) = cfg.script.iter().position(|(p, _)| *p == point) {
        return cfg.script.remove(i).1;
    }
    if !random {
        return HookBehaviour::Ok;
    }
    let x: f64 = rng.random();
    if x < cfg.hang_p {
        HookBehaviour::Hang
    } else if x < cfg.hang_p + cfg.fail_p {
        HookBehaviour::Fail
    } else {
        HookBehaviour::Ok
    }
}
