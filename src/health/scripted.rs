//! A scripted `Prober` for tests on tokio's paused clock: each target answers what the test
//! says (a health, a failure, after a delay, or never), and every probe start is recorded
//! with how many probes of that target were in flight.
//!
//! It touches no network and is meant only for tests of the scheduler, the weight driver and
//! the daemon; production code uses `NetProber`. Compiled only for tests (`cfg(test)`, or
//! the `testing` feature, Cargo.toml): never into the shipped binary.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::probe::{ProbeResult, Prober};
use super::target::Target;

/// What a scripted target does when probed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Script {
    /// Answers `result` after `after`.
    Answer {
        result: ProbeResult,
        after: Duration,
    },
    /// Never answers (the scheduler's deadline cuts it off).
    Hang,
}

impl Script {
    /// Answers `health` at once.
    pub fn healthy(health: u16) -> Script {
        Script::Answer {
            result: Ok(health),
            after: Duration::ZERO,
        }
    }
}

#[derive(Default)]
struct State {
    scripts: HashMap<Target, Script>,
    default: Option<Script>,
    starts: Vec<(Target, Instant)>,
    in_flight: HashMap<Target, usize>,
    max_in_flight: usize,
}

/// A prober whose answers are set by the test. Clones share state.
#[derive(Clone, Default)]
pub struct ScriptedProber {
    state: Arc<Mutex<State>>,
}

impl ScriptedProber {
    /// Every target answers health 100 at once unless told otherwise.
    pub fn new() -> ScriptedProber {
        let p = ScriptedProber::default();
        p.set_default(Script::healthy(100));
        p
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set(&self, target: &Target, script: Script) {
        self.lock().scripts.insert(target.clone(), script);
    }

    pub fn set_default(&self, script: Script) {
        self.lock().default = Some(script);
    }

    /// Every probe start so far, in order.
    pub fn starts(&self) -> Vec<(Target, Instant)> {
        self.lock().starts.clone()
    }

    /// The start times of one target's probes.
    pub fn starts_of(&self, target: &Target) -> Vec<Instant> {
        let state = self.lock();
        let of_target = state.starts.iter().filter(|(t, _)| t == target);
        of_target.map(|(_, at)| *at).collect()
    }

    /// The most probes of one target that were ever running at the same time.
    pub fn max_in_flight_per_target(&self) -> usize {
        self.lock().max_in_flight
    }
}

/// Counts a probe as in flight until it finishes or is cancelled.
struct InFlight {
    state: Arc<Mutex<State>>,
    target: Target,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = state.in_flight.get_mut(&self.target) {
            *n -= 1;
        }
    }
}

impl Prober for ScriptedProber {
    fn probe(
        &self,
        target: &Target,
        _timeout: Duration,
        _deadline: Instant,
    ) -> impl Future<Output = ProbeResult> + Send {
        let script = {
            let mut state = self.lock();
            state.starts.push((target.clone(), Instant::now()));
            let n = state.in_flight.entry(target.clone()).or_default();
            *n += 1;
            let n = *n;
            state.max_in_flight = state.max_in_flight.max(n);
            let script = state.scripts.get(target).or(state.default.as_ref());
            script.cloned().unwrap_or(Script::Hang)
        };
        let guard = InFlight {
            state: self.state.clone(),
            target: target.clone(),
        };
        async move {
            let _guard = guard;
            match script {
                Script::Answer { result, after } => {
                    tokio::time::sleep(after).await;
                    result
                }
                Script::Hang => std::future::pending().await,
            }
        }
    }
}
