//! The nf_tables mark rules, reconciled like IPVS: read bigbro's tables back, compare them
//! with the rules the running clusters want, and rewrite them (one atomic batch) only when
//! they differ, reporting how they differed (a table deleted by hand, a rule edited...).
//!
//! [`MarkTable`] is the seam: the real [`Nft`] connection, or [`FakeMarks`] for fast unit
//! tests (never the test of the kernel feature). Only bigbro's own tables are ever read or
//! written.

use std::future::Future;
#[cfg(any(test, feature = "testing"))]
use std::sync::Mutex;

use crate::nft::{Live, MarkRule, Nft, NftError};

/// What the reconciler needs from nf_tables.
pub trait MarkTable: Send + Sync {
    /// bigbro's tables as the kernel holds them.
    fn read(&self) -> impl Future<Output = Result<Live, NftError>> + Send;
    /// Makes bigbro's tables hold exactly `rules` (one atomic batch).
    fn apply(&self, rules: &[MarkRule]) -> impl Future<Output = Result<(), NftError>> + Send;
}

impl MarkTable for Nft {
    async fn read(&self) -> Result<Live, NftError> {
        Nft::read(self).await
    }
    async fn apply(&self, rules: &[MarkRule]) -> Result<(), NftError> {
        Nft::apply(self, rules).await
    }
}

/// What one mark pass found and did.
#[derive(Debug, Default)]
pub struct MarksReport {
    /// How the kernel differed from the wanted rules (empty: it matched).
    pub differences: Vec<String>,
    /// Whether the rules were rewritten.
    pub wrote: bool,
    /// A failure to read or write; the kernel keeps what it had.
    pub error: Option<NftError>,
}

/// Reads bigbro's tables and rewrites them if they differ from `wanted`. When nothing is
/// wanted and the tables cannot even be read (no nf_tables, no permission), that is not an
/// error: a configuration without vips never needs nf_tables.
pub async fn pass<M: MarkTable>(table: &M, wanted: &[MarkRule]) -> MarksReport {
    let mut report = MarksReport::default();
    match table.read().await {
        Ok(live) => report.differences = live.differences(wanted),
        Err(_) if wanted.is_empty() => return report,
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    }
    if report.differences.is_empty() {
        return report;
    }
    match table.apply(wanted).await {
        Ok(()) => report.wrote = true,
        Err(e) => report.error = Some(e),
    }
    report
}

/// An in-memory stand-in for bigbro's tables, for unit tests.
#[cfg(any(test, feature = "testing"))]
#[derive(Default)]
pub struct FakeMarks {
    rules: Mutex<Vec<MarkRule>>,
    tables: Mutex<bool>,
    fail: Mutex<Option<i32>>,
    /// How many times the rules were written.
    pub writes: Mutex<usize>,
}

#[cfg(any(test, feature = "testing"))]
impl FakeMarks {
    pub fn new() -> FakeMarks {
        FakeMarks::default()
    }
    /// The rules the fake holds.
    pub fn rules(&self) -> Vec<MarkRule> {
        self.rules.lock().unwrap().clone()
    }
    /// Deletes the tables behind the reconciler's back (`nft delete table ip bigbro`).
    pub fn delete_tables(&self) {
        self.rules.lock().unwrap().clear();
        *self.tables.lock().unwrap() = false;
    }
    /// Makes every read and write fail with `errno` (None: succeed again).
    pub fn fail(&self, errno: Option<i32>) {
        *self.fail.lock().unwrap() = errno;
    }
    fn check(&self, what: &str) -> Result<(), NftError> {
        match *self.fail.lock().unwrap() {
            Some(errno) => Err(NftError::Read {
                what: what.into(),
                errno,
            }),
            None => Ok(()),
        }
    }
}

#[cfg(any(test, feature = "testing"))]
impl MarkTable for FakeMarks {
    async fn read(&self) -> Result<Live, NftError> {
        self.check("tables")?;
        let rules = self.rules();
        let mut tables: Vec<_> = rules.iter().map(|r| r.family()).collect();
        tables.dedup();
        if *self.tables.lock().unwrap() && tables.is_empty() {
            tables.push(crate::nft::Family::Ip);
        }
        Ok(Live {
            tables,
            rules,
            unknown: Vec::new(),
        })
    }
    async fn apply(&self, rules: &[MarkRule]) -> Result<(), NftError> {
        self.check("batch")?;
        let mut sorted: Vec<MarkRule> = rules.to_vec();
        // The kernel holds ip before ip6, each in the given order.
        sorted.sort_by_key(|r| r.family() != crate::nft::Family::Ip);
        *self.rules.lock().unwrap() = sorted;
        *self.tables.lock().unwrap() = !rules.is_empty();
        *self.writes.lock().unwrap() += 1;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::nft::{L4Proto, PortRange};

    /// A rule for 192.0.2.10:80/tcp marked `mark` (shared with the reconciler's tests).
    pub(crate) fn rule(mark: u32) -> MarkRule {
        MarkRule {
            daddr: "192.0.2.10".parse().unwrap(),
            proto: L4Proto::Tcp,
            ports: PortRange::single(80),
            iifname: None,
            mark,
        }
    }

    #[tokio::test]
    async fn writes_only_when_different_and_repairs_a_deleted_table() {
        let t = FakeMarks::new();
        let r = pass(&t, &[rule(7)]).await;
        assert!(r.wrote && r.error.is_none());
        assert!(!r.differences.is_empty());
        let r = pass(&t, &[rule(7)]).await;
        assert!(!r.wrote && r.differences.is_empty(), "{:?}", r.differences);
        t.delete_tables();
        let r = pass(&t, &[rule(7)]).await;
        assert!(r.wrote);
        assert_eq!(t.rules(), vec![rule(7)]);
        let r = pass(&t, &[]).await;
        assert!(r.wrote, "an unwanted table is removed");
        assert!(t.rules().is_empty());
        assert_eq!(*t.writes.lock().unwrap(), 3);
    }

    #[tokio::test]
    async fn unreadable_tables_matter_only_when_rules_are_wanted() {
        let t = FakeMarks::new();
        t.fail(Some(95));
        assert!(pass(&t, &[]).await.error.is_none());
        let r = pass(&t, &[rule(7)]).await;
        assert!(r.error.is_some() && !r.wrote);
    }
}
