//! [`Reconciler`]: the owner of everything bigbro knows about the kernel it writes to. It
//! holds the kernel handles (IPVS, nf_tables, route netlink), the owned services as the last pass that
//! read them found them, which of them are dirty, the errors of the last pass and the
//! retry backoff, the services a previous configuration owned (orphans, deleted until a
//! read shows them gone), the desired state the last pass worked to and the destinations
//! draining at weight 0, and the VIP addresses on bigbro's interface as the last VIP pass
//! left them. The controller (`src/daemon/controller.rs`) decides *when* a pass
//! runs and builds the desired state; the reconciler decides *what* a pass reads and
//! writes.
//!
//! A full pass ([`Scope::Full`]) reads every owned service with one dump, which also
//! repairs hand edits. A dirty pass ([`Scope::Dirty`]) reads and compares only the services
//! whose desired state differs from what the kernel held when last read, and those whose
//! operations failed; every other service is left exactly as it was, unread. A dirty pass
//! is full all the same while the last reading is not whole (before the first full read,
//! after a failed read).
//!
//! It must never read, write or delete a service outside the owned keys it is given (plus
//! its orphans), nor a mark rule outside bigbro's own tables, nor an address outside
//! bigbro's own interface: the low-level passes in `pass.rs`, `marks.rs`, `daemons.rs` and
//! `vips.rs` are its only writers. Until some configuration of this run asks for VIP
//! addresses, it does not even look at route netlink. It keeps no
//! clock of its own beyond measuring drains (the caller passes the time) and never decides
//! which clusters run.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::vips::{self, VipsReport};
use super::{daemons, marks, observe, pass_with, Desired, Observed, Reading};
use super::{differs, IpvsKernel, MarkTable};
use crate::config::SyncDaemon;
use crate::desired::{Built, Draining};
use crate::ipvs::{self, Op, ServiceKey};
use crate::nft::MarkRule;
use crate::route::RouteKernel;

/// Which owned services a pass reads and compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every owned service, read with one dump. `repair`: the pass looks for changes made
    /// behind bigbro's back (anti-entropy), and what it writes is logged as a repair.
    Full { repair: bool },
    /// The dirty services only: those whose desired state differs from the last reading,
    /// and those with failed operations. `Some(keys)`: only the services in `keys` were
    /// built again, so only they (besides those with errors and orphans) can be dirty;
    /// `None`: any owned service can be.
    Dirty(Option<BTreeSet<ServiceKey>>),
}

/// What one IPVS pass did.
#[derive(Debug, Default)]
pub struct PassOutcome {
    /// Operations the kernel accepted, in order.
    pub applied: Vec<Op>,
    /// What still failed: operations, and a read that failed (each is also in
    /// [`Reconciler::errors`] until a pass over its service succeeds).
    pub failures: Vec<ipvs::Error>,
    /// Whether it read every owned service.
    pub full: bool,
    /// How many owned services it read and compared.
    pub services: usize,
}

impl PassOutcome {
    pub fn is_clean(&self) -> bool {
        self.failures.is_empty()
    }
}

/// What one mark-rule pass found and did.
#[derive(Debug, Default)]
pub struct MarksOutcome {
    /// How the kernel differed from the wanted rules, before repair.
    pub differences: Vec<String>,
    pub wrote: bool,
    /// The failure to read or write them, if any.
    pub error: Option<String>,
}

/// What one sync-daemon pass did.
#[derive(Debug, Default)]
pub struct DaemonsOutcome {
    pub applied: Vec<Op>,
    pub failures: Vec<ipvs::Error>,
}

/// See the module notes.
pub struct Reconciler<K, M, R> {
    kernel: Arc<K>,
    marks: Arc<M>,
    route: Arc<R>,
    /// The owned services as the last pass that read them found them.
    observed: BTreeMap<ServiceKey, Observed>,
    /// Whether `observed` holds every owned service as last read (false before the first
    /// full read and after a failed read): only then may a pass read just the dirty ones.
    observed_whole: bool,
    /// The last pass's errors, by service (failed reads under no key).
    errors: BTreeMap<Option<ServiceKey>, Vec<String>>,
    /// Services a previous configuration owned, deleted until a read shows them gone.
    orphans: BTreeSet<ServiceKey>,
    /// What the last pass wanted (before drains) and asked for (with them).
    built: Built,
    /// Destinations at weight 0 until their connections are done.
    draining: Draining,
    /// The current retry delay after failed passes.
    backoff: Option<Duration>,
    /// Whether the mark rules matched at the last mark pass.
    marks_in_sync: bool,
    /// The last mark pass's error.
    marks_error: Option<String>,
    /// Whether bigbro manages the sync daemons (configured now or earlier in this run).
    managed_daemons: bool,
    /// The VIP addresses: the interface they go on (the first one asked for in this run),
    /// once bigbro manages them (some cluster had vips with `vip_mode: address`).
    vip_interface: Option<String>,
    /// The last VIP pass, for the status.
    vips: Option<VipsReport>,
}

impl<K: IpvsKernel, M: MarkTable, R: RouteKernel> Reconciler<K, M, R> {
    pub fn new(kernel: Arc<K>, marks: Arc<M>, route: Arc<R>) -> Reconciler<K, M, R> {
        Reconciler {
            kernel,
            marks,
            route,
            observed: BTreeMap::new(),
            observed_whole: false,
            errors: BTreeMap::new(),
            orphans: BTreeSet::new(),
            built: Built::default(),
            draining: Draining::new(),
            backoff: None,
            marks_in_sync: false,
            marks_error: None,
            managed_daemons: false,
            vip_interface: None,
            vips: None,
        }
    }

    /// Reads `keys` (one dump) without keeping what it found: to look for a service
    /// before deciding to adopt it.
    pub async fn read(&self, keys: &BTreeSet<ServiceKey>) -> Result<Vec<Observed>, ipvs::Error> {
        observe(&*self.kernel, keys).await
    }

    /// Reads every owned service (one dump) and keeps it as the whole reading. A failure
    /// changes nothing.
    pub async fn read_all(&mut self, owned: &BTreeSet<ServiceKey>) -> Result<(), ipvs::Error> {
        let observed = observe(&*self.kernel, owned).await?;
        self.record(None, observed);
        Ok(())
    }

    /// Whether the last reading holds every owned service, so a pass may read only the
    /// dirty ones.
    pub fn has_whole_reading(&self) -> bool {
        self.observed_whole
    }

    /// The owned services as the last pass that read them found them.
    pub fn observed(&self) -> &BTreeMap<ServiceKey, Observed> {
        &self.observed
    }

    /// The last pass's errors by service (a failed read under `None`).
    pub fn errors(&self) -> &BTreeMap<Option<ServiceKey>, Vec<String>> {
        &self.errors
    }

    /// Services to delete because the configuration no longer owns them (they stay
    /// owned by the reconciler until a read shows them gone).
    pub fn orphan(&mut self, keys: impl IntoIterator<Item = ServiceKey>) {
        self.orphans.extend(keys);
    }

    /// Builds the desired state again with `build`, which updates in place what the last
    /// pass wanted and asked for and the drains (see `desired::rebuild`).
    pub fn rebuild<T>(&mut self, build: impl FnOnce(&mut Built, &mut Draining) -> T) -> T {
        build(&mut self.built, &mut self.draining)
    }

    /// Sets the desired state outright, without drains (for tests and tools).
    pub fn want(&mut self, desired: Desired) {
        self.built = Built {
            wanted: desired.clone(),
            desired,
        };
    }

    /// The desired state the next pass works to.
    pub fn desired(&self) -> &Desired {
        &self.built.desired
    }

    /// The delay before the next retry after a failure: `first`, then doubling up to
    /// `cap`. A clean pass starts the sequence again.
    pub fn retry_delay(&mut self, first: Duration, cap: Duration) -> Duration {
        let delay = self
            .backoff
            .map_or(first, |b| (b * 2).min(cap))
            .max(Duration::from_millis(10));
        self.backoff = Some(delay);
        delay
    }

    /// One IPVS pass over `owned` (the configuration's keys; orphans are added) in
    /// `scope`, towards the desired state last built.
    pub async fn pass(&mut self, scope: Scope, owned: &BTreeSet<ServiceKey>) -> PassOutcome {
        let mut owned = owned.clone();
        owned.extend(self.orphans.iter().copied());
        let (keys, reading, repair) = match scope {
            Scope::Full { repair } => (owned, Reading::Dump, repair),
            Scope::Dirty(_) if !self.observed_whole => (owned, Reading::Dump, false),
            Scope::Dirty(None) => (
                self.dirty(&owned, owned.iter().copied()),
                Reading::Each,
                false,
            ),
            // Only the services just built can have changed, besides those with errors
            // and orphans still to delete.
            Scope::Dirty(Some(built)) => {
                let errors = self.errors.keys().flatten().copied();
                let candidates = built
                    .into_iter()
                    .chain(errors)
                    .chain(self.orphans.iter().copied());
                (self.dirty(&owned, candidates), Reading::Each, false)
            }
        };
        let full = reading == Reading::Dump;
        let mut report = pass_with(&*self.kernel, &keys, &self.built.desired, reading).await;
        for op in &report.applied {
            if repair {
                tracing::warn!(
                    "repaired a change made behind bigbro's back: ipvsadm {}",
                    op.ipvsadm_args()
                );
            } else {
                tracing::info!("ipvsadm {}", op.ipvsadm_args());
            }
        }
        // Errors of services outside a partial pass stay (there are none: a service with
        // errors is dirty, and a failed read makes the next pass full).
        self.errors
            .retain(|k, _| !full && k.is_some_and(|k| !keys.contains(&k)));
        for e in &report.failed {
            tracing::error!("{e} (retried on the next pass)");
            let key = match e.operation() {
                ipvs::Operation::Apply(op) => op.service().copied(),
                _ => None,
            };
            self.errors.entry(key).or_default().push(e.to_string());
        }
        if let Some(e) = &report.dump_error {
            tracing::error!("{e}; nothing was changed (retried on the next pass)");
            self.errors.entry(None).or_default().push(e.to_string());
        }
        match report.observed.take() {
            Some(observed) => self.record((!full).then_some(&keys), observed),
            None => {
                self.observed_whole = false;
                if let Some(e) = &report.reread_error {
                    tracing::warn!(
                        "{e}; the status shows the previous reading until the next pass, which reads every service"
                    );
                }
            }
        }
        let mut failures = report.failed;
        failures.extend(report.dump_error);
        if failures.is_empty() && self.vips.as_ref().is_none_or(VipsReport::is_clean) {
            self.backoff = None;
        }
        PassOutcome {
            applied: report.applied,
            failures,
            full,
            services: keys.len(),
        }
    }

    /// Takes a reading: of every owned service (`read` None), or of the services in
    /// `read` only (the rest stays as last read).
    fn record(&mut self, read: Option<&BTreeSet<ServiceKey>>, observed: Vec<Observed>) {
        let observed = observed.into_iter().map(|o| (o.service.service.key, o));
        match read {
            Some(keys) => {
                self.observed.retain(|k, _| !keys.contains(k));
                self.observed.extend(observed);
            }
            None => {
                self.observed = observed.collect();
                self.observed_whole = true;
            }
        }
        let present = &self.observed;
        self.orphans.retain(|k| present.contains_key(k));
    }

    /// The owned services among `candidates` a dirty pass must read: those whose desired
    /// state differs from what the kernel held when last read (a weight, a node, a drain
    /// that ended, a service to create or delete), and those whose operations failed.
    fn dirty(
        &self,
        owned: &BTreeSet<ServiceKey>,
        candidates: impl Iterator<Item = ServiceKey>,
    ) -> BTreeSet<ServiceKey> {
        let desired = &self.built.desired;
        candidates
            .filter(|k| {
                owned.contains(k)
                    && (self.errors.contains_key(&Some(*k))
                        || differs(desired.services.get(k), self.observed.get(k)))
            })
            .collect()
    }

    /// Makes bigbro's nf_tables hold exactly `wanted`. `repair`: an anti-entropy check,
    /// so a rewrite of rules that were in sync is logged as a repair.
    pub async fn marks_pass(&mut self, wanted: &[MarkRule], repair: bool) -> MarksOutcome {
        let report = marks::pass(&*self.marks, wanted).await;
        if report.wrote {
            let what = report.differences.join("; ");
            if repair && self.marks_in_sync {
                tracing::warn!(
                    "repaired the nf_tables mark rules changed behind bigbro's back: {what}"
                );
            } else {
                tracing::info!(
                    "nf_tables mark rules updated ({} rules): {what}",
                    wanted.len()
                );
            }
        }
        let error = report.error.map(|e| e.to_string());
        if let Some(e) = &error {
            if self.marks_error.as_ref() != Some(e) {
                tracing::error!("nf_tables mark rules: {e} (retried on the next pass)");
            }
        }
        self.marks_in_sync = error.is_none();
        self.marks_error = error.clone();
        MarksOutcome {
            differences: report.differences,
            wrote: report.wrote,
            error,
        }
    }

    /// Makes the kernel run exactly the sync daemons `config` asks for. Returns None
    /// (touching nothing) while bigbro has never been asked to manage them in this run.
    pub async fn daemons_pass(&mut self, config: Option<&SyncDaemon>) -> Option<DaemonsOutcome> {
        if config.is_none() && !self.managed_daemons {
            return None;
        }
        self.managed_daemons = true;
        let wanted = daemons::desired(config);
        let report = daemons::pass(&*self.kernel, &wanted).await;
        for op in &report.applied {
            tracing::info!("ipvsadm {}", op.ipvsadm_args());
        }
        let mut failures = report.failed;
        failures.extend(report.dump_error);
        for e in &failures {
            tracing::error!("IPVS sync daemon: {e}");
        }
        Some(DaemonsOutcome {
            applied: report.applied,
            failures,
        })
    }

    /// Makes bigbro's interface hold exactly `wanted` (see `vips.rs`). Returns None,
    /// touching nothing (not even creating the interface), while bigbro has never been
    /// asked to manage VIP addresses in this run (`manage`: some cluster has vips with
    /// `vip_mode: address`). The interface is the one first asked for in this run.
    /// `repair`: an anti-entropy check, so a change is logged as a repair.
    pub async fn vips_pass(
        &mut self,
        interface: &str,
        wanted: &BTreeSet<IpAddr>,
        manage: bool,
        repair: bool,
    ) -> Option<&VipsReport> {
        if !manage && self.vip_interface.is_none() {
            return None;
        }
        let interface = self
            .vip_interface
            .get_or_insert_with(|| interface.to_string())
            .clone();
        let report = vips::pass(&*self.route, &interface, wanted).await;
        for op in &report.applied {
            if repair {
                tracing::warn!(
                    "repaired a change made behind bigbro's back: {}",
                    op.ip_command(&interface)
                );
            } else {
                tracing::info!("{}", op.ip_command(&interface));
            }
        }
        for e in &report.failures {
            tracing::error!("{e} (retried on the next pass)");
        }
        let before = self.vips.as_ref().map(|v| &v.conflicts);
        if before != Some(&report.conflicts) {
            for c in &report.conflicts {
                tracing::warn!("{c}");
            }
        }
        if report.is_clean() && self.errors.is_empty() {
            self.backoff = None;
        }
        self.vips = Some(report);
        self.vips.as_ref()
    }

    /// The last VIP pass (None while bigbro does not manage VIP addresses).
    pub fn vips(&self) -> Option<&VipsReport> {
        self.vips.as_ref()
    }
}
