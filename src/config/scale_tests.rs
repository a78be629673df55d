//! The loader at honest size: a configuration of 4,000 clusters of 10 nodes each (40,000
//! real servers, about 2.8 MB of block YAML without a single alias) loads whole, so the
//! guard against alias bombs in `yaml.rs` caps only what aliases expand to.

use super::parse;

/// `clusters` clusters of `nodes` nodes each, written out in block style as an operator
/// (or a generator) would, without aliases.
pub(crate) fn written_out(clusters: usize, nodes: usize) -> String {
    let mut text = String::from("clusters:\n");
    for c in 0..clusters {
        text.push_str(&format!(
            "  - cluster_name: cluster{c}\n    fwmark: {}\n    scheduler: wrr\n    nodes:\n",
            c + 1
        ));
        for n in 0..nodes {
            let host = c * nodes + n;
            text.push_str(&format!(
                "      - address: 10.{}.{}.{}\n        port: 8080\n        path: /health/status\n",
                host >> 16,
                (host >> 8) & 0xff,
                host & 0xff
            ));
        }
    }
    text
}

#[test]
fn four_thousand_clusters_of_ten_nodes_load() {
    let text = written_out(4_000, 10);
    assert!(text.len() > 2_500_000, "{} bytes", text.len());
    let m = parse("big.yml", &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.clusters.len(), 4_000);
    let nodes: usize = m.clusters.iter().map(|c| c.nodes.len()).sum();
    assert_eq!(nodes, 40_000);
    assert_eq!(
        m.clusters[3_999].nodes[9].address.to_string(),
        "10.0.156.63",
        "the last node, 39,999 = 0x9c3f"
    );
}
