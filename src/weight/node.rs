//! One node's health state machine: rise/fall hysteresis, the ramp after every transition to
//! up, adoption of a weight found in the kernel, and the last probe result.
//!
//! States: `unknown` (added, not yet judged: holds its initial weight), `up` (weight from
//! health and ramp), `down` (weight 0). A probe is good when it returned a health above 0.
//! `rise` consecutive good probes bring an unknown or down node up, `fall` consecutive bad
//! ones bring an unknown or up node down (defaults 1/1, big_brother's behaviour). While an up
//! node has failed fewer than `fall` times it keeps its last good health. Each transition to
//! up restarts the ramp from that probe's time.
//!
//! Adoption (daemon restart), so that a restart changes nothing:
//! * a node adopted with weight > 0 is `up` at once (no `rise` needed) and keeps exactly that
//!   weight until its first probe result. A good first probe with health `h` resumes the ramp
//!   as if it had been ramping for `ramp_up_time × w / h` (so the weight continues from `w`;
//!   a node at full weight stays there); a bad one counts towards `fall` like any other.
//! * a node adopted with weight 0 is `down` and needs `rise` good probes, then ramps from 0
//!   like any recovering node.
//!
//! Pure: time comes in as arguments; it never reads a clock or does I/O.

use std::time::Duration;

use tokio::time::Instant;

use super::ramp;
use crate::health::{ProbeResult, Target};
use crate::health::{ProbeSettings, Sample};
use crate::types::Weight;

/// Per-node policy settings (the daemon maps the cluster and node config to these).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeParams {
    /// What to probe for this node's health.
    pub target: Target,
    pub probe: ProbeSettings,
    /// Good probes needed to come up (at least 1).
    pub rise: u32,
    /// Bad probes needed to go down (at least 1).
    pub fall: u32,
    /// Length of the linear ramp after each transition to up; zero disables it.
    pub ramp_up_time: Duration,
    /// Caps the weight computed from health (big_brother: used only when > 0).
    pub max_weight: Option<Weight>,
}

impl NodeParams {
    /// big_brother's defaults: rise 1, fall 1, ramp 60 s, no cap.
    pub fn new(target: Target, probe: ProbeSettings) -> NodeParams {
        NodeParams {
            target,
            probe,
            rise: 1,
            fall: 1,
            ramp_up_time: Duration::from_secs(60),
            max_weight: None,
        }
    }
}

/// What is known of a node when it is added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "weight")]
pub enum Initial {
    /// Not in the kernel (or not trusted): `weight` is held until health is known
    /// (big_brother gives 1 at cluster start: misdirect briefly rather than wait).
    Fresh(Weight),
    /// Found in the kernel at daemon start with this weight; see the module notes.
    Adopted(Weight),
}

impl Initial {
    pub fn weight(self) -> Weight {
        match self {
            Initial::Fresh(w) | Initial::Adopted(w) => w,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Unknown,
    Up,
    Down,
}

/// Where a node's weight came from, for the API and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Not yet judged: the initial weight.
    Initial,
    /// Up, adopted from the kernel, not yet probed.
    Adopted,
    /// Down: 0.
    Down,
    /// Up: the health.
    Health,
    /// Up and ramping.
    Ramp,
    /// Up, limited by `max_weight`.
    MaxWeight,
    /// `<data-dir>/up/<cluster>` exists: 100.
    UpFile,
    /// `<data-dir>/down/<cluster>` exists: 0.
    DownFile,
    /// A per-node override.
    NodeOverride,
    /// A per-cluster override.
    ClusterOverride,
}

/// The latest probe result seen for a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastProbe {
    pub result: ProbeResult,
    pub latency: Duration,
    /// When it finished.
    pub at: Instant,
}

/// A change of status caused by a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: Status,
    pub to: Status,
    /// The consecutive probes that caused it.
    pub streak: u32,
}

#[derive(Clone, Debug)]
pub struct NodeHealth {
    status: Status,
    /// When `status` last changed (or the node was added).
    since: Instant,
    ok_streak: u32,
    fail_streak: u32,
    /// Last good health while up (None while up only before an adopted node's first good
    /// probe).
    health: Option<u16>,
    /// Start of the current ramp while up; None when there is no ramp to apply.
    ramp_from: Option<Instant>,
    initial: Initial,
    last: Option<LastProbe>,
}

impl NodeHealth {
    pub fn new(initial: Initial, now: Instant) -> NodeHealth {
        let status = match initial {
            Initial::Fresh(_) => Status::Unknown,
            Initial::Adopted(w) if w.get() > 0 => Status::Up,
            Initial::Adopted(_) => Status::Down,
        };
        NodeHealth {
            status,
            since: now,
            ok_streak: 0,
            fail_streak: 0,
            health: None,
            ramp_from: None,
            initial,
            last: None,
        }
    }

    pub fn status(&self) -> Status {
        self.status
    }
    pub fn since(&self) -> Instant {
        self.since
    }
    pub fn ok_streak(&self) -> u32 {
        self.ok_streak
    }
    pub fn fail_streak(&self) -> u32 {
        self.fail_streak
    }
    /// The health the weight is computed from (only while up).
    pub fn health(&self) -> Option<u16> {
        self.health
    }
    pub fn last(&self) -> Option<&LastProbe> {
        self.last.as_ref()
    }
    pub fn initial(&self) -> Initial {
        self.initial
    }

    /// Feeds one probe result; returns the status change it caused, if any.
    pub fn observe(&mut self, sample: &Sample, params: &NodeParams) -> Option<Transition> {
        let at = sample.finished();
        self.last = Some(LastProbe {
            result: sample.result.clone(),
            latency: sample.latency,
            at,
        });
        let before = self.status;
        match sample.result {
            Ok(h) if h > 0 => {
                self.ok_streak = self.ok_streak.saturating_add(1);
                self.fail_streak = 0;
                match self.status {
                    Status::Up => {
                        if self.health.is_none() {
                            self.resume_adopted_ramp(h, at, params.ramp_up_time);
                        }
                        self.health = Some(h);
                    }
                    Status::Unknown | Status::Down if self.ok_streak >= params.rise.max(1) => {
                        self.status = Status::Up;
                        self.since = at;
                        self.health = Some(h);
                        self.ramp_from = Some(at);
                    }
                    Status::Unknown | Status::Down => {}
                }
            }
            _ => {
                self.fail_streak = self.fail_streak.saturating_add(1);
                self.ok_streak = 0;
                if self.status != Status::Down && self.fail_streak >= params.fall.max(1) {
                    self.status = Status::Down;
                    self.since = at;
                    self.health = None;
                    self.ramp_from = None;
                }
            }
        }
        (self.status != before).then(|| Transition {
            from: before,
            to: self.status,
            streak: self.ok_streak.max(self.fail_streak),
        })
    }

    /// An adopted node's first good probe: place the ramp so it continues from the adopted
    /// weight.
    fn resume_adopted_ramp(&mut self, health: u16, at: Instant, ramp_up_time: Duration) {
        let adopted = self.initial.weight().get().min(u32::from(u16::MAX)) as u16;
        let done = ramp::elapsed_for(adopted, health, ramp_up_time);
        self.ramp_from = if done >= ramp_up_time {
            None
        } else {
            at.checked_sub(done)
        };
    }

    /// The weight from health alone (before overrides and files), and why.
    pub fn weight(&self, params: &NodeParams, now: Instant) -> (Weight, Source) {
        match (self.status, self.health) {
            (Status::Unknown, _) => (self.initial.weight(), Source::Initial),
            (Status::Down, _) => (Weight::ZERO, Source::Down),
            (Status::Up, None) => (self.initial.weight(), Source::Adopted),
            (Status::Up, Some(h)) => {
                let elapsed = self.ramp_elapsed(now);
                let ramped = ramp::ramped(h, elapsed, params.ramp_up_time).max(1);
                let (mut w, mut source) = if ramped < h {
                    (u32::from(ramped), Source::Ramp)
                } else {
                    (u32::from(h), Source::Health)
                };
                if let Some(cap) = params.max_weight.filter(|c| c.get() > 0) {
                    if cap.get() < w {
                        (w, source) = (cap.get(), Source::MaxWeight);
                    }
                }
                (Weight::clamped(u64::from(w)), source)
            }
        }
    }

    fn ramp_elapsed(&self, now: Instant) -> Duration {
        match self.ramp_from {
            Some(from) => now.saturating_duration_since(from),
            None => Duration::MAX,
        }
    }

    /// 0.0 ..= 1.0: how far through its ramp an up node is (1 when not ramping); 0 when not
    /// up.
    pub fn ramp_progress(&self, params: &NodeParams, now: Instant) -> f64 {
        match self.status {
            Status::Up => ramp::progress(self.ramp_elapsed(now), params.ramp_up_time),
            Status::Unknown | Status::Down => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::ProbeError;
    use std::net::{IpAddr, Ipv4Addr};

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn params(rise: u32, fall: u32, ramp_s: u64) -> NodeParams {
        let t = Target::litmus(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 80, "/").unwrap();
        NodeParams {
            rise,
            fall,
            ramp_up_time: S(ramp_s),
            ..NodeParams::new(t, ProbeSettings::default())
        }
    }

    fn sample(p: &NodeParams, at: Instant, result: ProbeResult) -> Sample {
        Sample {
            target: p.target.clone(),
            result,
            started: at,
            latency: Duration::ZERO,
        }
    }

    fn w(n: &NodeHealth, p: &NodeParams, at: Instant) -> u32 {
        n.weight(p, at).0.get()
    }

    #[test]
    fn ramps_on_add_and_reproduces_the_table() {
        let t0 = Instant::now();
        let p = params(1, 1, 60);
        let mut n = NodeHealth::new(Initial::Fresh(Weight::clamped(1)), t0);
        assert_eq!(n.weight(&p, t0), (Weight::clamped(1), Source::Initial));
        let tr = n.observe(&sample(&p, t0, Ok(100)), &p).unwrap();
        assert_eq!((tr.from, tr.to), (Status::Unknown, Status::Up));
        assert_eq!(
            n.weight(&p, t0),
            (Weight::clamped(1), Source::Ramp),
            "healthy is at least 1"
        );
        assert_eq!(w(&n, &p, t0 + S(30)), 50);
        assert_eq!(w(&n, &p, t0 + S(45)), 75);
        assert_eq!(
            n.weight(&p, t0 + S(120)),
            (Weight::clamped(100), Source::Health)
        );
        assert_eq!(n.ramp_progress(&p, t0 + S(15)), 0.25);
    }

    #[test]
    fn ramp_multiplies_the_current_health() {
        let t0 = Instant::now();
        let p = params(1, 1, 60);
        let mut n = NodeHealth::new(Initial::Fresh(Weight::ZERO), t0);
        n.observe(&sample(&p, t0, Ok(100)), &p);
        n.observe(&sample(&p, t0 + S(30), Ok(40)), &p);
        assert_eq!(w(&n, &p, t0 + S(30)), 20);
        assert_eq!(w(&n, &p, t0 + S(60)), 40);
    }

    #[test]
    fn ramp_restarts_on_every_recovery() {
        let t0 = Instant::now();
        let p = params(1, 1, 60);
        let mut n = NodeHealth::new(Initial::Fresh(Weight::ZERO), t0);
        n.observe(&sample(&p, t0, Ok(100)), &p);
        assert_eq!(w(&n, &p, t0 + S(100)), 100);
        let tr = n
            .observe(&sample(&p, t0 + S(100), Err(ProbeError::Refused)), &p)
            .unwrap();
        assert_eq!((tr.from, tr.to), (Status::Up, Status::Down));
        assert_eq!(n.weight(&p, t0 + S(101)), (Weight::ZERO, Source::Down));
        n.observe(&sample(&p, t0 + S(110), Ok(100)), &p);
        assert_eq!(w(&n, &p, t0 + S(110)), 1);
        assert_eq!(w(&n, &p, t0 + S(140)), 50);
        assert_eq!(w(&n, &p, t0 + S(170)), 100);
    }

    #[test]
    fn zero_ramp_is_immediate() {
        let t0 = Instant::now();
        let p = params(1, 1, 0);
        let mut n = NodeHealth::new(Initial::Fresh(Weight::ZERO), t0);
        n.observe(&sample(&p, t0, Ok(73)), &p);
        assert_eq!(n.weight(&p, t0), (Weight::clamped(73), Source::Health));
        assert_eq!(n.ramp_progress(&p, t0), 1.0);
    }

    #[test]
    fn rise_and_fall_need_consecutive_probes() {
        let t0 = Instant::now();
        let p = params(3, 2, 0);
        let mut n = NodeHealth::new(Initial::Fresh(Weight::clamped(1)), t0);
        let good = |n: &mut NodeHealth, s| n.observe(&sample(&p, t0 + S(s), Ok(80)), &p);
        let bad =
            |n: &mut NodeHealth, s| n.observe(&sample(&p, t0 + S(s), Err(ProbeError::Reset)), &p);
        assert_eq!(good(&mut n, 2), None);
        assert_eq!(good(&mut n, 4), None);
        assert_eq!((n.status(), w(&n, &p, t0 + S(4))), (Status::Unknown, 1));
        assert_eq!(bad(&mut n, 6), None, "one failure of two needed");
        assert_eq!(n.ok_streak(), 0);
        good(&mut n, 8);
        good(&mut n, 10);
        let up = good(&mut n, 12).unwrap();
        assert_eq!((up.to, up.streak), (Status::Up, 3));
        assert_eq!(w(&n, &p, t0 + S(12)), 80);
        // One failure: held at the last good health.
        assert_eq!(bad(&mut n, 14), None);
        assert_eq!(
            (n.status(), n.fail_streak(), w(&n, &p, t0 + S(14))),
            (Status::Up, 1, 80)
        );
        // A good probe resets the failure count.
        good(&mut n, 16);
        assert_eq!(bad(&mut n, 18), None);
        let down = bad(&mut n, 20).unwrap();
        assert_eq!(
            (down.from, down.to, down.streak),
            (Status::Up, Status::Down, 2)
        );
        assert_eq!(w(&n, &p, t0 + S(20)), 0);
        assert_eq!(n.since(), t0 + S(20));
    }

    #[test]
    fn health_zero_is_a_failure() {
        let t0 = Instant::now();
        let p = params(1, 1, 0);
        let mut n = NodeHealth::new(Initial::Fresh(Weight::clamped(1)), t0);
        n.observe(&sample(&p, t0, Ok(50)), &p);
        let tr = n.observe(&sample(&p, t0 + S(2), Ok(0)), &p).unwrap();
        assert_eq!(tr.to, Status::Down);
        assert_eq!(n.last().unwrap().result, Ok(0));
    }

    #[test]
    fn unknown_goes_down_after_fall_failures() {
        let t0 = Instant::now();
        let p = params(1, 2, 0);
        let mut n = NodeHealth::new(Initial::Fresh(Weight::clamped(1)), t0);
        assert_eq!(
            n.observe(&sample(&p, t0, Err(ProbeError::Refused)), &p),
            None
        );
        assert_eq!(
            w(&n, &p, t0),
            1,
            "initial weight held until fall is reached"
        );
        let tr = n.observe(&sample(&p, t0 + S(2), Err(ProbeError::Refused)), &p);
        assert_eq!(tr.unwrap().to, Status::Down);
    }

    #[test]
    fn max_weight_caps_health_and_ramp() {
        let t0 = Instant::now();
        let mut p = params(1, 1, 60);
        p.max_weight = Some(Weight::clamped(10));
        let mut n = NodeHealth::new(Initial::Fresh(Weight::ZERO), t0);
        n.observe(&sample(&p, t0, Ok(100)), &p);
        assert_eq!(n.weight(&p, t0 + S(3)), (Weight::clamped(5), Source::Ramp));
        assert_eq!(
            n.weight(&p, t0 + S(30)),
            (Weight::clamped(10), Source::MaxWeight)
        );
        p.max_weight = Some(Weight::ZERO);
        assert_eq!(
            w(&n, &p, t0 + S(60)),
            100,
            "a cap of 0 is ignored, as in big_brother"
        );
    }

    #[test]
    fn adopted_full_weight_changes_nothing() {
        let t0 = Instant::now();
        let p = params(3, 3, 60);
        let mut n = NodeHealth::new(Initial::Adopted(Weight::clamped(100)), t0);
        assert_eq!(n.status(), Status::Up);
        assert_eq!(n.weight(&p, t0), (Weight::clamped(100), Source::Adopted));
        assert_eq!(
            n.observe(&sample(&p, t0 + S(1), Ok(100)), &p),
            None,
            "no rise needed"
        );
        assert_eq!(
            n.weight(&p, t0 + S(1)),
            (Weight::clamped(100), Source::Health)
        );
        assert_eq!(n.ramp_progress(&p, t0 + S(1)), 1.0);
    }

    #[test]
    fn adopted_mid_ramp_weight_continues_its_ramp() {
        let t0 = Instant::now() + S(1000);
        let p = params(1, 1, 60);
        let mut n = NodeHealth::new(Initial::Adopted(Weight::clamped(25)), t0);
        n.observe(&sample(&p, t0 + S(2), Ok(100)), &p);
        assert_eq!(w(&n, &p, t0 + S(2)), 25);
        assert_eq!(w(&n, &p, t0 + S(17)), 50);
        assert_eq!(w(&n, &p, t0 + S(47)), 100);
    }

    #[test]
    fn adopted_weight_held_through_failures_below_fall() {
        let t0 = Instant::now();
        let p = params(1, 2, 60);
        let mut n = NodeHealth::new(Initial::Adopted(Weight::clamped(40)), t0);
        n.observe(&sample(&p, t0, Err(ProbeError::Refused)), &p);
        assert_eq!(n.weight(&p, t0), (Weight::clamped(40), Source::Adopted));
        n.observe(&sample(&p, t0 + S(2), Err(ProbeError::Refused)), &p);
        assert_eq!(n.weight(&p, t0 + S(2)), (Weight::ZERO, Source::Down));
    }

    #[test]
    fn adopted_zero_is_down_and_needs_rise() {
        let t0 = Instant::now();
        let p = params(2, 1, 60);
        let mut n = NodeHealth::new(Initial::Adopted(Weight::ZERO), t0);
        assert_eq!(n.weight(&p, t0), (Weight::ZERO, Source::Down));
        assert_eq!(n.observe(&sample(&p, t0, Ok(100)), &p), None);
        assert_eq!(w(&n, &p, t0), 0);
        n.observe(&sample(&p, t0 + S(2), Ok(100)), &p).unwrap();
        assert_eq!(w(&n, &p, t0 + S(32)), 50, "ramps from the transition");
    }
}
