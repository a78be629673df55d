//! bigbro's nf_tables rules against the host kernel: every test runs in a network namespace
//! of its own (a thread that calls `unshare(CLONE_NEWNET)` before building its tokio
//! runtime; the namespace is per thread and `nft` children inherit it), applies rules with
//! `bigbro::nft::Nft` and checks the result with the real `nft` (package nftables, see
//! tests/setup.sh): `nft -j list table …` parsed rule by rule, independently of bigbro's own
//! decoder. Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and nf_tables, which the host has.

use crate::netns;

use std::net::IpAddr;
use std::process::Command;

use bigbro::nft::{render, Family, L4Proto, MarkRule, Nft, NftError, PortRange};
use netns::in_netns;
use serde_json::Value;

/// Runs `nft ARGS` in the calling thread's namespace and returns its stdout.
fn nft(args: &[&str]) -> String {
    let out = Command::new("nft")
        .args(args)
        .output()
        .expect("cannot run nft: install nftables (tests/setup.sh)");
    assert!(
        out.status.success(),
        "nft {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Like [`nft`], for input on stdin (`nft -f -`).
fn nft_script(script: &str) {
    use std::io::Write;
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cannot run nft: install nftables (tests/setup.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft -f failed on\n{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rule(daddr: &str, proto: L4Proto, ports: (u16, u16), iif: Option<&str>, mark: u32) -> MarkRule {
    MarkRule {
        daddr: daddr.parse().unwrap(),
        proto,
        ports: PortRange {
            first: ports.0,
            last: ports.1,
        },
        iifname: iif.map(String::from),
        mark,
    }
}

fn mixed_rules() -> Vec<MarkRule> {
    vec![
        rule("10.0.0.100", L4Proto::Tcp, (80, 80), Some("eth0"), 7),
        rule("10.0.0.100", L4Proto::Udp, (8000, 8080), None, 7),
        rule("192.0.2.10", L4Proto::Sctp, (443, 443), None, 0xffff_ffff),
        rule("2001:db8::1", L4Proto::Tcp, (443, 443), None, 8),
        rule(
            "2001:db8::2",
            L4Proto::Udp,
            (1, 65535),
            Some("veth-long-name1"),
            9,
        ),
    ]
}

/// What `nft -j list table FAMILY bigbro` shows, or `None` if there is no such table.
struct Listed {
    chains: Vec<Value>,
    rules: Vec<MarkRule>,
    handles: Vec<u64>,
}

fn list(family: Family) -> Option<Listed> {
    let out = Command::new("nft")
        .args(["-j", "list", "table", family.name(), "bigbro"])
        .output()
        .expect("cannot run nft: install nftables (tests/setup.sh)");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("No such file or directory"),
            "nft failed: {err}"
        );
        return None;
    }
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut listed = Listed {
        chains: Vec::new(),
        rules: Vec::new(),
        handles: Vec::new(),
    };
    for item in json["nftables"].as_array().unwrap() {
        if let Some(chain) = item.get("chain") {
            listed.chains.push(chain.clone());
        }
        if let Some(r) = item.get("rule") {
            assert_eq!(r["chain"], "prerouting", "{r}");
            listed.handles.push(r["handle"].as_u64().unwrap());
            listed.rules.push(rule_of_json(family, &r["expr"]));
        }
    }
    Some(listed)
}

/// Reads one rule of `nft -j` output as a MarkRule; panics on anything else.
fn rule_of_json(family: Family, expr: &Value) -> MarkRule {
    let (mut daddr, mut proto, mut ports, mut iifname, mut mark) = (None, None, None, None, None);
    for e in expr.as_array().unwrap() {
        if let Some(m) = e.get("match") {
            assert_eq!(m["op"], "==", "{e}");
            let left = &m["left"];
            let right = &m["right"];
            if let Some(p) = left.get("payload") {
                match p["field"].as_str().unwrap() {
                    "daddr" => {
                        assert_eq!(p["protocol"], family.name(), "{e}");
                        daddr = Some(right.as_str().unwrap().parse::<IpAddr>().unwrap());
                    }
                    "dport" => {
                        proto = Some(match p["protocol"].as_str().unwrap() {
                            "tcp" => L4Proto::Tcp,
                            "udp" => L4Proto::Udp,
                            "sctp" => L4Proto::Sctp,
                            other => panic!("protocol {other}"),
                        });
                        ports = Some(match right.get("range") {
                            Some(r) => PortRange {
                                first: r[0].as_u64().unwrap() as u16,
                                last: r[1].as_u64().unwrap() as u16,
                            },
                            None => PortRange::single(right.as_u64().unwrap() as u16),
                        });
                    }
                    other => panic!("field {other} in {e}"),
                }
            } else if left["meta"]["key"] == "iifname" {
                iifname = Some(right.as_str().unwrap().to_string());
            } else {
                panic!("unexpected match {e}");
            }
        } else if let Some(m) = e.get("mangle") {
            assert_eq!(m["key"]["meta"]["key"], "mark", "{e}");
            mark = Some(m["value"].as_u64().unwrap() as u32);
        } else {
            panic!("unexpected statement {e}");
        }
    }
    MarkRule {
        daddr: daddr.expect("daddr"),
        proto: proto.expect("dport"),
        ports: ports.expect("dport"),
        iifname,
        mark: mark.expect("meta mark set"),
    }
}

fn of_family(rules: &[MarkRule], family: Family) -> Vec<MarkRule> {
    rules
        .iter()
        .filter(|r| r.family() == family)
        .cloned()
        .collect()
}

/// Checks with nft that bigbro's tables hold exactly `rules`, in order, with bigbro's
/// chain, and that `nft list` prints them as `render` does.
fn assert_installed(rules: &[MarkRule]) {
    for family in Family::ALL {
        let want = of_family(rules, family);
        let Some(listed) = list(family) else {
            assert!(want.is_empty(), "table {family} bigbro is missing");
            continue;
        };
        assert!(
            !want.is_empty(),
            "table {family} bigbro exists but has no wanted rule"
        );
        assert_eq!(listed.chains.len(), 1, "{:?}", listed.chains);
        let c = &listed.chains[0];
        assert_eq!(
            (&c["name"], &c["type"], &c["hook"], &c["prio"], &c["policy"]),
            (
                &Value::from("prerouting"),
                &Value::from("filter"),
                &Value::from("prerouting"),
                &Value::from(-150),
                &Value::from("accept")
            )
        );
        assert_eq!(listed.rules, want, "rules of table {family} bigbro");
        assert_eq!(
            nft(&["list", "table", family.name(), "bigbro"]),
            render(&want),
            "nft list prints what render() renders"
        );
    }
}

/// A foreign ruleset: an `ip filter` table with rules, and tables named bigbro in the
/// families bigbro does not use.
const FOREIGN: &str = "
table ip filter {
	chain input {
		type filter hook input priority filter; policy accept;
		tcp dport 22 accept
		ip saddr 198.51.100.0/24 counter drop
	}
}
table inet bigbro {
	chain prerouting {
		type filter hook prerouting priority mangle; policy accept;
		tcp dport 80 meta mark set 0x00000063
	}
}
table ip6 mangle {
	chain prerouting {
		type filter hook prerouting priority mangle; policy accept;
		ip6 daddr 2001:db8::1 tcp dport 443 meta mark set 0x00000008
	}
}
";

fn foreign_listing() -> String {
    [("ip", "filter"), ("inet", "bigbro"), ("ip6", "mangle")]
        .iter()
        .map(|(f, t)| nft(&["list", "table", f, t]))
        .collect()
}

#[test]
fn apply_installs_exactly_the_rules_nft_lists() {
    in_netns(|| async {
        let nft_ = Nft::connect().unwrap();
        let rules = mixed_rules();
        nft_.apply(&rules).await.unwrap();
        assert_installed(&rules);
    });
}

#[test]
fn applying_twice_gives_the_same_ruleset() {
    in_netns(|| async {
        let nft_ = Nft::connect().unwrap();
        let rules = mixed_rules();
        nft_.apply(&rules).await.unwrap();
        let first = nft(&["list", "ruleset"]);
        nft_.apply(&rules).await.unwrap();
        assert_eq!(nft(&["list", "ruleset"]), first);
        assert_installed(&rules);
        // And a different set replaces the first one whole.
        let fewer = vec![mixed_rules()[2].clone()];
        nft_.apply(&fewer).await.unwrap();
        assert_installed(&fewer);
    });
}

#[test]
fn foreign_tables_survive_apply_and_remove() {
    in_netns(|| async {
        nft_script(FOREIGN);
        let before = foreign_listing();
        let nft_ = Nft::connect().unwrap();
        nft_.apply(&mixed_rules()).await.unwrap();
        assert_installed(&mixed_rules());
        assert_eq!(foreign_listing(), before);
        nft_.apply(&mixed_rules()[..1]).await.unwrap();
        assert_eq!(foreign_listing(), before);
        nft_.remove().await.unwrap();
        assert_eq!(foreign_listing(), before);
        assert_installed(&[]);
        let live = nft_.read().await.unwrap();
        assert_eq!(live.tables, vec![], "inet bigbro is not bigbro's: {live:?}");
    });
}

#[test]
fn removal_leaves_nothing_and_tolerates_missing_tables() {
    in_netns(|| async {
        let nft_ = Nft::connect().unwrap();
        nft_.remove().await.unwrap();
        nft_.apply(&mixed_rules()).await.unwrap();
        // Only IPv4 rules wanted: ip6 bigbro goes away.
        let v4 = of_family(&mixed_rules(), Family::Ip);
        nft_.apply(&v4).await.unwrap();
        assert_installed(&v4);
        assert!(list(Family::Ip6).is_none());
        // Only IPv6 rules wanted: ip bigbro goes away.
        let v6 = of_family(&mixed_rules(), Family::Ip6);
        nft_.apply(&v6).await.unwrap();
        assert_installed(&v6);
        assert!(list(Family::Ip).is_none());
        nft_.apply(&mixed_rules()).await.unwrap();
        nft_.remove().await.unwrap();
        assert_eq!(nft(&["list", "ruleset"]), "", "nothing of bigbro is left");
        nft_.remove().await.unwrap();
        assert_eq!(nft(&["list", "ruleset"]), "");
    });
}

#[test]
fn an_invalid_rule_is_refused_before_reaching_the_kernel() {
    in_netns(|| async {
        let nft_ = Nft::connect().unwrap();
        let old = mixed_rules();
        nft_.apply(&old).await.unwrap();
        let before = nft(&["list", "ruleset"]);
        let mut new = old.clone();
        new.push(rule(
            "10.0.0.1",
            L4Proto::Tcp,
            (80, 80),
            Some("an-interface-name-too-long"),
            7,
        ));
        let err = nft_.apply(&new).await.unwrap_err();
        assert!(matches!(err, NftError::InvalidRule(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "mark rule `ip daddr 10.0.0.1 tcp dport 80 iifname \"an-interface-name-too-long\" meta mark set 0x00000007`: \
             interface name \"an-interface-name-too-long\" is 26 bytes long; Linux interface names have at most 15; \
             nothing was sent to the kernel"
        );
        assert_eq!(nft(&["list", "ruleset"]), before);
    });
}

/// The kernel refuses a batch in the middle: after bigbro's `ip` messages were accepted,
/// the `ip6 bigbro` table turns out to be owned (`NFT_TABLE_F_OWNER`) by another netlink
/// socket, so creating it fails with EPERM. The transaction is aborted whole: the `ip`
/// table keeps its previous rules, and the error names the message that failed.
#[test]
fn a_batch_refused_mid_way_leaves_the_previous_ruleset() {
    in_netns(|| async {
        let nft_ = Nft::connect().unwrap();
        let old = of_family(&mixed_rules(), Family::Ip);
        nft_.apply(&old).await.unwrap();
        let before = nft(&["list", "ruleset"]);

        let _owner = owned_table(Family::Ip6, "bigbro");
        let with_owned = nft(&["list", "ruleset"]);
        assert!(with_owned.contains("table ip6 bigbro"), "{with_owned}");

        let mut new = vec![rule("10.9.9.9", L4Proto::Tcp, (80, 80), None, 5)];
        new.extend(of_family(&mixed_rules(), Family::Ip6));
        let err = nft_.apply(&new).await.unwrap_err();
        let NftError::Refused { failures } = &err else {
            panic!("expected a refusal, got {err:?}");
        };
        // BEGIN, then five ip messages (3 table, chain, rule), then ip6's first NEWTABLE:
        // the first refusal. Every later ip6 message is refused too (the table is not ours);
        // no ip message is.
        let f = &failures[0];
        assert_eq!(
            (f.index, f.purpose.as_str(), f.errno),
            (6, "create table ip6 bigbro", 1),
            "{err}"
        );
        assert!(
            failures
                .iter()
                .all(|f| f.index >= 6 && f.purpose.contains("ip6 bigbro")),
            "{err}"
        );
        // The kernel's extended ack points at the attribute naming the table.
        assert_eq!(failures[1].purpose, "delete table ip6 bigbro");
        assert_eq!(
            failures[1].location.as_deref(),
            Some("NFTA_TABLE_NAME"),
            "{err}"
        );
        assert!(err.to_string().contains("nothing was changed"), "{err}");
        assert_eq!(
            nft(&["list", "ruleset"]),
            with_owned,
            "the failed batch changed something"
        );
        assert_installed_family(Family::Ip, &old);
        drop(_owner);
        // Once the owner is gone (its table with it), the same batch goes through.
        assert_eq!(nft(&["list", "ruleset"]), before);
        nft_.apply(&new).await.unwrap();
        assert_installed(&new);
    });
}

fn assert_installed_family(family: Family, want: &[MarkRule]) {
    assert_eq!(list(family).expect("table").rules, want);
}

/// Creates `family table` owned by a netlink socket of its own (as a process using
/// `NFT_TABLE_F_OWNER` would); the table disappears when the returned socket closes.
fn owned_table(family: Family, table: &str) -> netlink_sys::Socket {
    use netlink_packet_core::{
        NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST,
    };
    use netlink_packet_netfilter::nftables::{
        NfTablesMessage, TableAttribute, TableFlags, TableMessage,
    };
    use netlink_packet_netfilter::none::ControlMessage;
    use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};

    let pf = match family {
        Family::Ip => NetfilterProtoFamily::IPv4,
        Family::Ip6 => NetfilterProtoFamily::IPv6,
    };
    let msg = |family, res_id, flags, inner: netlink_packet_netfilter::NetfilterMessageInner| {
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        let mut m = NetlinkMessage::new(
            header,
            NetlinkPayload::InnerMessage(NetfilterMessage::new(
                NetfilterHeader::new(family, 0, res_id),
                inner,
            )),
        );
        m.finalize();
        m
    };
    let messages = [
        msg(
            NetfilterProtoFamily::Unspec,
            10,
            NLM_F_REQUEST,
            ControlMessage::BatchBegin.into(),
        ),
        msg(
            pf,
            0,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
            NfTablesMessage::NewTable(TableMessage {
                attributes: vec![
                    TableAttribute::Name(table.into()),
                    TableAttribute::Flags(TableFlags::Owner),
                ],
            })
            .into(),
        ),
        msg(
            NetfilterProtoFamily::Unspec,
            10,
            NLM_F_REQUEST,
            ControlMessage::BatchEnd.into(),
        ),
    ];
    let mut bytes = Vec::new();
    for (i, mut m) in messages.into_iter().enumerate() {
        m.header.sequence_number = i as u32 + 1;
        let at = bytes.len();
        bytes.resize(at + m.buffer_len(), 0);
        m.serialize(&mut bytes[at..]);
    }
    let mut socket = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_NETFILTER).unwrap();
    socket.bind_auto().unwrap();
    socket.send(&bytes, 0).unwrap();
    let (reply, _) = socket.recv_from_full().unwrap();
    let reply = NetlinkMessage::<NetfilterMessage>::deserialize(&reply).unwrap();
    match reply.payload {
        NetlinkPayload::Error(e) => {
            assert_eq!(e.code, None, "creating the owned table failed: {e}")
        }
        other => panic!("unexpected answer {other:?}"),
    }
    socket
}

#[test]
fn read_back_equals_what_was_applied_and_sees_hand_edits() {
    in_netns(|| async {
        let nft_ = Nft::connect().unwrap();
        let rules = mixed_rules();
        nft_.apply(&rules).await.unwrap();
        let live = nft_.read().await.unwrap();
        assert_eq!(live.tables, vec![Family::Ip, Family::Ip6]);
        assert_eq!(live.rules, rules);
        assert_eq!(live.unknown, vec![]);
        assert!(live.matches(&rules));

        // An operator deletes the second IPv4 rule by hand.
        let handle = list(Family::Ip).unwrap().handles[1];
        nft(&[
            "delete",
            "rule",
            "ip",
            "bigbro",
            "prerouting",
            "handle",
            &handle.to_string(),
        ]);
        let live = nft_.read().await.unwrap();
        assert!(!live.matches(&rules));
        assert_eq!(
            live.differences(&rules),
            ["rule `ip daddr 10.0.0.100 udp dport 8000-8080 meta mark set 0x00000007` is missing from ip bigbro"]
        );

        // ... and adds rules of their own: one of bigbro's shape, one not.
        nft(&[
            "add",
            "rule",
            "ip6",
            "bigbro",
            "prerouting",
            "ip6",
            "daddr",
            "2001:db8::9",
            "tcp",
            "dport",
            "22",
            "meta",
            "mark",
            "set",
            "3",
        ]);
        nft(&[
            "add",
            "rule",
            "ip6",
            "bigbro",
            "prerouting",
            "tcp",
            "dport",
            "22",
            "counter",
            "accept",
        ]);
        nft(&["add", "chain", "ip", "bigbro", "extra"]);
        let live = nft_.read().await.unwrap();
        let diffs = live.differences(&rules);
        assert_eq!(diffs.len(), 4, "{diffs:#?}");
        assert_eq!(diffs[0], "found in table ip bigbro: chain extra");
        assert!(
            diffs[1].starts_with("found in table ip6 bigbro: rule handle ")
                && diffs[1].ends_with(
                    "in chain prerouting is not a bigbro mark rule (it has [ meta load L4Proto => reg 1 ] \
                     where the destination address load was expected): [ meta load L4Proto => reg 1 ] \
                     [ cmp Equal reg 1 0x06 ] [ payload load 2b @ transport header + 2 => reg 1 ] \
                     [ cmp Equal reg 1 0x0016 ] [ counter ] [ immediate verdict accept ]"
                ),
            "{}",
            diffs[1]
        );
        assert_eq!(diffs[2], "rule `ip daddr 10.0.0.100 udp dport 8000-8080 meta mark set 0x00000007` is missing from ip bigbro");
        assert_eq!(diffs[3], "rule `ip6 daddr 2001:db8::9 tcp dport 22 meta mark set 0x00000003` in ip6 bigbro is not wanted");

        // Applying again repairs everything.
        nft_.apply(&rules).await.unwrap();
        assert!(nft_.read().await.unwrap().matches(&rules));
        assert_installed(&rules);
    });
}

/// A batch far larger than the default socket buffers (about 1.5 MB, 3000 acknowledged
/// rules) goes through in one transaction and reads back whole.
#[test]
fn a_large_ruleset_applies_and_reads_back() {
    in_netns(|| async {
        let nft_ = Nft::connect().unwrap();
        let rules: Vec<MarkRule> = (0..3000u32)
            .map(|i| {
                let a = IpAddr::from([10, 1, (i / 250) as u8, (i % 250) as u8 + 1]);
                MarkRule {
                    daddr: a,
                    proto: L4Proto::Tcp,
                    ports: PortRange::single(80 + (i % 7) as u16),
                    iifname: (i % 3 == 0).then(|| "eth0".to_string()),
                    mark: 1 + i % 100,
                }
            })
            .collect();
        nft_.apply(&rules).await.unwrap();
        let live = nft_.read().await.unwrap();
        assert_eq!(live.rules.len(), 3000);
        assert!(live.matches(&rules));
        assert_eq!(list(Family::Ip).unwrap().rules, rules);
    });
}

/// A batch too large for one netlink message is refused before anything is sent.
#[test]
fn an_oversized_batch_is_refused_before_reaching_the_kernel() {
    in_netns(|| async {
        let nft_ = Nft::connect().unwrap();
        nft_.apply(&mixed_rules()).await.unwrap();
        let before = nft(&["list", "ruleset"]);
        let huge: Vec<MarkRule> = (0..80_000u32)
            .map(|i| {
                rule(
                    "10.0.0.1",
                    L4Proto::Tcp,
                    (1, 1 + (i % 60000) as u16),
                    None,
                    1,
                )
            })
            .collect();
        let err = nft_.apply(&huge).await.unwrap_err();
        assert!(
            matches!(err, NftError::TooLarge { rules: 80_000, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().ends_with("nothing was sent to the kernel"),
            "{err}"
        );
        assert_eq!(nft(&["list", "ruleset"]), before);
    });
}
