//! Does pivot's account have what a failover will need? Checked up front by
//! `pivot status` and `pivot run`, not discovered in the middle of a failover.

use crate::credentials::Credentials;
use crate::errors::SessionError;
use crate::session::Session;
use pivot_core::InstanceKey;
use pivot_dialect::PrivilegeReport;
use std::time::Duration;

/// What the session's account lacks on its server.
pub async fn missing_privileges(s: &mut Session) -> Result<PrivilegeReport, SessionError> {
    let d = s.dialect.clone();
    let rows = s.rows(&d.grants_query()).await?;
    Ok(d.missing_privileges(&rows))
}

/// Connect to `key` and report what `creds`' account lacks there.
pub async fn check_privileges(
    key: &InstanceKey,
    creds: &Credentials,
    timeout: Duration,
) -> Result<PrivilegeReport, SessionError> {
    let mut s = Session::connect(key, creds, timeout).await?;
    missing_privileges(&mut s).await
}
