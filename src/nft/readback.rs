//! bigbro's tables as the kernel holds them, read back from nf_tables dumps: the mark rules
//! found in them, and everything else found in them that bigbro did not put there (a chain
//! of another shape, a rule of another shape, a set, an object). The daemon compares a
//! [`Live`] with the rules it wants to notice edits made behind its back.
//!
//! Pure: it interprets dump messages and never talks to the kernel. Nothing found in
//! bigbro's tables is dropped silently: what is not a [`MarkRule`] is an [`Unknown`].

use std::fmt;

use netlink_packet_core::{DefaultNla, Nla};
use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, Hook, HookNumber, InetHookNumber, NfTablesMessage, RuleAttribute,
    RuleMessage, SetAttribute,
};

use super::expr;
use super::rule::{Family, MarkRule, CHAIN, PRIORITY_MANGLE, TABLE};

/// Something in one of bigbro's tables that bigbro did not put there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unknown {
    pub family: Family,
    /// What it is and why it is not bigbro's, for a person.
    pub what: String,
}

impl fmt::Display for Unknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "in table {} {TABLE}: {}", self.family, self.what)
    }
}

/// bigbro's tables as read from the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Live {
    /// The families in which a `bigbro` table exists.
    pub tables: Vec<Family>,
    /// The mark rules of the `prerouting` chains, `ip` first, each in kernel order.
    pub rules: Vec<MarkRule>,
    /// Everything else found in bigbro's tables.
    pub unknown: Vec<Unknown>,
}

/// What the dumps of one family found in bigbro's table, sorted by [`Dumped::add`].
#[derive(Debug, Default)]
pub struct Dumped {
    chains: Vec<(Family, ChainMessage)>,
    rules: Vec<(Family, RuleMessage)>,
    /// Sets, stateful objects and flowtables: (family, kind, name).
    others: Vec<(Family, &'static str, String)>,
}

/// The string value of a raw attribute (up to its NUL).
fn text_of(attr: &DefaultNla) -> String {
    let mut v = vec![0; attr.value_len()];
    attr.emit_value(&mut v);
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

impl Dumped {
    /// Keeps one dumped message of `family` if it belongs to bigbro's table; dumps of
    /// chains, sets, objects and flowtables cover every table of the family.
    pub fn add(&mut self, family: Family, message: NfTablesMessage) {
        let ours = || TABLE.to_string();
        let kind = match &message {
            NfTablesMessage::NewObject(_) => "object",
            _ => "flowtable",
        };
        match message {
            NfTablesMessage::NewChain(c)
                if c.attributes.contains(&ChainAttribute::Table(ours())) =>
            {
                self.chains.push((family, c))
            }
            NfTablesMessage::NewRule(r) if r.attributes.contains(&RuleAttribute::Table(ours())) => {
                self.rules.push((family, r))
            }
            NfTablesMessage::NewSet(s) if s.attributes.contains(&SetAttribute::Table(ours())) => {
                let name = s.attributes.iter().find_map(|a| match a {
                    SetAttribute::Name(n) => Some(n.clone()),
                    _ => None,
                });
                self.others.push((family, "set", name.unwrap_or_default()));
            }
            // NFTA_OBJ_TABLE / NFTA_FLOWTABLE_TABLE = 1, NFTA_OBJ_NAME / NFTA_FLOWTABLE_NAME = 2.
            NfTablesMessage::NewObject(attrs) | NfTablesMessage::NewFlowTable(attrs)
                if attrs.iter().any(|a| a.kind() == 1 && text_of(a) == TABLE) =>
            {
                let name = attrs.iter().find(|a| a.kind() == 2).map(text_of);
                self.others.push((family, kind, name.unwrap_or_default()));
            }
            _ => {}
        }
    }
}

fn chain_shape(attrs: &[ChainAttribute]) -> Result<(), String> {
    let (mut ty, mut policy, mut hooknum, mut prio) = (None, None, None, None);
    for a in attrs {
        match a {
            ChainAttribute::Type(t) => ty = Some(t.as_str()),
            ChainAttribute::Policy(p) => policy = Some(*p),
            ChainAttribute::Hook(hooks) => {
                for h in hooks {
                    match h {
                        Hook::Number(n) => hooknum = Some(*n),
                        Hook::Priority(p) => prio = Some(*p as i32),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let pre = HookNumber::Inet(InetHookNumber::PreRouting);
    if ty == Some("filter")
        && policy == Some(1)
        && hooknum == Some(pre)
        && prio == Some(PRIORITY_MANGLE)
    {
        return Ok(());
    }
    Err(format!(
        "chain {CHAIN} is type {} hook {} priority {} policy {}, not type filter hook prerouting priority mangle (-150) policy accept",
        ty.unwrap_or("(none)"),
        hooknum.map_or("(none)".to_string(), |h| format!("{h:?}")),
        prio.map_or("(none)".to_string(), |p| p.to_string()),
        policy.map_or("(none)".to_string(), |p| match p {
            0 => "drop".to_string(),
            1 => "accept".to_string(),
            p => p.to_string(),
        }),
    ))
}

fn chain_name(attrs: &[ChainAttribute]) -> Option<&str> {
    attrs.iter().find_map(|a| match a {
        ChainAttribute::Name(n) => Some(n.as_str()),
        _ => None,
    })
}

impl Live {
    /// Interprets the dumps of bigbro's tables. `tables` are the families in which a
    /// `bigbro` table exists.
    pub fn from_dumps(tables: Vec<Family>, dumped: &Dumped) -> Live {
        let mut live = Live {
            tables,
            ..Live::default()
        };
        for &family in &live.tables.clone() {
            let chains: Vec<&[ChainAttribute]> = dumped
                .chains
                .iter()
                .filter(|(f, _)| *f == family)
                .map(|(_, c)| c.attributes.as_slice())
                .collect();
            let mut ours = false;
            let mut named = false;
            for attrs in &chains {
                let name = chain_name(attrs).unwrap_or("(unnamed)");
                if name != CHAIN {
                    live.unknown.push(Unknown {
                        family,
                        what: format!("chain {name}"),
                    });
                    continue;
                }
                named = true;
                match chain_shape(attrs) {
                    Ok(()) => ours = true,
                    Err(what) => live.unknown.push(Unknown { family, what }),
                }
            }
            if !named {
                live.unknown.push(Unknown {
                    family,
                    what: format!("no {CHAIN} chain"),
                });
            }
            for (_, r) in dumped.rules.iter().filter(|(f, _)| *f == family) {
                live.add_rule(family, ours, &r.attributes);
            }
            for (_, kind, name) in dumped.others.iter().filter(|(f, ..)| *f == family) {
                live.unknown.push(Unknown {
                    family,
                    what: format!("{kind} {name}"),
                });
            }
        }
        live
    }

    fn add_rule(&mut self, family: Family, chain_ok: bool, attrs: &[RuleAttribute]) {
        let (mut chain, mut handle, mut exprs) = (None, None, None);
        for a in attrs {
            match a {
                RuleAttribute::Chain(c) => chain = Some(c.as_str()),
                RuleAttribute::Handle(h) => handle = Some(*h),
                RuleAttribute::Expressions(e) => exprs = Some(e.as_slice()),
                _ => {}
            }
        }
        let exprs = exprs.unwrap_or(&[]);
        let handle = handle.map_or("?".to_string(), |h| h.to_string());
        let chain = chain.unwrap_or("(unnamed)");
        let why = if chain != CHAIN {
            format!("it is in chain {chain}")
        } else if !chain_ok {
            format!("chain {CHAIN} is not bigbro's")
        } else {
            match expr::decode(family, exprs) {
                Ok(rule) => {
                    self.rules.push(rule);
                    return;
                }
                Err(why) => format!("it {why}"),
            }
        };
        self.unknown.push(Unknown {
            family,
            what: format!(
                "rule handle {handle} in chain {chain} is not a bigbro mark rule ({why}): {}",
                expr::describe(exprs)
            ),
        });
    }

    /// How the live tables differ from the ones bigbro would install for `wanted`, one
    /// sentence per difference; empty when they are the same.
    pub fn differences(&self, wanted: &[MarkRule]) -> Vec<String> {
        let mut out: Vec<String> = self.unknown.iter().map(|u| format!("found {u}")).collect();
        for family in Family::ALL {
            let want: Vec<&MarkRule> = wanted.iter().filter(|r| r.family() == family).collect();
            let have: Vec<&MarkRule> = self.rules.iter().filter(|r| r.family() == family).collect();
            let exists = self.tables.contains(&family);
            match (want.is_empty(), exists) {
                (false, false) => out.push(format!("table {family} {TABLE} is missing")),
                (true, true) => out.push(format!(
                    "table {family} {TABLE} exists but no {family} rule is wanted"
                )),
                _ => {}
            }
            if want == have {
                continue;
            }
            let mut missing = want.clone();
            let mut extra = Vec::new();
            for h in &have {
                match missing.iter().position(|w| w == h) {
                    Some(i) => {
                        missing.remove(i);
                    }
                    None => extra.push(*h),
                }
            }
            for m in &missing {
                out.push(format!(
                    "rule `{}` is missing from {family} {TABLE}",
                    m.nft_text()
                ));
            }
            for e in &extra {
                out.push(format!(
                    "rule `{}` in {family} {TABLE} is not wanted",
                    e.nft_text()
                ));
            }
            if missing.is_empty() && extra.is_empty() {
                out.push(format!(
                    "the rules of {family} {TABLE} are in another order"
                ));
            }
        }
        out
    }

    /// Whether the live tables are exactly what bigbro installs for `wanted`.
    pub fn matches(&self, wanted: &[MarkRule]) -> bool {
        self.differences(wanted).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::batch::Batch;
    use crate::nft::rule::{L4Proto, PortRange};
    use netlink_packet_core::NetlinkPayload;
    use netlink_packet_netfilter::nftables::SetMessage;
    use netlink_packet_netfilter::NetfilterMessageInner;

    fn rule(daddr: &str, port: u16, mark: u32) -> MarkRule {
        MarkRule {
            daddr: daddr.parse().unwrap(),
            proto: L4Proto::Tcp,
            ports: PortRange::single(port),
            iifname: None,
            mark,
        }
    }

    /// The messages of the batch bigbro sends, as if dumped back.
    fn as_dumped(rules: &[MarkRule]) -> Dumped {
        let mut dumped = Dumped::default();
        for step in Batch::new(TABLE, rules, &[]).steps {
            let NetlinkPayload::InnerMessage(m) = step.message.payload else {
                continue;
            };
            let family = match u8::from(m.header.family) {
                2 => Family::Ip,
                _ => Family::Ip6,
            };
            if let NetfilterMessageInner::NfTables(message) = m.inner {
                dumped.add(family, message);
            }
        }
        dumped
    }

    #[test]
    fn reads_back_what_bigbro_sends() {
        let wanted = vec![
            rule("10.0.0.1", 80, 7),
            rule("2001:db8::1", 443, 8),
            rule("10.0.0.2", 80, 9),
        ];
        let live = Live::from_dumps(vec![Family::Ip, Family::Ip6], &as_dumped(&wanted));
        assert_eq!(live.unknown, vec![]);
        assert_eq!(
            live.rules,
            vec![wanted[0].clone(), wanted[2].clone(), wanted[1].clone()]
        );
        assert!(live.matches(&wanted), "{:?}", live.differences(&wanted));
    }

    #[test]
    fn reports_every_difference() {
        let wanted = vec![rule("10.0.0.1", 80, 7), rule("10.0.0.2", 80, 7)];
        let mut dumped = as_dumped(&wanted);
        dumped.rules.remove(0);
        let live = Live::from_dumps(vec![Family::Ip, Family::Ip6], &dumped);
        assert_eq!(
            live.differences(&wanted),
            [
                "found in table ip6 bigbro: no prerouting chain",
                "rule `ip daddr 10.0.0.1 tcp dport 80 meta mark set 0x00000007` is missing from ip bigbro",
                "table ip6 bigbro exists but no ip6 rule is wanted",
            ]
        );
        let swapped = vec![wanted[1].clone(), wanted[0].clone()];
        let live = Live::from_dumps(vec![Family::Ip], &as_dumped(&wanted));
        assert_eq!(
            live.differences(&swapped),
            ["the rules of ip bigbro are in another order"]
        );
        assert_eq!(
            Live::default().differences(&wanted[..1]),
            [
                "table ip bigbro is missing",
                "rule `ip daddr 10.0.0.1 tcp dport 80 meta mark set 0x00000007` is missing from ip bigbro"
            ]
        );
    }

    #[test]
    fn foreign_things_are_unknown_not_dropped() {
        let wanted = vec![rule("10.0.0.1", 80, 7)];
        let mut dumped = as_dumped(&wanted);
        // A rule whose verdict goes on after the mark, and a chain of another name.
        let mut odd = dumped.rules[0].1.clone();
        if let RuleAttribute::Expressions(e) = &mut odd.attributes[2] {
            let dup = e[e.len() - 2].clone();
            e.push(dup);
        }
        odd.attributes.push(RuleAttribute::Handle(42));
        dumped.add(Family::Ip, NfTablesMessage::NewRule(odd));
        let mut input = dumped.chains[0].1.clone();
        for a in &mut input.attributes {
            if let ChainAttribute::Name(n) = a {
                *n = "input".into();
            }
        }
        dumped.add(Family::Ip, NfTablesMessage::NewChain(input));
        // A set in bigbro's table, an object in another table (ignored), a flowtable.
        let set = SetMessage {
            attributes: vec![
                SetAttribute::Table(TABLE.into()),
                SetAttribute::Name("vips".into()),
            ],
        };
        dumped.add(Family::Ip, NfTablesMessage::NewSet(set));
        let nla = |kind, text: &str| DefaultNla::new(kind, format!("{text}\0").into_bytes());
        dumped.add(
            Family::Ip,
            NfTablesMessage::NewObject(vec![nla(1, "filter"), nla(2, "c")]),
        );
        dumped.add(
            Family::Ip,
            NfTablesMessage::NewFlowTable(vec![nla(1, TABLE), nla(2, "ft")]),
        );

        let live = Live::from_dumps(vec![Family::Ip], &dumped);
        assert_eq!(live.rules, wanted);
        let what: Vec<String> = live.unknown.iter().map(|u| u.what.clone()).collect();
        assert_eq!(what.len(), 4, "{what:?}");
        assert_eq!(what[0], "chain input");
        assert!(
            what[1].starts_with(
                "rule handle 42 in chain prerouting is not a bigbro mark rule (it goes on after meta mark set with [ immediate reg 1 0x07000000 ]): [ payload load 4b"
            ),
            "{}",
            what[1]
        );
        assert_eq!(what[2..], ["set vips", "flowtable ft"]);
        assert!(!live.matches(&wanted));
    }

    #[test]
    fn a_chain_of_another_shape_is_unknown_and_so_are_its_rules() {
        let wanted = vec![rule("10.0.0.1", 80, 7)];
        let mut dumped = as_dumped(&wanted);
        for a in &mut dumped.chains[0].1.attributes {
            if let ChainAttribute::Policy(p) = a {
                *p = 0;
            }
        }
        let live = Live::from_dumps(vec![Family::Ip], &dumped);
        assert_eq!(live.rules, vec![]);
        assert_eq!(
            live.unknown[0].what,
            "chain prerouting is type filter hook Inet(PreRouting) priority -150 policy drop, not type filter hook prerouting priority mangle (-150) policy accept"
        );
        assert!(live.unknown[1]
            .what
            .contains("(chain prerouting is not bigbro's)"));
    }
}
