//! Where a rebuilt replica resumes: the GTID position mariabackup recorded
//! with the backup.
//!
//! A backup taken on a replica with `--slave-info` holds
//! `xtrabackup_slave_info` (`mariadb_backup_slave_info` in newer releases):
//!
//! ```text
//! SET GLOBAL gtid_slave_pos = '0-1-42';
//! CHANGE MASTER TO master_use_gtid = slave_pos;
//! ```
//!
//! that is the donor's `gtid_slave_pos` at the consistent point of the
//! backup, the position to set on the rebuilt server. `xtrabackup_binlog_info`
//! (`file <TAB> position <TAB> gtid`) holds the donor's own binlog position,
//! used only when the slave info names no GTID (a donor that replicates by
//! file and position): with `log_slave_updates` it covers the same
//! transactions.

use crate::gtid::GtidSet;
use crate::version::Flavor;

/// Which file the position came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PositionSource {
    SlaveInfo,
    BinlogInfo,
    /// Both files are there and name no transaction: the donor had neither
    /// applied nor logged any (a new cluster); the rebuilt server starts from
    /// the primary's first binlog. (pivot only picks donors that replicate
    /// with GTIDs, so an empty position is not a file-and-position replica.)
    Nothing,
}

/// The GTID position to resume from, from the two files' text (`None`:
/// the file is not in the backup).
pub fn resume_position(
    slave_info: Option<&str>,
    binlog_info: Option<&str>,
) -> Result<(GtidSet, PositionSource), String> {
    if let Some(text) = slave_info {
        if let Some(pos) = slave_pos(text)? {
            return Ok((pos, PositionSource::SlaveInfo));
        }
    }
    if let Some(text) = binlog_info {
        if let Some(pos) = binlog_gtid(text)? {
            return Ok((pos, PositionSource::BinlogInfo));
        }
    }
    if let (Some(_), Some(b)) = (slave_info, binlog_info) {
        if binlog_names_an_empty_gtid(b) {
            return Ok((GtidSet::empty(Flavor::MariaDb), PositionSource::Nothing));
        }
    }
    Err(match (slave_info, binlog_info) {
        (None, None) => "the backup has neither xtrabackup_slave_info nor xtrabackup_binlog_info: was it taken \
                         with --slave-info on a replica with binary logs?"
            .to_string(),
        _ => "the backup recorded no GTID position (the donor has applied no replicated transaction, or \
              replicates by file and position): pivot only rebuilds replicas that use GTIDs"
            .to_string(),
    })
}

/// `SET GLOBAL gtid_slave_pos = '…'` in the slave info; `None` if absent or empty.
fn slave_pos(text: &str) -> Result<Option<GtidSet>, String> {
    for line in text.lines() {
        let lower = line.to_ascii_lowercase();
        let Some(at) = lower.find("gtid_slave_pos") else { continue };
        let rest = line[at + "gtid_slave_pos".len()..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else { continue };
        let value = quoted(rest.trim_start())
            .ok_or_else(|| format!("xtrabackup_slave_info: `{}` has no quoted position", line.trim()))?;
        return gtid(value, "xtrabackup_slave_info");
    }
    Ok(None)
}

/// The third column of the binlog info; `None` if absent or empty.
fn binlog_gtid(text: &str) -> Result<Option<GtidSet>, String> {
    let Some(line) = text.lines().find(|l| !l.trim().is_empty()) else { return Ok(None) };
    let fields: Vec<&str> = line.split('\t').collect();
    match fields.get(2) {
        Some(g) => gtid(g, "xtrabackup_binlog_info"),
        None => Ok(None),
    }
}

/// `file <TAB> position <TAB>` with an empty third column.
fn binlog_names_an_empty_gtid(text: &str) -> bool {
    let Some(line) = text.lines().find(|l| !l.trim().is_empty()) else { return false };
    let fields: Vec<&str> = line.split('\t').collect();
    fields.len() == 3 && fields[2].trim().is_empty()
}

fn quoted(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('\'')?;
    inner.find('\'').map(|end| &inner[..end])
}

fn gtid(value: &str, file: &str) -> Result<Option<GtidSet>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    GtidSet::parse(Flavor::MariaDb, value)
        .map(Some)
        .map_err(|e| format!("{file}: `{value}` is not a MariaDB GTID position: {e}"))
}
