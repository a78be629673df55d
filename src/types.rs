//! Small newtypes shared by every layer, so that a port is never passed where a weight
//! belongs and a fwmark is never zero.
//!
//! These types carry no behaviour beyond construction and display: they exist to make
//! signatures say what they mean. They must never depend on any other bigbro module.

use std::fmt;

/// An IPVS firewall mark (`ipvsadm -f N`). Zero is not a valid fwmark service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Fwmark(u32);

impl Fwmark {
    /// `None` for 0, which the kernel rejects as a fwmark service.
    pub fn new(mark: u32) -> Option<Fwmark> {
        (mark != 0).then_some(Fwmark(mark))
    }
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Fwmark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An IPVS real-server weight. The kernel takes an int; ipvsadm (and bigbro) limit it
/// to 0..=65535. Construction clamps, so arithmetic on health can never overflow it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Weight(u32);

impl Weight {
    pub const MAX: Weight = Weight(65535);
    pub const ZERO: Weight = Weight(0);

    /// Clamps to 0..=65535.
    pub const fn clamped(value: u64) -> Weight {
        Weight(if value > 65535 { 65535 } else { value as u32 })
    }
    /// Clamps a signed value (negative health is 0).
    pub fn from_signed(value: i64) -> Weight {
        Weight(value.clamp(0, 65535) as u32)
    }
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A cluster's name as used in the API (`/cluster/NAME`), logs and override files.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct ClusterName(pub String);

impl ClusterName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fwmark_zero_is_rejected() {
        assert!(Fwmark::new(0).is_none());
        assert_eq!(Fwmark::new(7).unwrap().get(), 7);
    }

    #[test]
    fn weight_clamps_both_ways() {
        assert_eq!(Weight::clamped(70_000).get(), 65535);
        assert_eq!(Weight::from_signed(-5).get(), 0);
        assert_eq!(Weight::from_signed(87).get(), 87);
    }
}
