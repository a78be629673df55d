//! Recognises which spelling a configuration uses and splits it into its sections:
//!
//! * big_brother's gem format: a `clusters:` list, optional `_big_brother:` defaults;
//! * the older format from the big_brother talk: a top-level map from cluster name to
//!   cluster (`webapp: {checkInterval: 2000, ...}`), optionally with `_big_brother:`;
//! * bigbro's own keys, accepted in either, plus the top-level `bigbro:` section.
//!
//! A file with a top-level `clusters:` key is the gem format; any other top-level map is
//! the cluster map. This file only routes sections to their readers.

use super::diag::{Diags, KeyPath, Pos};
use super::model::Spelling;
use super::raw::{self, ClusterForm, RawCluster, RawSettings};
use super::read;
use super::settings::{self, RawGlobal};
use super::suggest::did_you_mean;
use super::yaml::{Kind, Node};

/// Top-level keys of the gem format.
pub const TOP_KEYS: &[&str] = &["clusters", "_big_brother", "bigbro"];

const NO_CLUSTERS: &str = "no clusters: write a `clusters:` list (big_brother's format) or map each cluster's name to its settings";

/// A configuration split into its sections, as written.
pub(crate) struct Document {
    pub spelling: Spelling,
    pub defaults: RawSettings,
    pub clusters: Vec<RawCluster>,
    pub global: RawGlobal,
}

/// Splits the document; `None` when its shape is unusable (already reported).
pub(crate) fn read_document(root: Option<&Node>, d: &mut Diags) -> Option<Document> {
    let Some(root) = root.filter(|r| !r.is_null()) else {
        d.file(None, format!("the file is empty; {NO_CLUSTERS}"));
        return None;
    };
    let Kind::Map(pairs) = &root.kind else {
        d.at(
            root.pos,
            &KeyPath::root(),
            format!(
                "expected a map at the top level, found {}; {NO_CLUSTERS}",
                root.describe()
            ),
        );
        return None;
    };
    let has_clusters_list = pairs.iter().any(|(k, _)| k.text() == Some("clusters"));
    let mut doc = Document {
        spelling: if has_clusters_list {
            Spelling::BigBrother
        } else {
            Spelling::ClusterMap
        },
        defaults: RawSettings::default(),
        clusters: Vec::new(),
        global: RawGlobal::default(),
    };
    if has_clusters_list {
        read_gem(root, &mut doc, d);
    } else {
        read_cluster_map(pairs, &mut doc, d);
        if doc.clusters.is_empty() && d.is_empty() {
            d.at(root.pos, &KeyPath::root(), NO_CLUSTERS);
        }
    }
    Some(doc)
}

fn read_gem(root: &Node, doc: &mut Document, d: &mut Diags) {
    let top = KeyPath::root();
    let hint = |key: &str| {
        if raw::SETTING_KEYS.contains(&key) || raw::IDENTITY_KEYS.contains(&key) {
            Some(format!(
                "{key} is a cluster key (set it on a cluster, or in _big_brother for all)"
            ))
        } else if settings::GLOBAL_KEYS.contains(&key) {
            Some(format!("{key} belongs in the bigbro: section"))
        } else {
            None
        }
    };
    let Some(entries) = read::entries(root, &top, "the configuration", TOP_KEYS, &hint, d) else {
        return;
    };
    for e in &entries {
        match e.key {
            "_big_brother" => doc.defaults = raw::defaults(e.value, &e.path, d),
            "bigbro" => doc.global = settings::read(e.value, &e.path, d),
            _ => {
                if let Some(items) = read::list(e.value, &e.path, "a list of clusters", d) {
                    doc.clusters = items
                        .into_iter()
                        .filter_map(|(p, n)| raw::cluster(n, &p, ClusterForm::ListEntry, d))
                        .collect();
                }
            }
        }
    }
}

fn read_cluster_map(pairs: &[(Node, Node)], doc: &mut Document, d: &mut Diags) {
    let top = KeyPath::root();
    let mut seen: Vec<(String, Pos)> = Vec::new();
    for (k, v) in pairs {
        let Some(name) = k.text() else {
            d.at(
                k.pos,
                &top,
                format!("a cluster name must be a word, found {}", k.describe()),
            );
            continue;
        };
        let path = top.key(name);
        if let Some((_, first)) = seen.iter().find(|(n, _)| n == name) {
            d.at(
                k.pos,
                &path,
                format!("duplicate key (first given at {first})"),
            );
            continue;
        }
        seen.push((name.to_string(), k.pos));
        match name {
            "_big_brother" => doc.defaults = raw::defaults(v, &path, d),
            "bigbro" => doc.global = settings::read(v, &path, d),
            _ => {
                let looks_like_cluster = matches!(&v.kind, Kind::Map(e) if e.iter().any(|(k, _)| k.text() == Some("fwmark")));
                if let (Some(s), false) = (did_you_mean(name, TOP_KEYS), looks_like_cluster) {
                    d.at(k.pos, &path, format!("unknown key; did you mean \"{s}\"?"));
                    continue;
                }
                if let Some(problem) = raw::name_problem(name) {
                    d.at(k.pos, &path, problem);
                    continue;
                }
                if let Some(mut c) = raw::cluster(v, &path, ClusterForm::MapValue, d) {
                    c.name = read::Slot::Given(read::At {
                        value: name.to_string(),
                        pos: k.pos,
                        path: path.clone(),
                    });
                    doc.clusters.push(c);
                }
            }
        }
    }
}
