//! `bigbro check` as a user runs it: the real binary on the example configurations, the
//! reference example and broken files. Exact stdout, stderr and exit codes.

use crate::config_common;
use std::path::Path;
use std::process::Output;

use config_common::{bigbro, text};

/// Runs `bigbro check -c FILE` on a temporary file holding `content`.
fn check_bytes(content: &[u8]) -> (Output, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, content).unwrap();
    let p = path.display().to_string();
    (bigbro(&["check", "-c", &p]), dir, p)
}

/// Runs `bigbro check` on `config`, which must fail with nothing on stdout; gives its
/// stderr and the file's path.
fn refused(config: &str) -> (String, String) {
    let (out, _dir, path) = check_bytes(config.as_bytes());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    (text(&out.stderr), path)
}

const NO_VIPS: &str = "# (no vips: bigbro marks no packets; mark them with the clusters' fwmarks yourself, as with big_brother)\n\n\
# VIP addresses, as `ip addr` adds them to bigbro's dummy interface bigbro0:\n\
# (no vips with vip_mode: address: bigbro adds no address and creates no interface)\n";

#[test]
fn big_brother_example_plan() {
    let out = bigbro(&["check", "-c", "config/big_brother.yml"]);
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!(
            "\
# bigbro check: config/big_brother.yml is valid (2 clusters, 5 nodes)

# IPVS, as `ipvsadm -S -n` lists it once every cluster is started:
-A -f 7 -s wrr
-a -f 7 -r 10.0.1.11:0 -i -w 1 --tun-type ipip
-a -f 7 -r 10.0.1.12:0 -i -w 1 --tun-type ipip
-a -f 7 -r 10.0.1.13:0 -i -w 1 --tun-type ipip
-A -f 8 -s wlc
-a -f 8 -r 10.0.2.21:0 -i -w 1 --tun-type ipip

# nf_tables, as `nft list ruleset` shows bigbro's tables:
{NO_VIPS}"
        )
    );
}

#[test]
fn cluster_map_example_plan() {
    let out = bigbro(&["check", "-c", "config/cluster_map.yml"]);
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!(
            "\
# bigbro check: config/cluster_map.yml is valid (2 clusters, 4 nodes)

# IPVS, as `ipvsadm -S -n` lists it once every cluster is started:
-A -f 7 -s wlc
-a -f 7 -r 10.0.1.11:0 -i -w 1 --tun-type ipip
-a -f 7 -r 10.0.1.12:0 -i -w 1 --tun-type ipip
-A -f 9 -s rr
-a -f 9 -r 10.0.3.31:0 -i -w 1 --tun-type ipip
-a -f 9 -r 10.0.3.32:0 -i -w 1 --tun-type ipip

# nf_tables, as `nft list ruleset` shows bigbro's tables:
{NO_VIPS}"
        )
    );
}

const BIGBRO_IPVS: &str = "\
-A -f 7 -s wlc
-a -f 7 -r 10.0.1.11:0 -i -w 1 --tun-type ipip
-a -f 7 -r 10.0.1.12:0 -i -w 1 --tun-type ipip
-A -f 10007 -s wlc
-a -f 10007 -r 10.0.1.11:0 -i -w 1 --tun-type ipip
-a -f 10007 -r 10.0.1.12:0 -i -w 1 --tun-type ipip
-A -f 12 -s mh
-a -f 12 -r 10.0.4.41:0 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum
-a -f 12 -r 10.0.4.42:0 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum
-A -f 53 -6 -s rr
-a -f 53 -6 -r [2001:db8:1::1]:0 -g -w 1
-a -f 53 -6 -r [2001:db8:1::2]:0 -g -w 1
";

const BIGBRO_NFT: &str = "\
table ip bigbro {
\tchain prerouting {
\t\ttype filter hook prerouting priority mangle; policy accept;
\t\tip daddr 192.0.2.10 tcp dport 443 meta mark set 0x00000007
\t\tip daddr 192.0.2.10 tcp dport 80 meta mark set 0x00000007
\t\tip daddr 192.0.2.20 udp dport 8000-8099 iifname \"eth0\" meta mark set 0x0000000c
\t}
}
table ip6 bigbro {
\tchain prerouting {
\t\ttype filter hook prerouting priority mangle; policy accept;
\t\tip6 daddr 2001:db8::53 udp dport 53 meta mark set 0x00000035
\t\tip6 daddr 2001:db8::53 tcp dport 53 meta mark set 0x00000035
\t}
}
";

const BIGBRO_ADDRS: &str = "\
ip addr add 192.0.2.10/32 dev bigbro0
ip addr add 192.0.2.20/32 dev bigbro0
ip addr add 2001:db8::53/128 dev bigbro0 nodad
";

#[test]
fn bigbro_example_plan() {
    let out = bigbro(&["check", "-c", "config/bigbro.yml"]);
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!(
            "\
# bigbro check: config/bigbro.yml is valid (3 clusters, 6 nodes)

# IPVS, as `ipvsadm -S -n` lists it once every cluster is started:
{BIGBRO_IPVS}
# nf_tables, as `nft list ruleset` shows bigbro's tables:
{BIGBRO_NFT}
# VIP addresses, as `ip addr` adds them to bigbro's dummy interface bigbro0:
{BIGBRO_ADDRS}"
        )
    );
}

#[test]
fn ipvs_nft_and_addrs_alone_for_piping() {
    let out = bigbro(&["check", "--ipvs", "-c", "config/bigbro.yml"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), BIGBRO_IPVS);
    let out = bigbro(&["check", "--nft", "--config", "config/bigbro.yml"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), BIGBRO_NFT);
    let out = bigbro(&["check", "--addrs", "-c", "config/bigbro.yml"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), BIGBRO_ADDRS);
    // asking for two parts alone makes no sense
    for two in [
        ["--nft", "--ipvs"],
        ["--addrs", "--ipvs"],
        ["--nft", "--addrs"],
    ] {
        let out = bigbro(&["check", two[0], two[1], "-c", "config/bigbro.yml"]);
        assert_eq!(out.status.code(), Some(2), "{two:?}");
    }
}

#[test]
fn every_example_config_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yml") {
            continue;
        }
        let out = bigbro(&["check", "-c", path.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            path.display(),
            text(&out.stderr)
        );
        seen += 1;
    }
    assert!(seen >= 3, "expected an example per spelling, found {seen}");
}

#[test]
fn the_reference_example_plan() {
    let out = bigbro(&["check", "-c", "tests/fixtures/big_brother_reference.yml"]);
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!(
            "\
# bigbro check: tests/fixtures/big_brother_reference.yml is valid (1 cluster, 1 node)

# IPVS, as `ipvsadm -S -n` lists it once every cluster is started:
-A -f 1 -s wrr
-a -f 1 -r 127.0.0.1:0 -i -w 1 --tun-type ipip

# nf_tables, as `nft list ruleset` shows bigbro's tables:
{NO_VIPS}"
        )
    );
}

#[test]
fn every_error_on_stderr_then_a_count() {
    let config = "\
_big_brother:
  schedular: wrr
clusters:
  - cluster_name: web
    fwmark: 0
    scheduler: wlc
    nodes:
      - {address: 10.0.0, port: 9001, path: /web/status}
  - cluster_name: web
    fwmark: 8
    nodes:
      - {address: 10.0.0.1, port: 70000, path: status}
";
    let (stderr, path) = refused(config);
    assert_eq!(
        stderr,
        format!(
            "\
{path}:2:3: _big_brother.schedular: unknown key; did you mean \"scheduler\"?
{path}:5:13: clusters[0].fwmark: 0 is not a valid fwmark (IPVS fwmark services are numbered from 1)
{path}:8:19: clusters[0].nodes[0].address: \"10.0.0\" is not an IP address
{path}:9:5: clusters[1]: missing key scheduler (an IPVS scheduler such as wrr or wlc; set it here or in _big_brother)
{path}:9:19: clusters[1].cluster_name: duplicate cluster name \"web\" (first at 4:19, clusters[0].cluster_name)
{path}:12:35: clusters[1].nodes[0].port: 70000 is outside 1..65535
{path}:12:48: clusters[1].nodes[0].path: \"status\" does not start with /
bigbro check: {path} is not valid: 7 errors
"
        )
    );
}

#[test]
fn a_missing_file_says_so_like_big_brother() {
    let out = bigbro(&["check", "-c", "/nonexistent/bigbro.yml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Could not find /nonexistent/bigbro.yml. Specify correct location with -c file\n\
         bigbro check: /nonexistent/bigbro.yml is not valid: 1 error\n"
    );
}

#[test]
fn broken_files_fail_cleanly() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), ": the file is empty;"),
        (
            "syntax",
            b"clusters: [\n".to_vec(),
            ":1:11: invalid YAML: unclosed bracket",
        ),
        (
            "binary",
            (0u8..=255).cycle().take(3000).collect(),
            ": not UTF-8 text (byte 0x80)",
        ),
        ("nul", b"clusters:\0\n".to_vec(), "invalid YAML"),
        ("deep", "[".repeat(100_000).into_bytes(), "invalid YAML"),
        ("list", b"- 1\n".to_vec(), "expected a map at the top level"),
    ];
    for (name, bytes, expect) in cases {
        let (out, _dir, _) = check_bytes(&bytes);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(expect), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert_eq!(text(&out.stdout), "", "{name}");
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().display().to_string();
    let out = bigbro(&["check", "-c", &p]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!("{p}: is a directory, not a configuration file\nbigbro check: {p} is not valid: 1 error\n")
    );
}

/// What the runtime would refuse fails the check, naming file, line, column and key: a
/// health target the prober refuses (the daemon would quietly hold the node at weight 0)
/// and a vip interface the mark-rule writer refuses.
#[test]
fn health_targets_the_prober_refuses_fail_the_check() {
    let config = "\
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wlc
    nodes:
      - {address: 10.0.0.1, port: 9001, path: /caf\u{e9}}
      - {address: 10.0.0.2, port: 9001, path: \"/a\\tb\"}
      - {address: 10.0.0.3, port: 0, path: /status}
  - cluster_name: api
    fwmark: 8
    scheduler: rr
    health: {kind: http}
    vips:
      - {address: 192.0.2.1, port: 80, interface: \"eth*\"}
    nodes:
      - {address: 10.0.1.1, port: 80, path: status}
";
    let (stderr, path) = refused(config);
    assert_eq!(
        stderr,
        format!(
            "\
{path}:6:47: clusters[0].nodes[0].path: \"/caf\u{e9}\" contains '\u{e9}', which a probe cannot send (a request path is visible ASCII); percent-encode it: %C3%A9
{path}:7:47: clusters[0].nodes[1].path: \"/a\\tb\" contains spaces or control characters
{path}:8:35: clusters[0].nodes[2].port: 0 is outside 1..65535
{path}:14:51: clusters[1].vips[0].interface: interface name \"eth*\" contains '*', which bigbro does not accept in an interface name
{path}:16:45: clusters[1].nodes[0].path: \"status\" does not start with /
bigbro check: {path} is not valid: 5 errors
"
        )
    );
}
