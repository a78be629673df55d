//! big_brother's linear ramp-up, exactly: `weight = health × elapsed / ramp_up_time`,
//! truncated, and the full health once `elapsed ≥ ramp_up_time`; `ramp_up_time = 0`
//! disables it. Pure arithmetic on durations (nanosecond precision, no floating point in the
//! weight), so the reference table (ramp 60 s, health 100: 30 s → 50, 45 s → 75, 120 s → 100)
//! holds exactly.
//!
//! It must never exceed `health` and never depend on a clock: elapsed time is passed in.

use std::time::Duration;

/// The ramped weight of a node with `health` that became healthy `elapsed` ago.
pub fn ramped(health: u16, elapsed: Duration, ramp_up_time: Duration) -> u16 {
    if ramp_up_time.is_zero() || elapsed >= ramp_up_time {
        return health;
    }
    let w = u128::from(health) * elapsed.as_nanos() / ramp_up_time.as_nanos();
    w as u16
}

/// How far through its ramp a node is, 0.0 ..= 1.0.
pub fn progress(elapsed: Duration, ramp_up_time: Duration) -> f64 {
    if ramp_up_time.is_zero() || elapsed >= ramp_up_time {
        return 1.0;
    }
    elapsed.as_secs_f64() / ramp_up_time.as_secs_f64()
}

/// How long a node with `health` must have ramped for to be at `weight` (the smallest such
/// time): used to resume a ramp from a weight adopted from the kernel.
pub fn elapsed_for(weight: u16, health: u16, ramp_up_time: Duration) -> Duration {
    if health == 0 || weight >= health || ramp_up_time.is_zero() {
        return ramp_up_time;
    }
    let ns = (u128::from(weight) * ramp_up_time.as_nanos()).div_ceil(u128::from(health));
    Duration::from_nanos(ns as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn big_brothers_table() {
        // node_spec.rb: ramp 60, health 100.
        assert_eq!(ramped(100, S(30), S(60)), 50);
        assert_eq!(ramped(100, S(45), S(60)), 75);
        assert_eq!(ramped(100, S(120), S(60)), 100);
    }

    #[test]
    fn truncates_and_finishes_exactly() {
        assert_eq!(ramped(100, S(0), S(60)), 0);
        assert_eq!(ramped(100, Duration::from_millis(599), S(60)), 0);
        assert_eq!(ramped(100, Duration::from_millis(600), S(60)), 1);
        assert_eq!(ramped(30, S(59), S(60)), 29);
        assert_eq!(ramped(30, S(60), S(60)), 30);
        assert_eq!(ramped(65535, S(30), S(60)), 32767);
        assert_eq!(
            ramped(100, S(0), S(0)),
            100,
            "ramp_up_time 0 disables the ramp"
        );
    }

    #[test]
    fn progress_runs_from_zero_to_one() {
        assert_eq!(progress(S(0), S(60)), 0.0);
        assert_eq!(progress(S(15), S(60)), 0.25);
        assert_eq!(progress(S(90), S(60)), 1.0);
        assert_eq!(progress(S(0), S(0)), 1.0);
    }

    #[test]
    fn resuming_lands_on_the_adopted_weight() {
        for (w, h) in [(1, 100), (50, 100), (37, 90), (99, 100), (7, 65535)] {
            let e = elapsed_for(w, h, S(60));
            assert_eq!(ramped(h, e, S(60)), w, "w={w} h={h}");
        }
        assert_eq!(elapsed_for(100, 80, S(60)), S(60));
    }
}
