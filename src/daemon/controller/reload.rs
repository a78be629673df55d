//! The controller's reload: the configuration file is read again and, if valid, swapped
//! in whole. Clusters no longer configured are stopped (their services deleted as
//! orphans), changed clusters keep their nodes' state, new clusters found in the kernel
//! are adopted, and settings that need a restart are named. An invalid file changes
//! nothing at all.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{find, unix_now, Controller};
use crate::config::{self, Cluster};
use crate::daemon::adopt::Adopted;
use crate::daemon::handle::{Error, ReloadReport};
use crate::daemon::interpol;
use crate::daemon::status::Trigger;
use crate::desired;
use crate::desired::ClusterKeys;
use crate::ipvs::ServiceKey;
use crate::reconcile::{IpvsKernel, MarkTable};
use crate::route::RouteKernel;
use crate::weight::Initial;

impl<K: IpvsKernel + 'static, M: MarkTable + 'static, R: RouteKernel + 'static>
    Controller<K, M, R>
{
    pub(super) async fn reload(&mut self) -> Result<ReloadReport, Error> {
        let path = self.options.config_path.clone();
        tracing::info!("reloading {} (SIGHUP)", path.display());
        let now = unix_now();
        let new = match config::load(&path) {
            Ok(m) => Arc::new(self.options.cli.apply(m)),
            Err(errors) => {
                for line in errors.lines() {
                    tracing::error!("{line}");
                }
                tracing::error!(
                    "{} is not valid ({}); the running configuration is unchanged and nothing was touched",
                    path.display(),
                    errors.count_text()
                );
                self.daemon.reload.last_failure_unix = Some(now);
                self.daemon.reload.last_errors = errors.lines();
                self.metrics.reload(false, now);
                self.publish();
                return Err(Error::ConfigInvalid(errors));
            }
        };
        let old = std::mem::replace(&mut self.model, new.clone());
        let mut report = ReloadReport::default();
        let new_owned = desired::owned(&new);
        let orphans = desired::owned(&old)
            .into_iter()
            .filter(|k| !new_owned.contains(k));
        self.reconciler.orphan(orphans);
        for c in &old.clusters {
            if new.cluster(c.name.as_str()).is_none() {
                report.removed.push(c.name.clone());
                if self.running.contains_key(&c.name) {
                    tracing::info!(
                        "cluster {} ({}) is no longer configured: its services are deleted",
                        c.name,
                        c.fwmark
                    );
                    self.forget(&c.name).await;
                }
            }
        }
        let mut added = Vec::new();
        for c in &new.clusters {
            let Some(before) = old.cluster(c.name.as_str()) else {
                report.added.push(c.name.clone());
                added.push(c.clone());
                continue;
            };
            if before == c {
                continue;
            }
            report.changed.push(c.name.clone());
            if !self.running.contains_key(&c.name) {
                continue;
            }
            if before.fwmark != c.fwmark {
                tracing::info!(
                    "cluster {} moves from fwmark {} to {}",
                    c.name,
                    before.fwmark,
                    c.fwmark
                );
            }
            // Nodes that stay keep their state; new ones wait at their start weight (0
            // unless `start_weight` says otherwise) until healthy.
            let weight = c.initial_weight(true);
            self.set_policy(c, |_| Initial::Fresh(weight)).await;
            if let Some(run) = self.running.get_mut(&c.name) {
                if c.interpol.is_empty() {
                    run.remote.clear();
                }
                if run
                    .active
                    .is_some_and(|a| c.node(a).is_none() && !run.remote.contains_key(&a))
                {
                    run.active = None;
                }
            }
            if interpol::poller_changed(before, c) {
                self.pollers.start(c);
            }
        }
        if self.adopted && !added.is_empty() {
            let keys: BTreeSet<ServiceKey> = added.iter().map(Cluster::service_key).collect();
            match self.reconciler.read(&keys).await {
                Ok(observed) => {
                    for c in &added {
                        if let Some(main) = find(&observed, c.service_key()) {
                            tracing::info!(
                                "resuming previously running cluster {} from kernel state ({})",
                                c.name,
                                c.fwmark
                            );
                            self.adopt_cluster(c, Adopted::new(c, main)).await;
                        }
                    }
                }
                Err(e) => tracing::error!("{e}; new clusters are not adopted from the kernel"),
            }
        }
        let (a, b) = (&old.settings, &new.settings);
        if a.api != b.api {
            report.needs_restart.push("bigbro.api".into());
        }
        if a.data_dir != b.data_dir {
            report.needs_restart.push("bigbro.data_dir".into());
        }
        if a.state_dir != b.state_dir {
            report.needs_restart.push("bigbro.state_dir".into());
        }
        if a.vip_interface != b.vip_interface {
            report.needs_restart.push("bigbro.vip_interface".into());
        }
        for what in &report.needs_restart {
            tracing::warn!("{what} changed: it takes effect when the daemon restarts");
        }
        self.daemon.reload.last_success_unix = Some(now);
        self.daemon.reload.last_errors.clear();
        self.metrics.reload(true, now);
        tracing::info!(
            added = ?report.added.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
            removed = ?report.removed.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
            changed = ?report.changed.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
            "configuration reloaded"
        );
        self.pass(Trigger::Command, true).await;
        self.sync_daemons().await;
        Ok(report)
    }
}
