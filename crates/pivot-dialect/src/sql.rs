//! SQL statements that can be logged safely.

use std::fmt;

/// A statement with the text to send and the text to show. `Display` and
/// `Debug` print the redacted form, so a password can only leave through
/// [`Sql::text`], which only the executor calls.
#[derive(Clone, PartialEq, Eq)]
pub struct Sql {
    text: String,
    shown: String,
}

impl Sql {
    /// A statement with nothing secret in it.
    pub fn plain(text: impl Into<String>) -> Sql {
        let text = text.into();
        Sql { shown: text.clone(), text }
    }

    /// A statement whose shown form differs (secrets replaced).
    pub fn with_secret(text: String, shown: String) -> Sql {
        Sql { text, shown }
    }

    /// The statement to send to the server. Never log this.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn shown(&self) -> &str {
        &self.shown
    }
}

impl fmt::Display for Sql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for Sql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sql({:?})", self.shown)
    }
}

/// A single-quoted SQL string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_what_could_end_the_literal() {
        assert_eq!(quote("a'b\\c"), "'a''b\\\\c'");
        assert_eq!(quote("x\ny"), "'x\\ny'");
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Sql::with_secret("PASSWORD='hunter2'".into(), "PASSWORD=<redacted>".into());
        assert!(!format!("{s} {s:?}").contains("hunter2"));
        assert_eq!(s.text(), "PASSWORD='hunter2'");
    }
}
