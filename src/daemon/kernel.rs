//! The daemon's connections to IPVS, nf_tables and route netlink, opened lazily and again
//! after they fail, so a daemon started before `ip_vs` is loaded, or without permission,
//! keeps running, says exactly what is wrong (status, metrics, logs) and takes over once
//! it can.
//!
//! These are thin wrappers: every read and write goes to the real clients unchanged.

use tokio::sync::Mutex;

use std::sync::Arc;

use crate::ipvs::{self, DestEntry, Op, Operation, ServiceEntry, ServiceKey, SyncDaemon};
use crate::nft::{Live, MarkRule, Nft, NftError};
use crate::reconcile::{IpvsKernel, MarkTable};
use crate::route::{self, AddrOp, Interface, LocalAddr, RouteKernel};

/// The IPVS client, connected on first use and again after a connection failure.
#[derive(Default)]
pub struct LazyIpvs {
    client: Mutex<Option<Arc<ipvs::Client>>>,
}

impl LazyIpvs {
    pub fn new() -> LazyIpvs {
        LazyIpvs::default()
    }

    async fn get(&self) -> Result<Arc<ipvs::Client>, ipvs::Error> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = Arc::new(ipvs::Client::connect().await?);
        *slot = Some(c.clone());
        Ok(c)
    }
}

/// The connection error, restated for an operation that could not be sent.
fn unsent(e: &ipvs::Error, op: &Op) -> ipvs::Error {
    let operation = Box::new(Operation::Apply(op.clone()));
    match e {
        ipvs::Error::NotAvailable { .. } => ipvs::Error::NotAvailable { op: operation },
        ipvs::Error::Permission { .. } => ipvs::Error::Permission { op: operation },
        other => ipvs::Error::BadRequest {
            op: operation,
            reason: format!("not sent: {other}"),
        },
    }
}

impl IpvsKernel for LazyIpvs {
    async fn services(&self) -> Result<Vec<ServiceEntry>, ipvs::Error> {
        self.get().await?.services().await
    }
    async fn service(&self, key: &ServiceKey) -> Result<ServiceEntry, ipvs::Error> {
        self.get().await?.service(key).await
    }
    async fn dests(&self, key: &ServiceKey) -> Result<Vec<DestEntry>, ipvs::Error> {
        self.get().await?.dests(key).await
    }
    async fn daemons(&self) -> Result<Vec<SyncDaemon>, ipvs::Error> {
        self.get().await?.daemons().await
    }
    async fn apply(&self, ops: &[Op]) -> Vec<Result<(), ipvs::Error>> {
        match self.get().await {
            Ok(c) => c.apply(ops).await,
            Err(e) => ops.iter().map(|op| Err(unsent(&e, op))).collect(),
        }
    }
}

/// The nf_tables connection, opened on first use and again after it closed.
#[derive(Default)]
pub struct LazyNft {
    nft: Mutex<Option<Arc<Nft>>>,
}

impl LazyNft {
    pub fn new() -> LazyNft {
        LazyNft::default()
    }

    async fn get(&self) -> Result<Arc<Nft>, NftError> {
        let mut slot = self.nft.lock().await;
        if let Some(n) = slot.as_ref() {
            return Ok(n.clone());
        }
        let n = Arc::new(Nft::connect()?);
        *slot = Some(n.clone());
        Ok(n)
    }

    /// Drops a connection that reported itself closed, so the next call reconnects.
    async fn check<T>(&self, r: Result<T, NftError>) -> Result<T, NftError> {
        if matches!(r, Err(NftError::Closed { .. })) {
            *self.nft.lock().await = None;
        }
        r
    }
}

impl MarkTable for LazyNft {
    async fn read(&self) -> Result<Live, NftError> {
        let r = self.get().await?.read().await;
        self.check(r).await
    }
    async fn apply(&self, rules: &[MarkRule]) -> Result<(), NftError> {
        let r = self.get().await?.apply(rules).await;
        self.check(r).await
    }
}

/// The route netlink connection (VIP addresses), opened on first use and again after a
/// connection failure. Never opened while bigbro manages no VIP address.
#[derive(Default)]
pub struct LazyRoute {
    client: Mutex<Option<route::Client>>,
}

impl LazyRoute {
    pub fn new() -> LazyRoute {
        LazyRoute::default()
    }

    async fn get(&self) -> Result<route::Client, route::Error> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = route::Client::new()?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Drops a connection whose answers stopped coming, so the next call reconnects.
    async fn check<T>(&self, r: Result<T, route::Error>) -> Result<T, route::Error> {
        if matches!(
            r,
            Err(route::Error::NoAnswer { .. } | route::Error::Io { .. })
        ) {
            *self.client.lock().await = None;
        }
        r
    }
}

impl RouteKernel for LazyRoute {
    async fn ensure_interface(&self, name: &str) -> Result<Interface, route::Error> {
        let r = self.get().await?.ensure_interface(name).await;
        self.check(r).await
    }
    async fn addresses(&self) -> Result<Vec<LocalAddr>, route::Error> {
        let r = self.get().await?.addresses().await;
        self.check(r).await
    }
    async fn apply(&self, interface: &Interface, ops: &[AddrOp]) -> Vec<Result<(), route::Error>> {
        // The interface was just ensured over this same connection.
        match self.get().await {
            Ok(c) => c.apply(interface, ops).await,
            Err(e) => ops
                .iter()
                .map(|op| {
                    Err(route::Error::NoAnswer {
                        op: Box::new(route::Operation::Apply {
                            op: *op,
                            interface: interface.name.clone(),
                        }),
                        reason: format!("not sent: {e}"),
                    })
                })
                .collect(),
        }
    }
}
