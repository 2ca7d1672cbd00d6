//! The global privileges pivot needs, and what `SHOW GRANTS` says the
//! current account has.
//!
//! A missing privilege would otherwise only show when a failover needs it, so
//! `pivot status` and `pivot run` check them up front. The parser is pure:
//! `SHOW GRANTS` rows in, a [`PrivilegeReport`] out.

use crate::rows::TextRow;
use std::collections::BTreeSet;
use std::fmt;

/// Something pivot does that needs a global privilege; any one of `any_of`
/// allows it. The first is the one to grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrivilegeNeed {
    pub any_of: Vec<&'static str>,
    /// The statement and what pivot uses it for.
    pub purpose: String,
}

/// A privilege the account lacks, with everything pivot needs it for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingPrivilege {
    /// The privilege to grant, spelled as the server spells it.
    pub privilege: String,
    /// Other privileges that would do as well (`SUPER`, usually deprecated).
    pub alternatives: Vec<String>,
    pub purposes: Vec<String>,
}

/// What the current account lacks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrivilegeReport {
    /// The account as `SHOW GRANTS` names it: `` `pivot`@`%` ``.
    pub account: Option<String>,
    pub missing: Vec<MissingPrivilege>,
    /// Roles granted to the account whose privileges the server did not show
    /// because they are not active in pivot's sessions (MariaDB: not the
    /// default role; pivot never runs `SET ROLE`).
    pub inactive_roles: Vec<String>,
    /// Roles granted to the account whose privileges `SHOW GRANTS` does not
    /// list (MySQL lists an account's roles, not their privileges).
    pub unexpanded_roles: Vec<String>,
}

impl PrivilegeReport {
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }

    /// The statement that grants what is missing.
    pub fn grant_statement(&self) -> Option<String> {
        if self.missing.is_empty() {
            return None;
        }
        let privileges = self.missing.iter().map(|m| m.privilege.as_str()).collect::<Vec<_>>().join(", ");
        let account = self.account.as_deref().unwrap_or("<pivot's user>");
        Some(format!("GRANT {privileges} ON *.* TO {account}"))
    }
}

/// One line: `missing privileges: RELOAD (RESET SLAVE ALL: promoting a
/// replica); ...; grant them with GRANT RELOAD ON *.* TO `pivot`@`%``.
impl fmt::Display for PrivilegeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.missing.is_empty() {
            return f.write_str("no privilege missing");
        }
        let list = self
            .missing
            .iter()
            .map(|m| {
                let or = if m.alternatives.is_empty() {
                    String::new()
                } else {
                    format!(" or {}", m.alternatives.join(" or "))
                };
                format!("{}{or} ({})", m.privilege, m.purposes.join("; "))
            })
            .collect::<Vec<_>>()
            .join(", ");
        write!(f, "missing privileges: {list}; grant them: {}", self.grant_statement().unwrap_or_default())?;
        if let Some(role) = self.inactive_roles.first() {
            let account = self.account.as_deref().unwrap_or("<pivot's user>");
            let roles = self.inactive_roles.join(", ");
            write!(f, " (role {roles} granted but not active in pivot's sessions; ")?;
            write!(f, "to use {role}: SET DEFAULT ROLE {role} FOR {account})")?;
        }
        if !self.unexpanded_roles.is_empty() {
            write!(
                f,
                " (unless granted through role {}: SHOW GRANTS does not list a role's privileges here)",
                self.unexpanded_roles.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Compare privilege names as the server would: case and `_`/space
/// insensitive, aliases resolved.
fn normalize(name: &str) -> String {
    let words = name.split(|c: char| c.is_whitespace() || c == '_').filter(|w| !w.is_empty());
    let n = words.map(str::to_ascii_uppercase).collect::<Vec<_>>().join(" ");
    match n.as_str() {
        "ALL" => "ALL PRIVILEGES".to_string(),
        // MariaDB 10.5 aliases.
        "REPLICA MONITOR" => "SLAVE MONITOR".to_string(),
        "REPLICATION REPLICA ADMIN" => "REPLICATION SLAVE ADMIN".to_string(),
        "REPLICATION REPLICA" => "REPLICATION SLAVE".to_string(),
        _ => n,
    }
}

/// One line of `SHOW GRANTS`.
#[derive(Debug, PartialEq, Eq)]
enum GrantLine {
    Privileges { privileges: Vec<String>, on: String, to: String },
    Roles { roles: Vec<String>, to: String },
    Other,
}

/// Split `s` at top level (outside quotes and parentheses) on `sep`.
fn split_top(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if matches!(c, '`' | '\'' | '"') => quote = Some(c),
            None if c == '(' => depth += 1,
            None if c == ')' => depth = depth.saturating_sub(1),
            None if c == sep && depth == 0 => {
                out.push(std::mem::take(&mut current).trim().to_string());
                continue;
            }
            None => {}
        }
        current.push(c);
    }
    out.push(current.trim().to_string());
    out
}

/// The top-level words of `s`, each with its byte offset (quotes kept inside words).
fn top_words(s: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        let in_word_break = quote.is_none() && depth == 0 && c.is_whitespace();
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if matches!(c, '`' | '\'' | '"') => quote = Some(c),
            None if c == '(' => depth += 1,
            None if c == ')' => depth = depth.saturating_sub(1),
            None => {}
        }
        if in_word_break {
            if let Some(st) = start.take() {
                out.push((st, &s[st..i]));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(st) = start {
        out.push((st, &s[st..]));
    }
    out
}

fn parse_line(line: &str) -> GrantLine {
    let line = line.trim();
    let words = top_words(line);
    if !words.first().is_some_and(|(_, w)| w.eq_ignore_ascii_case("GRANT")) {
        return GrantLine::Other;
    }
    let position = |kw: &str| words.iter().position(|(_, w)| w.eq_ignore_ascii_case(kw));
    let Some(to) = position("TO") else { return GrantLine::Other };
    let Some(grantee) = words.get(to + 1).map(|(_, w)| w.to_string()) else { return GrantLine::Other };
    let list_start = words[1].0;
    match position("ON").filter(|on| *on < to) {
        Some(on) => {
            let list = &line[list_start..words[on].0];
            let target: String = line[words[on + 1].0..words[to].0].chars().filter(|c| !c.is_whitespace()).collect();
            GrantLine::Privileges {
                privileges: split_top(list, ',')
                    .into_iter()
                    .map(|p| p.split('(').next().unwrap_or_default().trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect(),
                on: target,
                to: grantee,
            }
        }
        None => GrantLine::Roles {
            roles: split_top(&line[list_start..words[to].0], ',').into_iter().filter(|r| !r.is_empty()).collect(),
            to: grantee,
        },
    }
}

/// Whether `on` names every database and table.
fn is_global(on: &str) -> bool {
    on.replace('`', "") == "*.*"
}

/// Which of `needed` the current account lacks on every table of `schema`,
/// from the rows of `SHOW GRANTS`: held globally (`*.*`) or on `schema.*`
/// (one line or several). Roles and wildcard schema names are not followed:
/// held through them, a privilege is reported missing.
pub(crate) fn schema_missing(rows: &[TextRow], schema: &str, needed: &[&'static str]) -> Vec<&'static str> {
    let mut held = BTreeSet::new();
    for row in rows {
        let Some(line) = row.values().next().cloned().flatten() else { continue };
        if let GrantLine::Privileges { privileges, on, .. } = parse_line(&line) {
            let on = on.replace('`', "");
            if is_global(&on) || on == format!("{schema}.*") {
                held.extend(privileges.iter().map(|p| normalize(p)));
            }
        }
    }
    if held.contains("ALL PRIVILEGES") {
        return Vec::new();
    }
    needed.iter().copied().filter(|n| !held.contains(&normalize(n))).collect()
}

/// Compare `needs` with the rows of `SHOW GRANTS` for the current account.
/// `roles_expanded`: the server lists the privileges of active roles (MariaDB).
pub(crate) fn check(needs: &[PrivilegeNeed], rows: &[TextRow], roles_expanded: bool) -> PrivilegeReport {
    // One column, named after the account ("Grants for pivot@%").
    let lines: Vec<GrantLine> =
        rows.iter().filter_map(|r| r.values().next().cloned().flatten()).map(|l| parse_line(&l)).collect();
    // The account is the grantee that has a host part; roles have none on MariaDB.
    let account = lines
        .iter()
        .find_map(|l| match l {
            GrantLine::Privileges { to, .. } | GrantLine::Roles { to, .. } if to.contains('@') => Some(to.clone()),
            _ => None,
        })
        .or_else(|| {
            lines.iter().find_map(|l| match l {
                GrantLine::Privileges { to, .. } => Some(to.clone()),
                _ => None,
            })
        });
    let mut held = BTreeSet::new();
    let mut grantees = BTreeSet::new();
    let mut granted_roles = Vec::new();
    for line in &lines {
        match line {
            GrantLine::Privileges { privileges, on, to } => {
                grantees.insert(to.clone());
                if is_global(on) {
                    held.extend(privileges.iter().map(|p| normalize(p)));
                }
            }
            GrantLine::Roles { roles, to } => {
                grantees.insert(to.clone());
                if Some(to) == account.as_ref() {
                    granted_roles.extend(roles.iter().cloned());
                }
            }
            GrantLine::Other => {}
        }
    }
    let all = held.contains("ALL PRIVILEGES");
    let mut missing: Vec<MissingPrivilege> = Vec::new();
    for need in needs {
        if all || need.any_of.iter().any(|p| held.contains(&normalize(p))) {
            continue;
        }
        let first = need.any_of[0].to_string();
        match missing.iter_mut().find(|m| m.privilege == first) {
            Some(m) => {
                m.purposes.push(need.purpose.clone());
                m.alternatives.retain(|a| need.any_of.contains(&a.as_str()));
            }
            None => missing.push(MissingPrivilege {
                privilege: first,
                alternatives: need.any_of[1..].iter().map(|a| a.to_string()).collect(),
                purposes: vec![need.purpose.clone()],
            }),
        }
    }
    let (inactive_roles, unexpanded_roles) = if missing.is_empty() {
        (Vec::new(), Vec::new())
    } else if roles_expanded {
        // An active role's own grants are listed with the role as grantee.
        (granted_roles.into_iter().filter(|r| !grantees.contains(r)).collect(), Vec::new())
    } else {
        (Vec::new(), granted_roles)
    };
    PrivilegeReport { account, missing, inactive_roles, unexpanded_roles }
}

#[cfg(test)]
mod schema_tests {
    use super::*;

    fn grants(lines: &[&str]) -> Vec<TextRow> {
        lines.iter().map(|l| TextRow::from([("Grants for pivot@%".to_string(), Some(l.to_string()))])).collect()
    }

    #[test]
    fn heartbeat_schema_grants() {
        let need = ["SELECT", "INSERT", "UPDATE", "CREATE"];
        let base = "GRANT RELOAD, PROCESS ON *.* TO `pivot`@`%`";
        let rows = [
            (vec![base, "GRANT SELECT, INSERT, UPDATE, CREATE ON `pivot`.* TO `pivot`@`%`"], vec![]),
            (vec![base], need.to_vec()),
            (vec![base, "GRANT SELECT ON `pivot`.* TO `pivot`@`%`"], vec!["INSERT", "UPDATE", "CREATE"]),
            (vec![base, "GRANT SELECT, INSERT, UPDATE, CREATE ON `other`.* TO `pivot`@`%`"], need.to_vec()),
            (vec!["GRANT ALL PRIVILEGES ON *.* TO `pivot`@`%`"], vec![]),
            (vec![base, "GRANT ALL ON `pivot`.* TO `pivot`@`%`"], vec![]),
            (
                vec!["GRANT SELECT, INSERT ON *.* TO `pivot`@`%`", "GRANT UPDATE, CREATE ON pivot.* TO `pivot`@`%`"],
                vec![],
            ),
        ];
        for (lines, want) in rows {
            assert_eq!(schema_missing(&grants(&lines), "pivot", &need), want, "{lines:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dialect;
    use pivot_core::ServerVersion;

    fn dialect(version: &str) -> Dialect {
        Dialect::for_version(&ServerVersion::parse(version, "").unwrap())
    }

    /// `SHOW GRANTS` output as rows of its one column.
    fn grants(account: &str, lines: &[&str]) -> Vec<TextRow> {
        lines.iter().map(|l| TextRow::from([(format!("Grants for {account}"), Some(l.to_string()))])).collect()
    }

    fn missing(report: &PrivilegeReport) -> Vec<&str> {
        report.missing.iter().map(|m| m.privilege.as_str()).collect()
    }

    // Captured from MariaDB 10.11.19 (`SHOW GRANTS` as each user).
    const MARIADB_SANDBOX_PIVOT: &str = "GRANT RELOAD, PROCESS, BINLOG MONITOR, CONNECTION ADMIN, READ_ONLY ADMIN, \
        REPLICATION SLAVE ADMIN, REPLICATION MASTER ADMIN, SLAVE MONITOR ON *.* TO `pivot`@`%` \
        IDENTIFIED BY PASSWORD '*2F93AE885D6F300974EE53253DAD1799DD75F7A0'";
    const MARIADB_ALL: &str =
        "GRANT ALL PRIVILEGES ON *.* TO `al`@`%` IDENTIFIED BY PASSWORD '*D821809F681A40A6E379B50D0463EFAE20BDD122'";
    const MARIADB_SUPER: &str = "GRANT RELOAD, PROCESS, SUPER ON *.* TO `s1`@`%` \
        IDENTIFIED BY PASSWORD '*D821809F681A40A6E379B50D0463EFAE20BDD122'";
    const MARIADB_WEAK: &str = "GRANT PROCESS, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `w1`@`%` \
        IDENTIFIED BY PASSWORD '*D821809F681A40A6E379B50D0463EFAE20BDD122'";

    #[test]
    fn mariadb_sandbox_account_and_all_privileges_lack_nothing() {
        let d = dialect("10.11.19-MariaDB-0+deb12u1-log");
        assert_eq!(d.grants_query().to_string(), "SHOW GRANTS");
        let r = d.missing_privileges(&grants("pivot@%", &[MARIADB_SANDBOX_PIVOT]));
        assert!(r.is_complete(), "{r}");
        assert_eq!(r.account.as_deref(), Some("`pivot`@`%`"));
        assert!(d.missing_privileges(&grants("al@%", &[MARIADB_ALL])).is_complete());
        assert!(dialect("5.5.5-10.4.32-MariaDB").missing_privileges(&grants("al@%", &[MARIADB_ALL])).is_complete());
    }

    #[test]
    fn mariadb_super_no_longer_covers_what_it_was_split_into() {
        let rows = grants("s1@%", &[MARIADB_SUPER]);
        let r = dialect("10.11.19-MariaDB").missing_privileges(&rows);
        assert_eq!(missing(&r), ["REPLICATION MASTER ADMIN", "READ_ONLY ADMIN"]);
        assert_eq!(r.grant_statement().unwrap(), "GRANT REPLICATION MASTER ADMIN, READ_ONLY ADMIN ON *.* TO `s1`@`%`");
        let text = r.to_string();
        assert!(
            text.starts_with("missing privileges: REPLICATION MASTER ADMIN (SHOW SLAVE HOSTS: discovering replicas)"),
            "{text}"
        );
        assert!(text.contains("READ_ONLY ADMIN (SET GLOBAL read_only: fencing, promoting)"), "{text}");
        // Before 10.11, SUPER still set read_only.
        assert_eq!(missing(&dialect("10.6.16-MariaDB").missing_privileges(&rows)), ["REPLICATION MASTER ADMIN"]);
        // Before 10.5.2, SHOW SLAVE HOSTS wanted REPLICATION SLAVE and SUPER did the rest.
        assert_eq!(missing(&dialect("10.4.32-MariaDB").missing_privileges(&rows)), ["REPLICATION SLAVE"]);
    }

    #[test]
    fn mariadb_weak_account_is_told_everything_it_lacks() {
        let r = dialect("10.11.19-MariaDB").missing_privileges(&grants("w1@%", &[MARIADB_WEAK]));
        assert_eq!(
            missing(&r),
            [
                "SLAVE MONITOR",
                "REPLICATION MASTER ADMIN",
                "REPLICATION SLAVE ADMIN",
                "RELOAD",
                "READ_ONLY ADMIN",
                "CONNECTION ADMIN"
            ]
        );
        let rma = &r.missing[1];
        assert_eq!(rma.purposes.len(), 2, "SHOW SLAVE HOSTS and semi-sync: {rma:?}");
        assert!(rma.alternatives.is_empty(), "SUPER does not allow SHOW SLAVE HOSTS: {rma:?}");
        assert_eq!(r.missing[0].alternatives, ["SUPER"]);
        assert!(r.to_string().contains("SLAVE MONITOR or SUPER (SHOW ALL SLAVES STATUS: reading replication state)"));
        // 10.5.2 to 10.5.8 read replica status with REPLICATION SLAVE ADMIN.
        let r = dialect("10.5.8-MariaDB").missing_privileges(&grants("w1@%", &[MARIADB_WEAK]));
        assert_eq!(missing(&r)[0], "REPLICATION SLAVE ADMIN");
    }

    #[test]
    fn mariadb_roles_count_when_active() {
        // `ro` has role r1 (RELOAD, SLAVE MONITOR, and role r2 with READ_ONLY
        // ADMIN) as its default role: the server lists the role's grants.
        let active = grants(
            "ro@%",
            &[
                "GRANT `r1` TO `ro`@`%`",
                "GRANT USAGE ON *.* TO `ro`@`%` IDENTIFIED BY PASSWORD '*D821809F681A40A6E379B50D0463EFAE20BDD122'",
                "GRANT `r2` TO `r1`",
                "GRANT RELOAD, SLAVE MONITOR ON *.* TO `r1`",
                "GRANT READ_ONLY ADMIN ON *.* TO `r2`",
                "SET DEFAULT ROLE `r1` FOR `ro`@`%`",
            ],
        );
        let d = dialect("10.11.19-MariaDB");
        let r = d.missing_privileges(&active);
        assert_eq!(r.account.as_deref(), Some("`ro`@`%`"));
        assert_eq!(missing(&r), ["REPLICATION MASTER ADMIN", "PROCESS", "REPLICATION SLAVE ADMIN", "CONNECTION ADMIN"]);
        assert!(r.inactive_roles.is_empty(), "{r:?}");
        // `rn` has the same role, not as its default role: it is not active.
        let inactive = grants(
            "rn@%",
            &[
                "GRANT `r1` TO `rn`@`%`",
                "GRANT USAGE ON *.* TO `rn`@`%` IDENTIFIED BY PASSWORD '*D821809F681A40A6E379B50D0463EFAE20BDD122'",
            ],
        );
        let r = d.missing_privileges(&inactive);
        assert_eq!(missing(&r).len(), 7, "{r}");
        assert_eq!(r.inactive_roles, ["`r1`"]);
        assert!(r.to_string().contains("SET DEFAULT ROLE `r1` FOR `rn`@`%`"), "{r}");
    }

    // MySQL rows are written as MySQL prints them (static privileges, then
    // dynamic ones comma-separated without spaces, roles with a host part;
    // the form of the MySQL 8.0 manual's SHOW GRANTS and roles examples): no
    // MySQL server runs here to capture them from.

    #[test]
    fn mysql8_dynamic_privileges_and_deprecated_super() {
        let d = dialect("8.0.36");
        let full = grants(
            "pivot@%",
            &[
                "GRANT RELOAD, PROCESS, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `pivot`@`%`",
                "GRANT CONNECTION_ADMIN,REPLICATION_SLAVE_ADMIN,SYSTEM_VARIABLES_ADMIN ON *.* TO `pivot`@`%`",
            ],
        );
        assert!(d.missing_privileges(&full).is_complete());
        let old_school = grants("pivot@%", &["GRANT RELOAD, PROCESS, SUPER, REPLICATION SLAVE ON *.* TO `pivot`@`%`"]);
        assert!(d.missing_privileges(&old_school).is_complete(), "SUPER still works on 8.0");
        let partial = grants(
            "pivot@%",
            &[
                "GRANT PROCESS, REPLICATION CLIENT ON *.* TO `pivot`@`%`",
                "GRANT SELECT ON `performance_schema`.* TO `pivot`@`%`",
            ],
        );
        let r = d.missing_privileges(&partial);
        assert_eq!(
            missing(&r),
            ["REPLICATION SLAVE", "REPLICATION_SLAVE_ADMIN", "RELOAD", "SYSTEM_VARIABLES_ADMIN", "CONNECTION_ADMIN"]
        );
        assert!(r.to_string().contains("RESET REPLICA ALL: promoting a replica"), "{r}");
        assert!(r.to_string().contains("SET GLOBAL read_only and super_read_only"), "{r}");
    }

    #[test]
    fn mysql_role_privileges_are_not_listed_so_the_report_says_so() {
        let rows = grants(
            "dev1@localhost",
            &["GRANT USAGE ON *.* TO `dev1`@`localhost`", "GRANT `app_developer`@`%` TO `dev1`@`localhost`"],
        );
        let r = dialect("8.0.36").missing_privileges(&rows);
        assert_eq!(r.account.as_deref(), Some("`dev1`@`localhost`"));
        assert_eq!(r.unexpanded_roles, ["`app_developer`@`%`"]);
        assert!(r.to_string().contains("unless granted through role `app_developer`@`%`"), "{r}");
    }

    #[test]
    fn mysql57_needs_super() {
        let rows =
            grants("pivot@%", &["GRANT RELOAD, PROCESS, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'pivot'@'%'"]);
        let r = dialect("5.7.44-log").missing_privileges(&rows);
        assert_eq!(missing(&r), ["SUPER"]);
        assert_eq!(r.missing[0].purposes.len(), 4, "{r}");
        assert_eq!(r.grant_statement().unwrap(), "GRANT SUPER ON *.* TO 'pivot'@'%'");
    }

    #[test]
    fn lines_are_split_outside_quotes_and_parentheses() {
        assert_eq!(
            parse_line("GRANT SELECT (a, `b,c`), INSERT ON `db`.`t` TO `u`@`%` IDENTIFIED BY PASSWORD '*AB'"),
            GrantLine::Privileges {
                privileges: vec!["SELECT".into(), "INSERT".into()],
                on: "`db`.`t`".into(),
                to: "`u`@`%`".into()
            }
        );
        assert_eq!(
            parse_line("GRANT `r1`@`%`,`r2`@`%` TO `pivot`@`%`"),
            GrantLine::Roles { roles: vec!["`r1`@`%`".into(), "`r2`@`%`".into()], to: "`pivot`@`%`".into() }
        );
        assert_eq!(parse_line("SET DEFAULT ROLE `r1` FOR `ro`@`%`"), GrantLine::Other);
        assert_eq!(
            parse_line("GRANT PROXY ON ''@'%' TO 'root'@'localhost' WITH GRANT OPTION"),
            GrantLine::Privileges {
                privileges: vec!["PROXY".into()],
                on: "''@'%'".into(),
                to: "'root'@'localhost'".into()
            }
        );
        // A user called `on to` does not confuse the parser.
        assert_eq!(
            parse_line("GRANT RELOAD ON *.* TO `on to`@`%`"),
            GrantLine::Privileges { privileges: vec!["RELOAD".into()], on: "*.*".into(), to: "`on to`@`%`".into() }
        );
    }

    #[test]
    fn names_compare_like_the_server_compares_them() {
        assert_eq!(normalize("replication_slave_admin"), "REPLICATION SLAVE ADMIN");
        assert_eq!(normalize("READ_ONLY ADMIN"), normalize("read only admin"));
        assert_eq!(normalize("REPLICA MONITOR"), "SLAVE MONITOR");
        assert_eq!(normalize("ALL"), "ALL PRIVILEGES");
    }
}
