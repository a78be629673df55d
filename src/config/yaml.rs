//! The configuration file as a positioned YAML tree: every scalar, list and map knows the
//! line and column it was written at, so every later error can point at it.
//!
//! Built from serde-saphyr's event parser (`serde_saphyr::granit_parser`) rather than
//! through serde, because validation needs what serde hides: the position of each key
//! and value, the raw text of each scalar, and every error at once instead of the first.
//! Aliases are expanded and `<<` merge keys applied here; nothing is interpreted (a
//! scalar stays text until the reader decides what its key needs).
//!
//! It must never panic or exhaust the stack on any input: nesting is capped at
//! [`MAX_DEPTH`], and what aliases expand to at [`MAX_ALIAS_VALUES`] values. Values written
//! out in the text are not capped: each costs bytes of the file, so the tree grows with the
//! file (a 4,000-cluster, 40,000-node configuration is 2.8 MB and about 500,000 values),
//! while an alias bomb grows exponentially with it, which is what the cap is for.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Options, Parser, ScalarStyle, Span};

use super::diag::Pos;

/// Deepest nesting accepted (the parser's own limits are set to it too). Real
/// configurations are about 6 levels deep.
pub const MAX_DEPTH: usize = 64;
/// Most values all uses of aliases may add to a document together (each use counts the
/// whole copy it expands to): the guard against alias bombs. Generous for honest
/// anchors (a shared `health:` or node list used by thousands of clusters).
pub const MAX_ALIAS_VALUES: usize = 1_000_000;

/// One YAML node and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    /// Entries in document order (merge-key entries last); duplicates are kept so the
    /// reader can report them.
    Map(Vec<(Node, Node)>),
}

/// A scalar's text after YAML escape processing, and whether it was plain (unquoted).
#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    pub text: String,
    pub plain: bool,
}

impl Node {
    /// A plain `~`, `null` or empty value.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar(s) if s.plain
            && matches!(s.text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The scalar's text, if this is a non-null scalar.
    pub fn text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s) if !self.is_null() => Some(&s.text),
            _ => None,
        }
    }

    /// What this node is, for messages: `a map`, `a list`, `nothing` or the quoted text.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Map(_) => "a map".to_string(),
            Kind::Seq(_) => "a list".to_string(),
            Kind::Scalar(_) if self.is_null() => "nothing".to_string(),
            Kind::Scalar(s) => super::diag::quote(&s.text),
        }
    }
}

/// Why a document could not be turned into a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

fn err(pos: Pos, message: impl Into<String>) -> YamlError {
    YamlError {
        pos,
        message: message.into(),
    }
}

struct Frame {
    pos: Pos,
    anchor: usize,
    /// Nodes inside this collection so far (for alias budgets).
    size: usize,
    /// Deepest child so far.
    height: usize,
    kind: FrameKind,
}

enum FrameKind {
    Seq(Vec<Node>),
    Map {
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

/// A finished node with its size (node count) and height, as the builder tracks them.
struct Built {
    node: Node,
    size: usize,
    height: usize,
}

/// Parses one YAML document into a tree. `Ok(None)` for a document with no content
/// (empty file, only comments). Stops at the first syntax error; tag errors are collected
/// and returned together.
pub fn parse(text: &str) -> Result<Option<Node>, Vec<YamlError>> {
    let mut options = Options::default();
    options.emit_comments = false;
    options.block_nesting_limit = MAX_DEPTH;
    options.flow_nesting_limit = MAX_DEPTH;
    let mut parser = Parser::new_from_str_with_options(text, options);

    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, (Node, usize, usize)> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    let mut expanded = 0usize;
    let mut errors: Vec<YamlError> = Vec::new();

    while let Some(next) = parser.next_event() {
        let (event, span) = match next {
            Ok(ev) => ev,
            Err(e) => {
                let pos = Pos {
                    line: e.marker().line(),
                    column: e.marker().col() + 1,
                };
                errors.push(err(pos, format!("invalid YAML: {}", e.info())));
                return Err(errors);
            }
        };
        let pos = pos_of(&span);
        // The finished node, and how many values an alias use adds to the document (the
        // whole copy; 0 for anything written out).
        let finished: Option<(Built, usize)> = match event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    errors.push(err(
                        pos,
                        "a second YAML document: bigbro reads exactly one (remove this `---` and what follows, or merge them)",
                    ));
                    return Err(errors);
                }
                None
            }
            Event::Scalar(value, style, anchor, tag) => {
                if let Some(tag) = tag.as_deref() {
                    check_tag(tag, false, pos, &mut errors);
                }
                let node = Node {
                    pos,
                    kind: Kind::Scalar(Scalar {
                        text: value.into_owned(),
                        plain: style == ScalarStyle::Plain && tag.is_none(),
                    }),
                };
                let built = Built {
                    node,
                    size: 1,
                    height: 1,
                };
                if anchor != 0 {
                    anchors.insert(anchor, (built.node.clone(), 1, 1));
                }
                Some((built, 0))
            }
            Event::SequenceStart(_, anchor, ref tag) | Event::MappingStart(_, anchor, ref tag) => {
                if let Some(tag) = tag.as_deref() {
                    check_tag(tag, true, pos, &mut errors);
                }
                let kind = if matches!(event, Event::SequenceStart(..)) {
                    FrameKind::Seq(Vec::new())
                } else {
                    FrameKind::Map {
                        entries: Vec::new(),
                        key: None,
                    }
                };
                stack.push(Frame {
                    pos,
                    anchor,
                    size: 1,
                    height: 1,
                    kind,
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = stack.pop() else {
                    return Err(vec![err(pos, "invalid YAML: unbalanced collection end")]);
                };
                let kind = match frame.kind {
                    FrameKind::Seq(items) => Kind::Seq(items),
                    FrameKind::Map { entries, .. } => match apply_merge_keys(entries) {
                        Ok(entries) => Kind::Map(entries),
                        Err(e) => {
                            errors.push(e);
                            return Err(errors);
                        }
                    },
                };
                let node = Node {
                    pos: frame.pos,
                    kind,
                };
                if frame.anchor != 0 {
                    anchors.insert(frame.anchor, (node.clone(), frame.size, frame.height));
                }
                Some((
                    Built {
                        node,
                        size: frame.size,
                        height: frame.height,
                    },
                    0,
                ))
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some((node, size, height)) => {
                    let mut node = node.clone();
                    node.pos = pos;
                    Some((
                        Built {
                            node,
                            size: *size,
                            height: *height,
                        },
                        *size,
                    ))
                }
                None => {
                    errors.push(err(
                        pos,
                        "this alias refers to a collection that contains it (recursive aliases are not allowed)",
                    ));
                    return Err(errors);
                }
            },
            Event::UnresolvedAlias(name) => {
                errors.push(err(pos, format!("unknown alias *{name}")));
                return Err(errors);
            }
            _ => None,
        };
        let Some((built, fresh)) = finished else {
            continue;
        };

        expanded = expanded.saturating_add(fresh);
        if expanded > MAX_ALIAS_VALUES {
            errors.push(err(
                pos,
                format!("aliases expand to more than {MAX_ALIAS_VALUES} values (each use of an alias counts the whole copy it stands for); an alias bomb? write the values out or use fewer aliases"),
            ));
            return Err(errors);
        }
        match stack.last_mut() {
            None => root = Some(built.node),
            Some(parent) => {
                parent.size = parent.size.saturating_add(built.size);
                parent.height = parent.height.max(built.height + 1);
                if parent.height > MAX_DEPTH {
                    errors.push(err(
                        built.node.pos,
                        format!("nesting deeper than {MAX_DEPTH} levels"),
                    ));
                    return Err(errors);
                }
                match &mut parent.kind {
                    FrameKind::Seq(items) => items.push(built.node),
                    FrameKind::Map { entries, key } => match key.take() {
                        None => *key = Some(built.node),
                        Some(k) => entries.push((k, built.node)),
                    },
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(root)
}

/// Core-schema tags (`!!str`, `!!int`, `!!map`...) are accepted and change nothing:
/// bigbro interprets every value by its key. Any other tag is an error.
fn check_tag(
    tag: &serde_saphyr::granit_parser::Tag,
    collection: bool,
    pos: Pos,
    errors: &mut Vec<YamlError>,
) {
    let ok_scalar = ["str", "int", "float", "bool", "null"];
    let ok_collection = ["map", "seq"];
    let fine = tag.is_yaml_core_schema()
        && if collection {
            ok_collection.contains(&tag.suffix())
        } else {
            ok_scalar.contains(&tag.suffix())
        };
    if !fine {
        errors.push(err(
            pos,
            format!(
                "unsupported YAML tag {}{}: bigbro reads plain YAML values",
                tag.original_handle(),
                tag.suffix()
            ),
        ));
    }
}

fn is_merge_key(node: &Node) -> bool {
    matches!(&node.kind, Kind::Scalar(s) if s.plain && s.text == "<<")
}

fn key_text(node: &Node) -> Option<&str> {
    match &node.kind {
        Kind::Scalar(s) => Some(&s.text),
        _ => None,
    }
}

/// Applies YAML merge keys (`<<: *defaults` or `<<: [*a, *b]`): keys written in the map
/// win, then earlier merged maps win over later ones.
fn apply_merge_keys(entries: Vec<(Node, Node)>) -> Result<Vec<(Node, Node)>, YamlError> {
    if !entries.iter().any(|(k, _)| is_merge_key(k)) {
        return Ok(entries);
    }
    let mut own = Vec::new();
    let mut merges = Vec::new();
    for (k, v) in entries {
        if is_merge_key(&k) {
            merges.push(v);
        } else {
            own.push((k, v));
        }
    }
    let mut seen: Vec<String> = own
        .iter()
        .filter_map(|(k, _)| key_text(k).map(str::to_string))
        .collect();
    for value in merges {
        let sources: Vec<Node> = match value.kind {
            Kind::Map(_) => vec![value],
            Kind::Seq(items) if items.iter().all(|i| matches!(i.kind, Kind::Map(_))) => items,
            _ => {
                return Err(err(
                    value.pos,
                    "a merge key `<<` needs a map or a list of maps",
                ))
            }
        };
        for source in sources {
            if let Kind::Map(source_entries) = source.kind {
                for (k, v) in source_entries {
                    let Some(text) = key_text(&k) else { continue };
                    if !seen.iter().any(|s| s == text) {
                        seen.push(text.to_string());
                        own.push((k, v));
                    }
                }
            }
        }
    }
    Ok(own)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: usize, column: usize) -> Pos {
        Pos { line, column }
    }

    fn map(node: &Node) -> &[(Node, Node)] {
        match &node.kind {
            Kind::Map(e) => e,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn keys_and_values_know_their_positions() {
        let doc = parse("a:\n  b: 10.0.0\n  c: [x, 'y']\n").unwrap().unwrap();
        let a = &map(&doc)[0];
        assert_eq!(a.0.pos, p(1, 1));
        let inner = map(&a.1);
        assert_eq!(inner[0].0.pos, p(2, 3));
        assert_eq!(inner[0].1.pos, p(2, 6));
        assert_eq!(inner[0].1.text(), Some("10.0.0"));
        match &inner[1].1.kind {
            Kind::Seq(items) => {
                assert_eq!(items[1].pos, p(3, 10));
                assert_eq!(
                    items[1].kind,
                    Kind::Scalar(Scalar {
                        text: "y".into(),
                        plain: false
                    })
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn empty_values_are_null_but_quoted_empty_is_not() {
        let doc = parse("a:\nb: ''\nc: ~\n").unwrap().unwrap();
        let e = map(&doc);
        assert!(e[0].1.is_null());
        assert!(!e[1].1.is_null());
        assert!(e[2].1.is_null());
        assert_eq!(e[0].1.describe(), "nothing");
    }

    #[test]
    fn empty_documents_have_no_root() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# just a comment\n").unwrap(), None);
        assert_eq!(parse("---\n").unwrap().map(|n| n.is_null()), Some(true));
    }

    #[test]
    fn aliases_expand_and_merge_keys_apply() {
        let doc = parse("d: &d {x: 1, y: 2}\ne:\n  <<: *d\n  y: 3\nf: *d\n")
            .unwrap()
            .unwrap();
        let e = map(&doc);
        let merged = map(&e[1].1);
        let texts: Vec<_> = merged
            .iter()
            .map(|(k, v)| (k.text().unwrap(), v.text().unwrap()))
            .collect();
        assert_eq!(texts, [("y", "3"), ("x", "1")]);
        // the alias takes the position where it is used
        assert_eq!(e[2].1.pos, p(5, 4));
        assert_eq!(map(&e[2].1).len(), 2);
    }

    #[test]
    fn syntax_errors_carry_their_position() {
        let e = parse("a: [1, 2\n").unwrap_err();
        assert_eq!(e[0].pos, p(1, 4));
        assert_eq!(e[0].message, "invalid YAML: unclosed bracket '['");
        let e = parse("a:\n\t- b\n").unwrap_err();
        assert_eq!(e[0].pos.line, 2);
        let e = parse("a: *nope\n").unwrap_err();
        assert!(e[0].message.contains("unknown anchor"), "{e:?}");
    }

    #[test]
    fn second_documents_and_odd_tags_are_refused() {
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(e[0].pos, p(2, 1));
        assert!(e[0].message.starts_with("a second YAML document"));
        let e = parse("a: !custom x\nb: !!str 80\n").unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].message,
            "unsupported YAML tag !custom: bigbro reads plain YAML values"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(10_000);
        let e = parse(&deep).unwrap_err();
        assert!(e[0].message.starts_with("invalid YAML"), "{e:?}");
        let mut block = String::new();
        for i in 0..200 {
            block.push_str(&" ".repeat(i));
            block.push_str("k:\n");
        }
        assert!(parse(&block).is_err());
        // aliases cannot be used to nest past the limit either
        let mut doc = String::from("a0: &a0 [x]\n");
        for i in 1..100 {
            doc.push_str(&format!("a{i}: &a{i} [*a{}]\n", i - 1));
        }
        let e = parse(&doc).unwrap_err();
        assert!(e[0].message.starts_with("nesting deeper than"), "{e:?}");
    }

    #[test]
    fn alias_bombs_are_stopped() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            let items = [prev.as_str(); 10].join(", ");
            doc.push_str(&format!("a{i}: &a{i} [{items}]\n"));
        }
        let e = parse(&doc).unwrap_err();
        assert!(
            e[0].message.starts_with("aliases expand to more than"),
            "{e:?}"
        );
        // Line 6, at the use of *a4 that takes the copies past the bound: each line
        // multiplies by ten (10^11 values in 10 lines if nothing stopped it).
        assert_eq!(e[0].pos.line, 6, "{e:?}");
    }

    #[test]
    fn aliases_are_bounded_by_what_they_expand_to() {
        let list = format!("[{}]", ["x"; 999].join(", "));
        // 1,000 values (the list and its items) used 999 times: under the bound.
        let uses = |n: usize| format!("a: &a {list}\nb: [{}]\n", ["*a"; 1].repeat(n).join(", "));
        assert!(parse(&uses(MAX_ALIAS_VALUES / 1000)).is_ok());
        let e = parse(&uses(MAX_ALIAS_VALUES / 1000 + 1)).unwrap_err();
        assert!(e[0].message.starts_with("aliases expand to"), "{e:?}");
    }

    #[test]
    fn values_written_out_are_not_capped() {
        // More than the alias budget: honest size is bounded by the file alone.
        let wide = format!("[{}]", "x, ".repeat(MAX_ALIAS_VALUES + 1));
        let Some(Node {
            kind: Kind::Seq(items),
            ..
        }) = parse(&wide).unwrap()
        else {
            panic!("a list");
        };
        assert_eq!(items.len(), MAX_ALIAS_VALUES + 1);
    }

    #[test]
    fn recursive_alias_is_refused() {
        let e = parse("a: &a [*a]\n").unwrap_err();
        assert!(e[0].message.contains("recursive"), "{e:?}");
    }
}
