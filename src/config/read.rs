//! Typed reading of the positioned YAML tree: maps with known keys (unknown ones are
//! errors with a "did you mean"), and scalars read as what their key needs (integer,
//! seconds, IP address, choice...). Every problem becomes a diagnostic at the value's
//! position and reading goes on, so one pass reports everything.
//!
//! Readers interpret text by what the key needs, not by YAML's guess: `port: "80"` and
//! `port: 80` are the same port. Only null (`~`, empty) depends on the scalar being plain.
//! Nothing here knows what a cluster is.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::diag::{quote, Diags, KeyPath, Pos};
use super::suggest::did_you_mean;
use super::yaml::{Kind, Node};

/// A value read from the file, with where it was written.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct At<T> {
    pub value: T,
    pub pos: Pos,
    pub path: KeyPath,
}

/// A key's state after reading: not written, written but wrong (already reported), or
/// a good value.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum Slot<T> {
    #[default]
    Absent,
    Invalid,
    Given(At<T>),
}

impl<T> Slot<T> {
    /// This slot, or `fallback` when the key was not written (how defaults merge).
    pub fn or(self, fallback: Slot<T>) -> Slot<T> {
        match self {
            Slot::Absent => fallback,
            other => other,
        }
    }
    pub fn given(&self) -> Option<&At<T>> {
        match self {
            Slot::Given(at) => Some(at),
            _ => None,
        }
    }
    pub fn value(&self) -> Option<&T> {
        self.given().map(|a| &a.value)
    }
    pub fn is_absent(&self) -> bool {
        matches!(self, Slot::Absent)
    }
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Slot<U> {
        match self {
            Slot::Absent => Slot::Absent,
            Slot::Invalid => Slot::Invalid,
            Slot::Given(at) => Slot::Given(At {
                value: f(at.value),
                pos: at.pos,
                path: at.path,
            }),
        }
    }
}

/// Sets a slot from the result of a reader.
pub(crate) fn given<T>(value: T, node: &Node, path: &KeyPath) -> Slot<T> {
    Slot::Given(At {
        value,
        pos: node.pos,
        path: path.clone(),
    })
}

/// One known key of a map being read.
pub(crate) struct Entry<'n> {
    pub key: &'n str,
    pub key_pos: Pos,
    pub value: &'n Node,
    pub path: KeyPath,
}

/// For a key unknown here, where it does belong (a hint), to say so instead of guessing.
pub(crate) type Elsewhere<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Reads `node` as a map whose allowed keys are `known`. Reports a non-map, non-text
/// keys, duplicate keys and unknown keys (with a "did you mean", or the hint from
/// `elsewhere` when the key belongs somewhere else). Returns the known entries, or
/// `None` when `node` is not a map at all.
pub(crate) fn entries<'n>(
    node: &'n Node,
    path: &KeyPath,
    what: &str,
    known: &[&str],
    elsewhere: Elsewhere<'_>,
    d: &mut Diags,
) -> Option<Vec<Entry<'n>>> {
    let Kind::Map(pairs) = &node.kind else {
        d.at(
            node.pos,
            path,
            format!("expected {what} (a map), found {}", node.describe()),
        );
        return None;
    };
    let mut out: Vec<Entry<'n>> = Vec::new();
    let mut seen: Vec<(&str, Pos)> = Vec::new();
    for (k, v) in pairs {
        let Kind::Scalar(s) = &k.kind else {
            d.at(
                k.pos,
                path,
                format!("a key must be a word, found {}", k.describe()),
            );
            continue;
        };
        let key = s.text.as_str();
        let kpath = path.key(key);
        if let Some((_, first)) = seen.iter().find(|(name, _)| *name == key) {
            d.at(
                k.pos,
                &kpath,
                format!("duplicate key (first given at {first})"),
            );
            continue;
        }
        seen.push((key, k.pos));
        if known.contains(&key) {
            out.push(Entry {
                key,
                key_pos: k.pos,
                value: v,
                path: kpath,
            });
        } else if let Some(hint) = elsewhere(key) {
            d.at(k.pos, &kpath, format!("unknown key here: {hint}"));
        } else {
            d.at(k.pos, &kpath, unknown_key_message(key, known));
        }
    }
    Some(out)
}

pub(crate) fn unknown_key_message(key: &str, known: &[&str]) -> String {
    match did_you_mean(key, known) {
        Some(s) => format!("unknown key; did you mean \"{s}\"?"),
        None => format!("unknown key (known keys here: {})", known.join(", ")),
    }
}

/// The text of a non-null scalar, or an error saying what was expected instead.
pub(crate) fn scalar<'n>(
    node: &'n Node,
    path: &KeyPath,
    what: &str,
    d: &mut Diags,
) -> Option<&'n str> {
    match node.text() {
        Some(t) => Some(t),
        None => {
            d.at(
                node.pos,
                path,
                format!("expected {what}, found {}", node.describe()),
            );
            None
        }
    }
}

/// Any scalar, as text.
pub(crate) fn string(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<String> {
    match scalar(node, path, "a string", d) {
        Some(t) => given(t.to_string(), node, path),
        None => Slot::Invalid,
    }
}

fn parse_int(text: &str) -> Option<i128> {
    let t = text.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let value = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        if hex.is_empty() || hex.len() > 30 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        i128::from_str_radix(hex, 16).ok()?
    } else {
        if digits.is_empty() || digits.len() > 30 || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        digits.parse::<i128>().ok()?
    };
    Some(if neg { -value } else { value })
}

/// An integer (decimal or `0x` hex) within `lo..=hi`.
pub(crate) fn integer(node: &Node, path: &KeyPath, lo: i64, hi: i64, d: &mut Diags) -> Slot<i64> {
    let Some(text) = scalar(node, path, "an integer", d) else {
        return Slot::Invalid;
    };
    let Some(n) = parse_int(text) else {
        d.at(node.pos, path, format!("{} is not an integer", quote(text)));
        return Slot::Invalid;
    };
    if n < i128::from(lo) || n > i128::from(hi) {
        d.at(
            node.pos,
            path,
            format!("{} is outside {lo}..{hi}", text.trim()),
        );
        return Slot::Invalid;
    }
    given(n as i64, node, path)
}

/// `true` or `false`.
pub(crate) fn boolean(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<bool> {
    let Some(text) = scalar(node, path, "true or false", d) else {
        return Slot::Invalid;
    };
    match text {
        "true" | "True" | "TRUE" => given(true, node, path),
        "false" | "False" | "FALSE" => given(false, node, path),
        _ => {
            d.at(
                node.pos,
                path,
                format!("{} is not true or false", quote(text)),
            );
            Slot::Invalid
        }
    }
}

/// The longest duration any key accepts.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(86_400);

/// Decimal seconds (`2`, `0.5`, `1.25`) as an exact duration.
fn parse_seconds(text: &str) -> Option<Duration> {
    let t = text.trim();
    let (whole, frac) = match t.split_once('.') {
        Some((w, f)) => (w, f),
        None => (t, ""),
    };
    if (whole.is_empty() && frac.is_empty())
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || frac.len() > 9
        || whole.len() > 12
    {
        return None;
    }
    let secs: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    Some(Duration::new(secs, nanos))
}

fn check_duration(
    d_: Duration,
    node: &Node,
    path: &KeyPath,
    text: &str,
    d: &mut Diags,
) -> Slot<Duration> {
    if d_ > MAX_DURATION {
        d.at(
            node.pos,
            path,
            format!("{} is longer than a day (86400 s)", text.trim()),
        );
        return Slot::Invalid;
    }
    given(d_, node, path)
}

/// A non-negative number of seconds, fractions allowed.
pub(crate) fn seconds(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<Duration> {
    let Some(text) = scalar(node, path, "a number of seconds", d) else {
        return Slot::Invalid;
    };
    match parse_seconds(text) {
        Some(v) => check_duration(v, node, path, text, d),
        None => {
            d.at(
                node.pos,
                path,
                format!(
                    "{} is not a number of seconds (write e.g. 2 or 0.5)",
                    quote(text)
                ),
            );
            Slot::Invalid
        }
    }
}

/// A whole, non-negative number of milliseconds (the cluster-map format's `checkInterval`).
pub(crate) fn millis(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<Duration> {
    let Some(text) = scalar(node, path, "a number of milliseconds", d) else {
        return Slot::Invalid;
    };
    match parse_int(text).filter(|n| *n >= 0) {
        Some(ms) if ms <= 86_400_000 => given(Duration::from_millis(ms as u64), node, path),
        Some(_) => {
            d.at(
                node.pos,
                path,
                format!("{} ms is longer than a day (86400000 ms)", text.trim()),
            );
            Slot::Invalid
        }
        None => {
            d.at(
                node.pos,
                path,
                format!("{} is not a whole number of milliseconds", quote(text)),
            );
            Slot::Invalid
        }
    }
}

/// An IP address, written as one: bigbro never resolves host names.
pub(crate) fn ip(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<IpAddr> {
    let Some(text) = scalar(node, path, "an IP address", d) else {
        return Slot::Invalid;
    };
    match text.trim().parse::<IpAddr>() {
        Ok(a) => given(a, node, path),
        Err(_) => {
            let hostname = text.chars().any(|c| c.is_ascii_alphabetic()) && !text.contains(':');
            let hint = if hostname {
                " (bigbro does not resolve host names: write the address)"
            } else {
                ""
            };
            d.at(
                node.pos,
                path,
                format!("{} is not an IP address{hint}", quote(text)),
            );
            Slot::Invalid
        }
    }
}

/// One of a fixed set of words.
pub(crate) fn choice<T: Copy>(
    node: &Node,
    path: &KeyPath,
    what: &str,
    options: &[(&str, T)],
    d: &mut Diags,
) -> Slot<T> {
    let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
    let Some(text) = scalar(node, path, what, d) else {
        return Slot::Invalid;
    };
    if let Some((_, v)) = options.iter().find(|(n, _)| *n == text.trim()) {
        return given(*v, node, path);
    }
    let message = match did_you_mean(text, &names) {
        Some(s) => format!("{} is not {what}; did you mean \"{s}\"?", quote(text)),
        None => format!(
            "{} is not {what} (one of: {})",
            quote(text),
            names.join(", ")
        ),
    };
    d.at(node.pos, path, message);
    Slot::Invalid
}

/// An absolute filesystem path.
pub(crate) fn abs_path(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<PathBuf> {
    let Some(text) = scalar(node, path, "an absolute path", d) else {
        return Slot::Invalid;
    };
    if !text.starts_with('/') || text.contains('\0') {
        d.at(
            node.pos,
            path,
            format!(
                "{} is not an absolute path (it must start with /)",
                quote(text)
            ),
        );
        return Slot::Invalid;
    }
    given(PathBuf::from(text), node, path)
}

/// The items of a list with their paths, or `None` (reported) when `node` is not a list.
pub(crate) fn list<'n>(
    node: &'n Node,
    path: &KeyPath,
    what: &str,
    d: &mut Diags,
) -> Option<Vec<(KeyPath, &'n Node)>> {
    match &node.kind {
        Kind::Seq(items) => Some(
            items
                .iter()
                .enumerate()
                .map(|(i, n)| (path.index(i), n))
                .collect(),
        ),
        _ => {
            d.at(
                node.pos,
                path,
                format!("expected {what} (a list), found {}", node.describe()),
            );
            None
        }
    }
}

/// A network interface name as Linux accepts it (1 to 15 bytes, no `/`, `:` or space).
pub(crate) fn interface(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<String> {
    let Some(text) = scalar(node, path, "an interface name", d) else {
        return Slot::Invalid;
    };
    let ok = !text.is_empty()
        && text.len() <= 15
        && text != "."
        && text != ".."
        && !text
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if !ok {
        d.at(
            node.pos,
            path,
            format!(
                "{} is not an interface name (1 to 15 characters, no '/', ':' or spaces)",
                quote(text)
            ),
        );
        return Slot::Invalid;
    }
    given(text.to_string(), node, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml;

    fn node(text: &str) -> Node {
        let doc = yaml::parse(&format!("v: {text}\n")).unwrap().unwrap();
        match doc.kind {
            Kind::Map(mut e) => e.remove(0).1,
            _ => unreachable!(),
        }
    }

    fn errors(d: Diags) -> Vec<String> {
        d.finish().err().map(|e| e.lines()).unwrap_or_default()
    }

    #[test]
    fn integers() {
        let p = KeyPath::root().key("v");
        let mut d = Diags::new("f");
        assert_eq!(
            integer(&node("80"), &p, 1, 65535, &mut d).value(),
            Some(&80)
        );
        assert_eq!(
            integer(&node("\"80\""), &p, 1, 65535, &mut d).value(),
            Some(&80)
        );
        assert_eq!(
            integer(&node("0x10"), &p, 1, 65535, &mut d).value(),
            Some(&16)
        );
        assert_eq!(integer(&node("-3"), &p, -5, 5, &mut d).value(), Some(&-3));
        assert!(d.is_empty());
        integer(&node("70000"), &p, 0, 65535, &mut d);
        integer(&node("8.5"), &p, 0, 65535, &mut d);
        integer(&node("[1]"), &p, 0, 65535, &mut d);
        integer(&node(""), &p, 0, 65535, &mut d);
        integer(
            &node("99999999999999999999999999999999999"),
            &p,
            0,
            65535,
            &mut d,
        );
        assert_eq!(
            errors(d),
            [
                // an empty value is placed at its key's colon
                "f:1:2: v: expected an integer, found nothing",
                "f:1:4: v: 70000 is outside 0..65535",
                "f:1:4: v: \"8.5\" is not an integer",
                "f:1:4: v: expected an integer, found a list",
                "f:1:4: v: \"99999999999999999999999999999999999\" is not an integer",
            ]
        );
    }

    #[test]
    fn seconds_are_exact() {
        let p = KeyPath::root().key("v");
        let mut d = Diags::new("f");
        let s = |t: &str, d: &mut Diags| seconds(&node(t), &p, d).value().copied();
        assert_eq!(s("2", &mut d), Some(Duration::from_secs(2)));
        assert_eq!(s("0.5", &mut d), Some(Duration::from_millis(500)));
        assert_eq!(s(".25", &mut d), Some(Duration::from_millis(250)));
        assert_eq!(s("0.000000001", &mut d), Some(Duration::from_nanos(1)));
        assert!(d.is_empty());
        assert_eq!(s("-1", &mut d), None);
        assert_eq!(s("2s", &mut d), None);
        assert_eq!(s("1e3", &mut d), None);
        assert_eq!(s("90000", &mut d), None);
        assert_eq!(
            errors(d),
            [
                "f:1:4: v: \"-1\" is not a number of seconds (write e.g. 2 or 0.5)",
                "f:1:4: v: \"2s\" is not a number of seconds (write e.g. 2 or 0.5)",
                "f:1:4: v: \"1e3\" is not a number of seconds (write e.g. 2 or 0.5)",
                "f:1:4: v: 90000 is longer than a day (86400 s)",
            ]
        );
    }

    #[test]
    fn addresses_and_choices() {
        let p = KeyPath::root().key("v");
        let mut d = Diags::new("f");
        assert!(ip(&node("10.0.0.1"), &p, &mut d).value().is_some());
        assert!(ip(&node("2001:db8::1"), &p, &mut d).value().is_some());
        ip(&node("10.0.0"), &p, &mut d);
        ip(&node("web1.example.com"), &p, &mut d);
        let opts = [("tcp", 1), ("udp", 2)];
        assert_eq!(
            choice(&node("udp"), &p, "a protocol", &opts, &mut d).value(),
            Some(&2)
        );
        choice(&node("tpc"), &p, "a protocol", &opts, &mut d);
        choice(&node("icmp"), &p, "a protocol", &opts, &mut d);
        boolean(&node("yes"), &p, &mut d);
        assert_eq!(
            errors(d),
            [
                "f:1:4: v: \"10.0.0\" is not an IP address",
                "f:1:4: v: \"web1.example.com\" is not an IP address (bigbro does not resolve host names: write the address)",
                "f:1:4: v: \"tpc\" is not a protocol; did you mean \"tcp\"?",
                "f:1:4: v: \"icmp\" is not a protocol (one of: tcp, udp)",
                "f:1:4: v: \"yes\" is not true or false",
            ]
        );
    }

    #[test]
    fn maps_report_unknown_duplicate_and_misplaced_keys() {
        let doc = yaml::parse("fwmark: 1\nschedular: wrr\nfwmark: 2\nport: 9\n[x]: 1\n")
            .unwrap()
            .unwrap();
        let mut d = Diags::new("f");
        let got = entries(
            &doc,
            &KeyPath::root(),
            "a cluster",
            &["fwmark", "scheduler"],
            &|k: &str| (k == "port").then(|| "port belongs to a node".to_string()),
            &mut d,
        )
        .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            errors(d),
            [
                "f:2:1: schedular: unknown key; did you mean \"scheduler\"?",
                "f:3:1: fwmark: duplicate key (first given at 1:1)",
                "f:4:1: port: unknown key here: port belongs to a node",
                "f:5:1: a key must be a word, found a list",
            ]
        );
    }
}
