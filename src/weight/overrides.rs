//! Operator overrides and their precedence over the health-derived weight.
//!
//! From strongest to weakest:
//! 1. a per-node override (API): force up (100), force down (0) or a fixed weight;
//! 2. a per-cluster override (API), same kinds, for every node of the cluster;
//! 3. big_brother's file `<data-dir>/up/<cluster>`: 100 (wins over the down file);
//! 4. big_brother's file `<data-dir>/down/<cluster>`: 0;
//! 5. the weight from health, ramp and `max_weight`.
//!
//! The more specific, explicit instruction wins; forced weights bypass health, ramp and
//! `max_weight` exactly as big_brother's up file did. An override may expire; an expired one
//! is as if absent. Pure: no clock, no I/O (the files are read by `files`).

use std::time::Duration;

use tokio::time::Instant;

use super::node::Source;
use crate::types::Weight;

/// The weight big_brother's up file, and a forced-up override, give.
pub const FORCED_UP_WEIGHT: Weight = Weight::clamped(100);

/// What an override does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "force", content = "weight")]
pub enum Force {
    /// Weight 100 whatever the health (the up file's meaning).
    Up,
    /// Weight 0: drained, still in IPVS.
    Down,
    /// This exact weight.
    Weight(Weight),
}

impl Force {
    pub fn weight(self) -> Weight {
        match self {
            Force::Up => FORCED_UP_WEIGHT,
            Force::Down => Weight::ZERO,
            Force::Weight(w) => w,
        }
    }
}

/// An override set by an operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    pub force: Force,
    /// Why (shown in the API and logs).
    pub reason: String,
    pub set_at: Instant,
    /// None: until cleared.
    pub expires: Option<Instant>,
}

impl Override {
    /// An override set at `now`, lasting `ttl` if given.
    pub fn new(
        force: Force,
        reason: impl Into<String>,
        now: Instant,
        ttl: Option<Duration>,
    ) -> Override {
        Override {
            force,
            reason: reason.into(),
            set_at: now,
            expires: ttl.map(|t| now + t),
        }
    }

    pub fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|e| now >= e)
    }
}

/// big_brother's override files for one cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FileOverrides {
    /// `<data-dir>/up/<cluster>` exists.
    pub up: bool,
    /// `<data-dir>/down/<cluster>` exists.
    pub down: bool,
}

/// The final weight of a node and why, given its overrides and its health weight.
pub fn resolve(
    node: Option<&Override>,
    cluster: Option<&Override>,
    files: FileOverrides,
    health: (Weight, Source),
) -> (Weight, Source) {
    if let Some(o) = node {
        return (o.force.weight(), Source::NodeOverride);
    }
    if let Some(o) = cluster {
        return (o.force.weight(), Source::ClusterOverride);
    }
    if files.up {
        return (FORCED_UP_WEIGHT, Source::UpFile);
    }
    if files.down {
        return (Weight::ZERO, Source::DownFile);
    }
    health
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(n: u64) -> Weight {
        Weight::clamped(n)
    }

    #[test]
    fn precedence() {
        let now = Instant::now();
        let health = (w(42), Source::Health);
        let up = Override::new(Force::Up, "test", now, None);
        let down = Override::new(Force::Down, "drain", now, None);
        let fixed = Override::new(Force::Weight(w(7)), "canary", now, None);
        let none = FileOverrides::default();
        let both = FileOverrides {
            up: true,
            down: true,
        };
        let down_file = FileOverrides {
            up: false,
            down: true,
        };

        assert_eq!(resolve(None, None, none, health), health);
        assert_eq!(
            resolve(None, None, down_file, health),
            (w(0), Source::DownFile)
        );
        assert_eq!(
            resolve(None, None, both, health),
            (w(100), Source::UpFile),
            "up file wins"
        );
        assert_eq!(
            resolve(None, Some(&down), both, health),
            (w(0), Source::ClusterOverride)
        );
        assert_eq!(
            resolve(Some(&up), Some(&down), both, health),
            (w(100), Source::NodeOverride)
        );
        assert_eq!(
            resolve(Some(&fixed), Some(&up), none, health),
            (w(7), Source::NodeOverride)
        );
        assert_eq!(
            resolve(
                Some(&down),
                None,
                FileOverrides {
                    up: true,
                    down: false
                },
                health
            )
            .0,
            w(0)
        );
    }

    #[test]
    fn expiry() {
        let now = Instant::now();
        let o = Override::new(Force::Down, "x", now, Some(Duration::from_secs(60)));
        assert!(!o.expired(now + Duration::from_secs(59)));
        assert!(o.expired(now + Duration::from_secs(60)));
        assert!(
            !Override::new(Force::Down, "x", now, None).expired(now + Duration::from_secs(1 << 30))
        );
    }

    #[test]
    fn force_serializes_readably() {
        assert_eq!(
            serde_json::to_string(&Force::Up).unwrap(),
            r#"{"force":"up"}"#
        );
        assert_eq!(
            serde_json::to_string(&Force::Weight(w(5))).unwrap(),
            r#"{"force":"weight","weight":5}"#
        );
    }
}
