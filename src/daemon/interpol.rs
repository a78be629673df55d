//! Multi-datacenter discovery through interpol, as big_brother did it: every check
//! interval, each interpol endpoint of a running cluster is asked for
//! `GET /fwmark/<fwmark>` and `GET /fwmark/<fwmark + offset>` (all at once, 2 s each; any
//! answer 200 with a JSON list counts). Only when both lists are non-empty are the remote
//! load balancers those of the first list (`lb_ip_address` with `health` as weight),
//! minus those whose `lb_source_location` is in `non_egress_locations`.
//!
//! [`update`] applies one poll to the known remote nodes: a present one takes its new
//! weight and its missed-poll count is reset (big_brother never reset it); a missing one
//! goes to weight 0 and is removed after `max_down_ticks` further misses; a new one is
//! added. The poller only reads interpol and reports; the controller decides and the
//! reconciler writes. [`Pollers`] keeps one poller per running multi-datacenter cluster
//! for the controller, and [`take`] is what the controller does with a poll.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::Cluster;
use crate::desired::Remote;
use crate::health::http::{self, Limits};
use crate::health::Phase;
use crate::types::{ClusterName, Weight};

/// interpol's per-request time limit (big_brother's connect and inactivity timeouts).
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// One remote load balancer as interpol lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteLb {
    pub address: IpAddr,
    pub health: Weight,
    pub location: Option<String>,
}

#[derive(Deserialize)]
struct Entry {
    lb_ip_address: Option<String>,
    health: Option<serde_json::Value>,
    lb_source_location: Option<String>,
}

/// Parses interpol's answer: a JSON list of objects. Entries without a usable address are
/// skipped; a health that is not a number counts as 0 (big_brother's `to_i`).
pub fn parse(body: &[u8]) -> Result<Vec<RemoteLb>, String> {
    let entries: Vec<Entry> =
        serde_json::from_slice(body).map_err(|e| format!("not a JSON list of objects: {e}"))?;
    Ok(entries
        .into_iter()
        .filter_map(|e| {
            let address = e.lb_ip_address?.trim().parse().ok()?;
            let health = match e.health {
                Some(serde_json::Value::Number(n)) => n
                    .as_i64()
                    .or_else(|| n.as_f64().map(|f| f as i64))
                    .unwrap_or(0),
                Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(0),
                _ => 0,
            };
            Some(RemoteLb {
                address,
                health: Weight::from_signed(health),
                location: e.lb_source_location,
            })
        })
        .collect())
}

/// The remote load balancers one poll yields: those of the main list when both lists are
/// non-empty (big_brother's rule), without the non-egress locations; otherwise none.
pub fn remote_set(
    main: &[RemoteLb],
    relay: &[RemoteLb],
    non_egress: &[String],
) -> BTreeMap<IpAddr, RemoteLb> {
    if main.is_empty() || relay.is_empty() {
        return BTreeMap::new();
    }
    main.iter()
        .filter(|lb| lb.location.as_ref().is_none_or(|l| !non_egress.contains(l)))
        .map(|lb| (lb.address, lb.clone()))
        .collect()
}

/// Applies one poll to the known remote nodes; returns whether anything changed.
pub fn update(
    known: &mut BTreeMap<IpAddr, Remote>,
    fresh: &BTreeMap<IpAddr, RemoteLb>,
    max_down_ticks: u32,
) -> bool {
    let mut changed = false;
    let addresses: Vec<IpAddr> = known.keys().copied().collect();
    for addr in addresses {
        match fresh.get(&addr) {
            Some(lb) => {
                let r = known.get_mut(&addr).expect("listed above");
                let next = Remote {
                    weight: lb.health,
                    down_ticks: 0,
                    location: lb.location.clone(),
                };
                if *r != next {
                    changed |= r.weight != next.weight;
                    *r = next;
                }
            }
            None => {
                let r = known.get_mut(&addr).expect("listed above");
                if r.down_ticks >= max_down_ticks {
                    known.remove(&addr);
                    changed = true;
                } else {
                    changed |= r.weight != Weight::ZERO;
                    r.weight = Weight::ZERO;
                    r.down_ticks += 1;
                }
            }
        }
    }
    for (addr, lb) in fresh {
        if !known.contains_key(addr) {
            known.insert(
                *addr,
                Remote {
                    weight: lb.health,
                    down_ticks: 0,
                    location: lb.location.clone(),
                },
            );
            changed = true;
        }
    }
    changed
}

/// One poll's outcome, sent to the controller.
#[derive(Debug)]
pub struct Poll {
    pub cluster: ClusterName,
    /// Which poller sent it (older pollers' results are ignored).
    pub generation: u64,
    pub remote: BTreeMap<IpAddr, RemoteLb>,
    /// Why no endpoint gave a list, if none did.
    pub error: Option<String>,
}

/// GETs `/fwmark/<mark>` from every endpoint at once; the last 200 with a parsable list
/// wins (several endpoints are replicas).
async fn fetch(endpoints: &[SocketAddr], mark: u32) -> Result<Vec<RemoteLb>, String> {
    let path = format!("/fwmark/{mark}");
    let asks = endpoints.iter().map(|addr| {
        let path = path.clone();
        async move {
            let mut phase = Phase::Connect;
            let get = http::get(*addr, &path, Limits::default(), |s| s == 200, &mut phase);
            match tokio::time::timeout(TIMEOUT, get).await {
                Err(_) => Err(format!("http://{addr}{path}: no answer within 2 s")),
                Ok(Err(e)) => Err(format!("http://{addr}{path}: {e}")),
                Ok(Ok(r)) if r.head.status != 200 => {
                    Err(format!("http://{addr}{path}: status {}", r.head.status))
                }
                Ok(Ok(r)) => {
                    let body = r.body.map(|b| b.bytes).unwrap_or_default();
                    parse(&body).map_err(|e| format!("http://{addr}{path}: {e}"))
                }
            }
        }
    });
    let results = futures_util::future::join_all(asks).await;
    let mut last_error = None;
    let mut found = None;
    for r in results {
        match r {
            Ok(list) => found = Some(list),
            Err(e) => last_error = Some(e),
        }
    }
    found.ok_or_else(|| last_error.unwrap_or_else(|| "no interpol endpoint".into()))
}

/// Polls interpol for `cluster` every check interval until the receiver is gone or the
/// task is aborted.
pub async fn poll(cluster: Cluster, generation: u64, out: mpsc::Sender<Poll>) {
    let endpoints: Vec<SocketAddr> = cluster
        .interpol
        .iter()
        .map(|n| SocketAddr::new(n.address, n.port))
        .collect();
    let main = cluster.fwmark.get();
    let relay = main.saturating_add(cluster.offset);
    let mut ticker = tokio::time::interval(cluster.check_interval.max(Duration::from_millis(100)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let (a, b) = tokio::join!(fetch(&endpoints, main), fetch(&endpoints, relay));
        let error = match (&a, &b) {
            (Err(e), _) | (_, Err(e)) => Some(e.clone()),
            _ => None,
        };
        let remote = remote_set(
            &a.unwrap_or_default(),
            &b.unwrap_or_default(),
            &cluster.non_egress_locations,
        );
        let poll = Poll {
            cluster: cluster.name.clone(),
            generation,
            remote,
            error,
        };
        if out.send(poll).await.is_err() {
            return;
        }
    }
}

/// The interpol pollers of the running clusters, one per cluster with interpol
/// endpoints. Each poll names its poller's generation, so the polls of a poller that was
/// replaced or stopped since are ignored.
pub(crate) struct Pollers {
    pollers: BTreeMap<ClusterName, (u64, JoinHandle<()>)>,
    generation: u64,
    out: mpsc::Sender<Poll>,
}

impl Pollers {
    pub fn new(out: mpsc::Sender<Poll>) -> Pollers {
        Pollers {
            pollers: BTreeMap::new(),
            generation: 0,
            out,
        }
    }

    /// (Re)starts the poller of `c`, if it has interpol endpoints.
    pub fn start(&mut self, c: &Cluster) {
        self.stop(&c.name);
        if c.interpol.is_empty() {
            return;
        }
        self.generation += 1;
        let task = tokio::spawn(poll(c.clone(), self.generation, self.out.clone()));
        self.pollers.insert(c.name.clone(), (self.generation, task));
    }

    pub fn stop(&mut self, name: &ClusterName) {
        if let Some((_, task)) = self.pollers.remove(name) {
            task.abort();
        }
    }

    pub fn stop_all(&mut self) {
        for (_, (_, task)) in std::mem::take(&mut self.pollers) {
            task.abort();
        }
    }

    /// Whether `poll` comes from the cluster's current poller.
    pub fn is_current(&self, poll: &Poll) -> bool {
        self.pollers.get(&poll.cluster).map(|p| p.0) == Some(poll.generation)
    }
}

/// Whether a cluster configured as `before` and now as `after` needs a new poller.
pub fn poller_changed(before: &Cluster, after: &Cluster) -> bool {
    let inputs = |c: &Cluster| {
        (
            c.interpol.clone(),
            c.fwmark,
            c.offset,
            c.check_interval,
            c.non_egress_locations.clone(),
        )
    };
    inputs(before) != inputs(after)
}

/// Applies one poll to a running cluster's remote nodes (see [`update`]), logging the
/// nodes that come and go. Returns whether anything changed (the cluster needs a pass).
pub fn take(poll: &Poll, remote: &mut BTreeMap<IpAddr, Remote>, max_down_ticks: u32) -> bool {
    let before: BTreeSet<IpAddr> = remote.keys().copied().collect();
    if !update(remote, &poll.remote, max_down_ticks) {
        return false;
    }
    let after: BTreeSet<IpAddr> = remote.keys().copied().collect();
    for a in after.difference(&before) {
        tracing::info!("Adding remote {a} to cluster {}", poll.cluster);
    }
    for a in before.difference(&after) {
        tracing::info!("Removing remote {a} from cluster {}", poll.cluster);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn lb(a: &str, h: u64, loc: &str) -> RemoteLb {
        RemoteLb {
            address: ip(a),
            health: Weight::clamped(h),
            location: Some(loc.into()),
        }
    }

    #[test]
    fn parses_interpols_answer() {
        let body = br#"[{"aggregated_health":90,"count":1,"lb_ip_address":"172.27.3.1","lb_url":"http://172.27.3.1","health":45,"lb_source_location":"test"},
                       {"lb_ip_address":"172.27.3.2","health":"87"},
                       {"lb_ip_address":"not an ip","health":5},
                       {"health":5}]"#;
        assert_eq!(
            parse(body).unwrap(),
            vec![
                lb("172.27.3.1", 45, "test"),
                RemoteLb {
                    address: ip("172.27.3.2"),
                    health: Weight::clamped(87),
                    location: None
                }
            ]
        );
        assert!(parse(b"{}").is_err());
        assert!(parse(b"garbage").unwrap_err().contains("JSON"));
    }

    #[test]
    fn both_lists_are_needed_and_non_egress_locations_are_skipped() {
        let main = [lb("172.27.3.1", 45, "east"), lb("172.27.3.2", 50, "west")];
        let relay = [lb("172.27.9.9", 1, "east")];
        assert!(remote_set(&main, &[], &[]).is_empty());
        assert!(remote_set(&[], &relay, &[]).is_empty());
        let set = remote_set(&main, &relay, &["west".into()]);
        assert_eq!(
            set.keys().copied().collect::<Vec<_>>(),
            vec![ip("172.27.3.1")]
        );
    }

    #[test]
    fn missing_nodes_go_to_zero_then_away_and_come_back_with_a_fresh_count() {
        let mut known = BTreeMap::new();
        let one: BTreeMap<_, _> = [(ip("172.27.3.1"), lb("172.27.3.1", 45, "e"))].into();
        assert!(update(&mut known, &one, 2));
        assert_eq!(known[&ip("172.27.3.1")].weight.get(), 45);
        assert!(!update(&mut known, &one, 2), "same answer, no change");
        let none = BTreeMap::new();
        assert!(update(&mut known, &none, 2));
        assert_eq!(
            (
                known[&ip("172.27.3.1")].weight.get(),
                known[&ip("172.27.3.1")].down_ticks
            ),
            (0, 1)
        );
        // Back: the count is reset, so two more misses are tolerated again.
        assert!(update(&mut known, &one, 2));
        assert_eq!(known[&ip("172.27.3.1")].down_ticks, 0);
        update(&mut known, &none, 2);
        update(&mut known, &none, 2);
        assert!(
            known.contains_key(&ip("172.27.3.1")),
            "two misses tolerated"
        );
        assert!(update(&mut known, &none, 2));
        assert!(known.is_empty(), "removed after max_down_ticks + 1 misses");
        // big_brother's default max_down_ticks 0: removed on the first miss.
        update(&mut known, &one, 0);
        update(&mut known, &none, 0);
        assert!(known.is_empty());
    }
}
