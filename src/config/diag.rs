//! Where a configuration error is and how it reads: source positions, key paths
//! (`clusters[1].nodes[0].address`) and the diagnostics built from them, rendered as
//! `config.yml:14:9: clusters[1].nodes[0].address: "10.0.0" is not an IP address`.
//!
//! This file only describes and collects errors; it never decides what is valid.

use std::fmt;

/// A position in the configuration file: 1-based line and column (columns count
/// characters, not bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A key path into the document, e.g. `clusters[1].nodes[0].address`; empty at the root.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeyPath(String);

impl KeyPath {
    pub fn root() -> KeyPath {
        KeyPath(String::new())
    }

    /// The path of `key` inside this map. Keys that are not plain words are written
    /// `["like this"]` so the path stays unambiguous.
    pub fn key(&self, key: &str) -> KeyPath {
        let plain = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let mut s = self.0.clone();
        if plain {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(key);
        } else {
            s.push_str(&format!("[{}]", quote(key)));
        }
        KeyPath(s)
    }

    /// The path of item `index` of this list.
    pub fn index(&self, index: usize) -> KeyPath {
        KeyPath(format!("{}[{index}]", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this path lies inside the top-level section `section`.
    pub fn is_under(&self, section: &str) -> bool {
        self.0 == section
            || self.0.starts_with(&format!("{section}."))
            || self.0.starts_with(&format!("{section}["))
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `"text"` with control characters and quotes escaped, as values are shown in messages.
pub fn quote(text: &str) -> String {
    const MAX: usize = 80;
    let mut shown: String = text.chars().take(MAX).collect();
    if text.chars().count() > MAX {
        shown.push('…');
    }
    format!("\"{}\"", shown.escape_debug())
}

/// One configuration error: the file, where in it (when known), the key path (when
/// known) and what is wrong, written for the person who will fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub pos: Option<Pos>,
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.file.is_empty() && self.pos.is_none() && self.path.is_empty() {
            // A message that names the file itself (big_brother's "Could not find ...").
            return f.write_str(&self.message);
        }
        f.write_str(&self.file)?;
        if let Some(pos) = self.pos {
            write!(f, ":{pos}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every error found in one configuration, in file order. Its `Display` is one error per
/// line, as `bigbro check` prints them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Errors {
    pub file: String,
    pub list: Vec<Diagnostic>,
}

impl Errors {
    pub fn len(&self) -> usize {
        self.list.len()
    }
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    /// Each error rendered as one line, without trailing newlines.
    pub fn lines(&self) -> Vec<String> {
        self.list.iter().map(|d| d.to_string()).collect()
    }
    /// "1 error" / "3 errors".
    pub fn count_text(&self) -> String {
        match self.list.len() {
            1 => "1 error".to_string(),
            n => format!("{n} errors"),
        }
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.list.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

/// The collector every reader and check writes into.
#[derive(Debug)]
pub(crate) struct Diags {
    file: String,
    list: Vec<Diagnostic>,
    /// What was already reported, to drop repeats cheaply.
    seen: std::collections::HashSet<(Option<Pos>, String, String)>,
}

impl Diags {
    pub fn new(file: &str) -> Diags {
        Diags {
            file: file.to_string(),
            list: Vec::new(),
            seen: std::collections::HashSet::new(),
        }
    }

    /// An error at `pos` about the value or key at `path`.
    pub fn at(&mut self, pos: Pos, path: &KeyPath, message: impl Into<String>) {
        self.push(Some(pos), path.as_str(), message.into());
    }

    /// An error about the whole file (unreadable, not UTF-8, empty...).
    pub fn file(&mut self, pos: Option<Pos>, message: impl Into<String>) {
        self.push(pos, "", message.into());
    }

    fn push(&mut self, pos: Option<Pos>, path: &str, message: String) {
        if self.seen.insert((pos, path.to_string(), message.clone())) {
            self.list.push(Diagnostic {
                file: self.file.clone(),
                pos,
                path: path.to_string(),
                message,
            });
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The errors in file order (position-less ones first), or `Ok` when there are none.
    pub fn finish(mut self) -> Result<(), Errors> {
        if self.list.is_empty() {
            return Ok(());
        }
        self.list.sort_by_key(|d| d.pos);
        Err(Errors {
            file: self.file,
            list: self.list,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_like_the_document() {
        let p = KeyPath::root()
            .key("clusters")
            .index(1)
            .key("nodes")
            .index(0);
        assert_eq!(p.key("address").as_str(), "clusters[1].nodes[0].address");
        assert_eq!(
            KeyPath::root().key("web app").key("fwmark").as_str(),
            "[\"web app\"].fwmark"
        );
        assert!(KeyPath::root()
            .key("_big_brother")
            .key("x")
            .is_under("_big_brother"));
        assert!(!KeyPath::root()
            .key("_big_brotherx")
            .is_under("_big_brother"));
    }

    #[test]
    fn diagnostics_render_and_sort_in_file_order() {
        let mut d = Diags::new("config.yml");
        let path = KeyPath::root().key("clusters").index(1);
        d.at(
            Pos {
                line: 14,
                column: 9,
            },
            &path.key("b"),
            "second",
        );
        d.at(Pos { line: 3, column: 1 }, &path.key("a"), "first");
        d.at(Pos { line: 3, column: 1 }, &path.key("a"), "first");
        d.file(None, "whole file");
        let errs = d.finish().unwrap_err();
        assert_eq!(
            errs.lines(),
            [
                "config.yml: whole file",
                "config.yml:3:1: clusters[1].a: first",
                "config.yml:14:9: clusters[1].b: second"
            ]
        );
        assert_eq!(errs.count_text(), "3 errors");
    }

    #[test]
    fn quote_escapes_and_truncates() {
        assert_eq!(quote("a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(quote(&"x".repeat(100)).chars().count(), 80 + 3);
    }
}
