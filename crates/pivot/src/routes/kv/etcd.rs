//! etcd v3 (gRPC, through the etcd-client crate): one read transaction of
//! every key, one conditional write transaction.

use super::{Layout, Snapshot};
use crate::config::EtcdConfig;
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, Txn, TxnOp, TxnOpResponse};
use std::sync::Arc;
use tokio::sync::Mutex;

#[derive(Clone)]
pub struct EtcdStore {
    endpoints: Vec<String>,
    options: ConnectOptions,
    /// Made on first use and kept: its channel reconnects by itself.
    client: Arc<Mutex<Option<Client>>>,
}

impl EtcdStore {
    pub fn new(cfg: &EtcdConfig) -> EtcdStore {
        let options = ConnectOptions::new().with_connect_timeout(cfg.timeout).with_timeout(cfg.timeout);
        EtcdStore { endpoints: cfg.endpoints.clone(), options, client: Arc::new(Mutex::new(None)) }
    }

    async fn client(&self) -> Result<Client, String> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = Client::connect(&self.endpoints, Some(self.options.clone()))
            .await
            .map_err(|e| format!("etcd {}: {e}", self.endpoints.join(",")))?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Every key of `layout` at one revision.
    pub async fn read(&self, layout: &Layout) -> Result<Snapshot, String> {
        let keys = layout.keys();
        let epoch_key = layout.epoch_key();
        let mut kv = self.client().await?.kv_client();
        let gets: Vec<TxnOp> = keys.iter().map(|k| TxnOp::get(k.as_str(), None)).collect();
        let resp = kv.txn(Txn::new().and_then(gets)).await.map_err(|e| self.describe(e))?;
        let mut snap = Snapshot::default();
        for (op, key) in resp.op_responses().into_iter().zip(&keys) {
            let TxnOpResponse::Get(get) = op else { continue };
            let Some(found) = get.kvs().first() else { continue };
            let value = found.value_str().map_err(|_| format!("etcd: `{key}` does not hold UTF-8 text"))?;
            snap.values.insert(key.clone(), value.to_string());
            if *key == epoch_key {
                snap.epoch_version = Some(found.mod_revision() as u64);
            }
        }
        Ok(snap)
    }

    /// Put every value in one transaction if the epoch key's `mod_revision`
    /// is still `version` (missing: `version = 0`). Returns whether it
    /// applied.
    pub async fn write_if(
        &self,
        epoch_key: &str,
        version: Option<u64>,
        values: &[(String, String)],
    ) -> Result<bool, String> {
        let guard = match version {
            None => Compare::version(epoch_key, CompareOp::Equal, 0),
            Some(rev) => Compare::mod_revision(epoch_key, CompareOp::Equal, rev as i64),
        };
        let puts: Vec<TxnOp> = values.iter().map(|(k, v)| TxnOp::put(k.as_str(), v.as_str(), None)).collect();
        let mut kv = self.client().await?.kv_client();
        let resp = kv.txn(Txn::new().when(vec![guard]).and_then(puts)).await.map_err(|e| self.describe(e))?;
        Ok(resp.succeeded())
    }

    fn describe(&self, e: etcd_client::Error) -> String {
        match e {
            etcd_client::Error::GRpcStatus(s) => {
                format!("etcd {}: {:?}: {}", self.endpoints.join(","), s.code(), s.message())
            }
            other => format!("etcd {}: {other}", self.endpoints.join(",")),
        }
    }
}
