//! Performing a `route_*` step: clients are sent to the new primary, from
//! the epoch this recovery stored.

use super::blocking;
use super::exec::Performer;
use pivot_core::control::{Ended, StepEnd};
use pivot_core::routes::{EpochRecord, RouteKind};
use pivot_core::InstanceKey;

pub async fn perform(p: &mut Performer, route: RouteKind, primary: &InstanceKey) -> StepEnd {
    let epoch = match stored_epoch(p).await {
        Ok(e) => e,
        Err(e) => return StepEnd::new(Ended::Failed, e),
    };
    if epoch.primary != *primary {
        return StepEnd::new(
            Ended::Failed,
            format!("the epoch of this recovery names {}, not {primary}: routes left alone", epoch.primary),
        );
    }
    match route {
        RouteKind::Local => local(p, &epoch),
        RouteKind::Etcd | RouteKind::Consul => kv(p, route, &epoch).await,
        RouteKind::Vip => vip(p, &epoch).await,
    }
}

/// The virtual IP (`crate::routes::vip`): released on every other agent
/// (or, for one that does not answer, its lease certainly over), then
/// leased to the new primary's agent.
async fn vip(p: &Performer, epoch: &EpochRecord) -> StepEnd {
    let failed = p.data.failed_primary.as_ref();
    match crate::routes::vip::step(&p.env.cluster, p.env.routes.as_ref(), epoch, failed).await {
        Ok(done) => StepEnd::new(Ended::Ok, done),
        Err(e) => StepEnd::new(Ended::Failed, e),
    }
}

async fn stored_epoch(p: &Performer) -> Result<EpochRecord, String> {
    let (cluster, id) = (p.env.cluster.name.clone(), p.id);
    let e = blocking(&p.env, move |s| s.epoch_of_recovery(&cluster, id))
        .await?
        .ok_or("this recovery stored no epoch: no route may follow it")?;
    let primary = e.primary.parse().map_err(|err| format!("stored epoch {} names `{}`: {err}", e.number, e.primary))?;
    Ok(EpochRecord { number: e.number, primary, recovery_id: e.recovery_id, since_ms: e.since })
}

/// This process's proxy, DNS answers and health checks.
fn local(p: &Performer, epoch: &EpochRecord) -> StepEnd {
    let Some(hub) = &p.env.routes else {
        return StepEnd::new(
            Ended::Skipped,
            "no routes in this process: a running `pivot run` follows the new epoch from the state file within a second",
        );
    };
    let current = hub.current();
    let table = current.after_promotion(epoch, p.data.failed_primary.as_ref());
    if hub.offer(table) {
        StepEnd::new(Ended::Ok, format!("epoch {}: writes go to {}", epoch.number, epoch.primary))
    } else if hub.current().epoch >= epoch.number {
        StepEnd::new(Ended::Ok, format!("already at epoch {} or newer", epoch.number))
    } else {
        StepEnd::new(Ended::Failed, "the route table refused the new epoch")
    }
}

/// The primary's keys in etcd or Consul (`crate::routes::kv`): up to 3
/// attempts within the store's timeout. A newer epoch already there is no
/// failure: it wins, and this step says so.
async fn kv(p: &Performer, route: RouteKind, epoch: &EpochRecord) -> StepEnd {
    let Some(publisher) = crate::routes::kv::KvPublisher::for_route(&p.env.cluster, route) else {
        return StepEnd::new(
            Ended::Failed,
            format!("no [cluster.{}] in the configuration: the keys were not updated", route.as_str()),
        );
    };
    match publisher.publish(epoch.number, &epoch.primary).await {
        Ok(done) => {
            StepEnd::new(Ended::Ok, done.describe(route.as_str(), publisher.layout(), epoch.number, &epoch.primary))
        }
        Err(e) => StepEnd::new(Ended::Failed, e),
    }
}
