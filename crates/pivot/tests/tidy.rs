//! Tidy tests, in the spirit of rust-analyzer's: architecture rules a reviewer
//! would otherwise have to remember, checked by reading the source.
//!
//! * Only `pivot-dialect` spells SQL: no other crate's non-test source has a
//!   string literal that begins with an SQL statement.
//! * The functional core (`pivot-core`, and `pivot-dialect` with it) reads no
//!   clock and touches no tokio, file, socket, thread or process.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

// ---- the rules -----------------------------------------------------------------

/// Statements pivot could send to a server. A literal beginning with one of
/// these (then a space, `;` or its end) is SQL.
const SQL_STARTS: &[&str] = &[
    "SELECT",
    "SHOW",
    "SET GLOBAL",
    "SET SESSION",
    "SET @@",
    "SET DEFAULT ROLE",
    "CHANGE MASTER",
    "CHANGE REPLICATION",
    "KILL",
    "STOP SLAVE",
    "STOP REPLICA",
    "START SLAVE",
    "START REPLICA",
    "RESET SLAVE",
    "RESET REPLICA",
    "RESET MASTER",
    "FLUSH",
    "PURGE BINARY",
    "GRANT",
    "REVOKE",
    "CREATE USER",
    "DROP USER",
    "CREATE DATABASE",
    "CREATE TABLE",
    "DROP TABLE",
    "ALTER TABLE",
    "INSERT INTO",
    "UPDATE",
    "DELETE FROM",
];

/// SQL outside `pivot-dialect` that is allowed, each with its reason. An
/// entry that no longer matches anything fails the test, so the list stays true.
const SQL_ALLOWED: &[(&str, &str, &str)] = &[
    ("crates/pivot-state/", "", "SQLite statements for pivot's own state file, not sent to a MySQL server"),
    (
        "crates/pivot-sandbox/src/files.rs",
        "FLUSH PRIVILEGES;",
        "the sandbox's bootstrap script, run by mariadbd --bootstrap on its template datadir",
    ),
    ("crates/pivot-sandbox/src/setup.rs", "CHANGE MASTER", "a step name in an error message, not a statement"),
    ("crates/pivot-sandbox/src/setup.rs", "START SLAVE", "a step name in an error message, not a statement"),
    (
        "crates/pivot-drill/src/writer.rs",
        "",
        "the drills' application: it writes and reads its own table as a client application would",
    ),
    (
        "crates/pivot-drill/src/vip.rs",
        "SELECT @@server_id",
        "a client behind the virtual IP asks which server it reached, as an application would",
    ),
    (
        "crates/pivot-bench/src/watch.rs",
        "",
        "the benchmark plays the application and the operator: a conflicting row breaks replication, threads are \
         stopped and started, as the integration tests do",
    ),
    (
        "crates/pivot-bench/src/routes.rs",
        "SELECT @@server_id",
        "a client behind the virtual IP asks which server it reached, as an application would",
    ),
];

/// What the core must not name: a clock, tokio, files, sockets, threads, processes.
const IMPURE: &[(&str, &str)] = &[
    ("Instant", "reads a clock: take the time as a `Millis` argument"),
    ("SystemTime", "reads a clock: take the time as a `Millis` argument"),
    ("UNIX_EPOCH", "reads a clock: take the time as a `Millis` argument"),
    ("tokio", "is async I/O: the core is called, it does not wait"),
    ("std::fs", "touches files: the shell reads them and passes values"),
    ("std::net", "touches sockets: the shell talks to servers"),
    ("std::thread", "spawns or sleeps: the shell does"),
    ("std::process", "runs processes: the shell does"),
];

const PURE_CRATES: &[&str] = &["crates/pivot-core", "crates/pivot-dialect"];

#[test]
fn only_pivot_dialect_spells_sql() {
    let root = workspace();
    let mut violations = Vec::new();
    let mut used = vec![false; SQL_ALLOWED.len()];
    for file in rust_files(&root.join("crates")) {
        let rel = relative(&root, &file);
        if rel.starts_with("crates/pivot-dialect/") || is_test_file(&rel) {
            continue;
        }
        let lexed = lex(&std::fs::read_to_string(&file).unwrap());
        for lit in lexed.strings.iter().filter(|s| !s.in_test) {
            let Some(statement) = sql_start(&lit.text) else { continue };
            let allowed = SQL_ALLOWED
                .iter()
                .position(|(path, prefix, _)| rel.starts_with(path) && lit.text.trim_start().starts_with(prefix));
            match allowed {
                Some(i) => used[i] = true,
                None => violations.push(format!(
                    "{rel}:{}: SQL spelled outside pivot-dialect ({statement}...): {:?}; add a `Dialect` method and call it",
                    lit.line,
                    first_line(&lit.text)
                )),
            }
        }
    }
    for (i, (path, prefix, why)) in SQL_ALLOWED.iter().enumerate() {
        if !used[i] {
            violations.push(format!("allowed SQL {path} {prefix:?} ({why}) is gone: remove it from SQL_ALLOWED"));
        }
    }
    assert!(violations.is_empty(), "\n{}\n", violations.join("\n"));
}

#[test]
fn the_core_reads_no_clock_and_does_no_io() {
    let root = workspace();
    let mut violations = Vec::new();
    for krate in PURE_CRATES {
        let files = rust_files(&root.join(krate).join("src"));
        assert!(!files.is_empty(), "no sources under {krate}");
        for file in files {
            let rel = relative(&root, &file);
            let lexed = lex(&std::fs::read_to_string(&file).unwrap());
            for (name, why) in IMPURE {
                for line in uses(&lexed.code, name) {
                    violations.push(format!("{rel}:{line}: `{name}` {why} ({krate} is the pure core)"));
                }
            }
        }
        let manifest = std::fs::read_to_string(root.join(krate).join("Cargo.toml")).unwrap();
        for dep in ["tokio", "mysql_async", "rusqlite", "libc", "nix", "axum", "reqwest"] {
            if manifest.lines().any(|l| {
                l.trim_start().starts_with(&format!("{dep} ")) || l.trim_start().starts_with(&format!("{dep}."))
            }) {
                violations.push(format!("{krate}/Cargo.toml: depends on {dep}, which does I/O"));
            }
        }
    }
    assert!(violations.is_empty(), "\n{}\n", violations.join("\n"));
}

/// The tidy checks' own reading of Rust, on small samples.
#[test]
fn the_reader_sees_what_the_compiler_sees() {
    let src = r####"
// "SELECT in a comment"
/* "SHOW in a block /* nested */ comment" */
fn f<'a>(x: &'a str) -> char {
    let _ = "SELECT 1";
    let _ = r#"SHOW "quoted" things"#;
    let _ = "it's \"KILL\" no";
    let _ = 'x';
    let _ = '"';
    let _ = b"STOP SLAVE";
    let _ = "SELECTED words";
    '\''
}
#[cfg(test)]
mod tests {
    fn g() { let _ = "SELECT in a test"; }
}
#[cfg(test)]
mod more_tests;
fn h() { let _ = "GRANT ALL"; std::time::Instant::now(); }
"####;
    let lexed = lex(src);
    let found: Vec<(usize, String)> = lexed
        .strings
        .iter()
        .filter(|s| !s.in_test)
        .filter_map(|s| sql_start(&s.text).map(|st| (s.line, st.to_string())))
        .collect();
    assert_eq!(found, [(5, "SELECT".to_string()), (6, "SHOW".into()), (10, "STOP SLAVE".into()), (20, "GRANT".into())]);
    assert!(lexed.strings.iter().any(|s| s.in_test && s.text == "SELECT in a test"));
    assert_eq!(uses(&lexed.code, "Instant"), [20]);
    assert_eq!(uses(&lexed.code, "std::time"), [20]);
    assert!(uses(&lexed.code, "SELECT").is_empty(), "literals are not code");
    let grouped = lex("use std::{collections::BTreeMap, fs, net::TcpStream};\nuse tokio::time;\nfn fsx() {}\n");
    assert_eq!(uses(&grouped.code, "std::fs"), [1]);
    assert_eq!(uses(&grouped.code, "std::net"), [1]);
    assert_eq!(uses(&grouped.code, "tokio"), [2]);
    assert!(uses(&grouped.code, "std::thread").is_empty());
}

// ---- reading the sources --------------------------------------------------------

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                // Integration tests, benches and examples are not the product.
                if !["target", "tests", "benches", "examples"].contains(&name.as_str()) || d == *dir {
                    stack.push(p);
                }
            } else if name.ends_with(".rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn relative(root: &Path, file: &Path) -> String {
    file.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/")
}

/// Test modules kept in files of their own (`#[cfg(test)] mod tests;`).
fn is_test_file(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or_default();
    name == "tests.rs" || name.ends_with("_tests.rs") || rel.contains("/src/tests/") || !rel.contains("/src/")
}

fn sql_start(text: &str) -> Option<&'static str> {
    let t = text.trim_start();
    SQL_STARTS.iter().copied().find(|kw| {
        t.starts_with(kw)
            && t[kw.len()..].chars().next().is_none_or(|c| c.is_whitespace() || c == ';' || kw.ends_with('@'))
    })
}

fn first_line(text: &str) -> String {
    let line = text.trim_start().lines().next().unwrap_or_default();
    line.chars().take(80).collect()
}

/// Lines of `code` where `path` (`Instant`, `std::fs`) is named: as a whole
/// word or path, or inside a `std::{...}` import group.
fn uses(code: &[(char, usize)], path: &str) -> Vec<usize> {
    let text: String = code.iter().map(|(c, _)| *c).collect();
    let line_at = |byte: usize| code[text[..byte].chars().count()].1;
    let mut lines = Vec::new();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut push = |line: usize| {
        if !lines.contains(&line) {
            lines.push(line);
        }
    };
    for (at, _) in text.match_indices(path) {
        let before = text[..at].chars().next_back();
        let after = text[at + path.len()..].chars().next();
        if !before.is_some_and(ident) && !after.is_some_and(ident) {
            push(line_at(at));
        }
    }
    // `use std::{fs, net::TcpStream}` names std::fs and std::net.
    if let Some((krate, item)) = path.split_once("::") {
        let group = format!("{krate}::{{");
        for (at, _) in text.match_indices(&group) {
            let body_start = at + group.len();
            let body_end = text[body_start..].find('}').map_or(text.len(), |e| body_start + e);
            let names_it = text[body_start..body_end]
                .split(',')
                .any(|part| part.trim() == item || part.trim().starts_with(&format!("{item}::")));
            if names_it {
                push(line_at(at));
            }
        }
    }
    lines.sort();
    lines
}

struct Literal {
    text: String,
    line: usize,
    /// Inside a `#[cfg(test)]` item.
    in_test: bool,
}

struct Lexed {
    /// The code with comments removed and each literal replaced by `""`,
    /// each char with its line.
    code: Vec<(char, usize)>,
    strings: Vec<Literal>,
}

/// Split Rust source into code and string literals (comments dropped), and
/// mark the literals inside `#[cfg(test)]` items.
fn lex(src: &str) -> Lexed {
    let chars: Vec<char> = src.chars().collect();
    let mut code = Vec::new();
    let mut strings = Vec::new();
    // Where each literal stands in `code`, to find the test items later.
    let mut literal_at = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| chars.get(i).copied();
    while i < chars.len() {
        let c = chars[i];
        let prev_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if c == '/' && at(i + 1) == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == Some('*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == Some('/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
            }
        } else if c == '"' || (c == 'r' && !prev_ident && matches!(at(i + 1), Some('"' | '#')) && raw_start(&chars, i))
        {
            let start_line = line;
            let mut text = String::new();
            if c == 'r' {
                let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
                i += 2 + hashes;
                let close: Vec<char> = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
                while i < chars.len() && chars[i..].iter().take(close.len()).ne(close.iter()) {
                    line += usize::from(chars[i] == '\n');
                    text.push(chars[i]);
                    i += 1;
                }
                i += close.len();
            } else {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        // A line continuation swallows the newline and the indentation.
                        if at(i + 1) == Some('\n') {
                            line += 1;
                            i += 2;
                            while at(i).is_some_and(|c| c == ' ' || c == '\t') {
                                i += 1;
                            }
                            continue;
                        }
                        text.push(chars[i]);
                        i += 1;
                    }
                    line += usize::from(chars[i] == '\n');
                    text.push(chars[i]);
                    i += 1;
                }
                i += 1;
            }
            literal_at.push(code.len());
            code.push(('"', start_line));
            code.push(('"', start_line));
            strings.push(Literal { text, line: start_line, in_test: false });
        } else if c == '\'' {
            // A char literal ('x', '\n', '"') or a lifetime ('a).
            let len = if at(i + 1) == Some('\\') {
                // '\n', '\'', '\x41', '\u{1F600}': the escaped char, then up to the quote.
                chars.get(i + 3..).and_then(|rest| rest.iter().position(|c| *c == '\'')).map_or(2, |p| p + 4)
            } else if at(i + 2) == Some('\'') {
                3
            } else {
                1
            };
            code.push(('\'', line));
            if len > 1 {
                code.push(('\'', line));
            }
            i += len;
        } else {
            line += usize::from(c == '\n');
            code.push((c, line - usize::from(c == '\n')));
            i += 1;
        }
    }
    // Items under `#[cfg(test)]`: up to the `;` or the matching `}`.
    let text: String = code.iter().map(|(c, _)| *c).collect();
    let positions: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
    let mut test_ranges = Vec::new();
    for (byte, _) in text.match_indices("#[cfg(test)]") {
        let start = positions.partition_point(|b| *b < byte);
        let mut depth = 0usize;
        let mut end = code.len();
        for (k, (ch, _)) in code.iter().enumerate().skip(start + "#[cfg(test)]".len()) {
            match ch {
                ';' if depth == 0 => {
                    end = k;
                    break;
                }
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k;
                        break;
                    }
                }
                _ => {}
            }
        }
        test_ranges.push(start..=end);
    }
    for (lit, pos) in strings.iter_mut().zip(&literal_at) {
        lit.in_test = test_ranges.iter().any(|r| r.contains(pos));
    }
    Lexed { code, strings }
}

/// `r"`, `r#"`, `r##"`: the start of a raw string (not `r#ident`).
fn raw_start(chars: &[char], i: usize) -> bool {
    let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
    chars.get(i + 1 + hashes) == Some(&'"')
}
