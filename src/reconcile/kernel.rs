//! The seam between the reconciler and IPVS: the calls a pass needs (list services, read
//! one service, list one service's destinations, list the sync daemons, apply a batch),
//! implemented by the real netlink client and by an in-memory fake.
//!
//! The fake exists for fast unit tests of reconciliation logic (and of the daemon's
//! policy around it). It mimics the kernel's answers (EEXIST, ESRCH, ENOENT) but it is
//! never the test of a kernel feature: those run against the real kernel in the test bed.

#[cfg(any(test, feature = "testing"))]
use std::collections::BTreeMap;
use std::future::Future;
#[cfg(any(test, feature = "testing"))]
use std::net::IpAddr;
#[cfg(any(test, feature = "testing"))]
use std::sync::Mutex;

#[cfg(any(test, feature = "testing"))]
use nix::libc;

use crate::ipvs::{self, DestEntry, Op, ServiceEntry, ServiceKey, SyncDaemon};
#[cfg(any(test, feature = "testing"))]
use crate::ipvs::{DaemonState, Dest, Operation, Service, Stats};

/// What the reconciler needs from IPVS.
pub trait IpvsKernel: Send + Sync {
    /// Every service in the namespace (one dump). The caller filters to what it owns.
    fn services(&self) -> impl Future<Output = Result<Vec<ServiceEntry>, ipvs::Error>> + Send;
    /// One service (one request, not a dump); `ipvs::Error::ServiceNotFound` if absent.
    fn service(
        &self,
        key: &ServiceKey,
    ) -> impl Future<Output = Result<ServiceEntry, ipvs::Error>> + Send;
    /// The destinations of one service (one dump).
    fn dests(
        &self,
        key: &ServiceKey,
    ) -> impl Future<Output = Result<Vec<DestEntry>, ipvs::Error>> + Send;
    /// The running connection-sync daemons (one dump).
    fn daemons(&self) -> impl Future<Output = Result<Vec<SyncDaemon>, ipvs::Error>> + Send;
    /// Applies `ops` in order and answers one result per op.
    fn apply(&self, ops: &[Op]) -> impl Future<Output = Vec<Result<(), ipvs::Error>>> + Send;
}

impl IpvsKernel for ipvs::Client {
    async fn services(&self) -> Result<Vec<ServiceEntry>, ipvs::Error> {
        ipvs::Client::services(self).await
    }
    async fn service(&self, key: &ServiceKey) -> Result<ServiceEntry, ipvs::Error> {
        ipvs::Client::service(self, key).await
    }
    async fn dests(&self, key: &ServiceKey) -> Result<Vec<DestEntry>, ipvs::Error> {
        ipvs::Client::dests(self, key).await
    }
    async fn daemons(&self) -> Result<Vec<SyncDaemon>, ipvs::Error> {
        ipvs::Client::daemons(self).await
    }
    async fn apply(&self, ops: &[Op]) -> Vec<Result<(), ipvs::Error>> {
        ipvs::Client::apply(self, ops).await
    }
}

/// A service and its destinations keyed by (address, port), as the fake holds them.
#[cfg(any(test, feature = "testing"))]
type FakeService = (Service, BTreeMap<(IpAddr, u16), Dest>);

/// One read the fake answered (or refused), in the order they came: what tests count to
/// see how much of the table a pass reads.
#[cfg(any(test, feature = "testing"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// The dump of every service.
    Services,
    /// One service, read alone.
    Service(ServiceKey),
    /// The destinations of one service.
    Dests(ServiceKey),
    /// The sync daemons.
    Daemons,
}

/// An in-memory IPVS table that answers like the kernel does, for unit tests.
#[cfg(any(test, feature = "testing"))]
#[derive(Default)]
pub struct FakeKernel {
    table: Mutex<BTreeMap<ServiceKey, FakeService>>,
    daemons: Mutex<Vec<SyncDaemon>>,
    /// Errno every dump answers, until cleared.
    dump_failure: Mutex<Option<i32>>,
    /// Errno to answer for the next ops whose description contains the key text.
    failures: Mutex<Vec<(String, i32)>>,
    /// Every op applied successfully, in order.
    pub log: Mutex<Vec<Op>>,
    /// Every read asked for since the last [`FakeKernel::take_reads`], in order.
    reads: Mutex<Vec<Read>>,
}

#[cfg(any(test, feature = "testing"))]
impl FakeKernel {
    pub fn new() -> FakeKernel {
        FakeKernel::default()
    }

    /// Makes every future op whose `Display` contains `needle` fail with `errno` until
    /// [`FakeKernel::clear_failures`].
    pub fn fail_ops_matching(&self, needle: &str, errno: i32) {
        self.failures
            .lock()
            .unwrap()
            .push((needle.to_string(), errno));
    }

    /// Makes every read (services, one service, destinations, daemons) fail with `errno` until
    /// [`FakeKernel::clear_failures`].
    pub fn fail_dumps(&self, errno: i32) {
        *self.dump_failure.lock().unwrap() = Some(errno);
    }

    pub fn clear_failures(&self) {
        self.failures.lock().unwrap().clear();
        *self.dump_failure.lock().unwrap() = None;
    }

    /// The reads asked for since the last call (or since the fake was made), in order.
    pub fn take_reads(&self) -> Vec<Read> {
        std::mem::take(&mut *self.reads.lock().unwrap())
    }

    /// Records `read` and answers the dump failure, if one is set.
    fn dump(&self, read: Read, op: Operation) -> Result<(), ipvs::Error> {
        self.reads.lock().unwrap().push(read);
        match *self.dump_failure.lock().unwrap() {
            Some(errno) => Err(ipvs::Error::from_errno(op, errno)),
            None => Ok(()),
        }
    }

    /// The table in `ipvsadm -S -n` form, for assertions.
    pub fn save(&self) -> String {
        let table = self.table.lock().unwrap();
        let state: Vec<(Service, Vec<Dest>)> = table
            .values()
            .map(|(s, d)| (s.clone(), d.values().cloned().collect()))
            .collect();
        ipvs::save::save_text(&state)
    }

    /// Changes the table behind the reconciler's back, as an operator with ipvsadm would.
    pub fn hand_edit(&self, op: Op) {
        self.apply_one(&op).expect("hand edit applies");
    }

    fn apply_one(&self, op: &Op) -> Result<(), i32> {
        if let Some((_, errno)) = self
            .failures
            .lock()
            .unwrap()
            .iter()
            .find(|(needle, _)| op.to_string().contains(needle.as_str()))
        {
            return Err(*errno);
        }
        let mut table = self.table.lock().unwrap();
        match op {
            Op::AddService(s) => {
                if table.contains_key(&s.key) {
                    return Err(libc::EEXIST);
                }
                table.insert(s.key, (s.clone(), BTreeMap::new()));
            }
            Op::EditService(s) => {
                let entry = table.get_mut(&s.key).ok_or(libc::ESRCH)?;
                entry.0 = s.clone();
            }
            Op::DelService(k) => {
                table.remove(k).ok_or(libc::ESRCH)?;
            }
            Op::AddDest { service, dest } => {
                let entry = table.get_mut(service).ok_or(libc::ESRCH)?;
                if entry.1.contains_key(&(dest.addr, dest.port)) {
                    return Err(libc::EEXIST);
                }
                entry.1.insert((dest.addr, dest.port), dest.clone());
            }
            Op::EditDest { service, dest } => {
                let entry = table.get_mut(service).ok_or(libc::ESRCH)?;
                let slot = entry
                    .1
                    .get_mut(&(dest.addr, dest.port))
                    .ok_or(libc::ENOENT)?;
                *slot = dest.clone();
            }
            Op::DelDest {
                service,
                addr,
                port,
            } => {
                let entry = table.get_mut(service).ok_or(libc::ESRCH)?;
                entry.1.remove(&(*addr, *port)).ok_or(libc::ENOENT)?;
            }
            Op::Flush => table.clear(),
            Op::StartDaemon(d) => {
                let mut daemons = self.daemons.lock().unwrap();
                if daemons.iter().any(|r| r.state == d.state) {
                    return Err(libc::EEXIST);
                }
                daemons.push(d.clone());
            }
            Op::StopDaemon(state) => {
                let mut daemons = self.daemons.lock().unwrap();
                let before = daemons.len();
                daemons.retain(|r: &SyncDaemon| r.state != *state);
                if daemons.len() == before {
                    return Err(libc::ESRCH);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(any(test, feature = "testing"))]
impl IpvsKernel for FakeKernel {
    async fn services(&self) -> Result<Vec<ServiceEntry>, ipvs::Error> {
        self.dump(Read::Services, Operation::ListServices)?;
        Ok(self
            .table
            .lock()
            .unwrap()
            .values()
            .map(|(s, _)| ServiceEntry {
                service: s.clone(),
                stats: Stats::default(),
            })
            .collect())
    }
    async fn service(&self, key: &ServiceKey) -> Result<ServiceEntry, ipvs::Error> {
        let op = Operation::GetService(*key);
        self.dump(Read::Service(*key), op.clone())?;
        match self.table.lock().unwrap().get(key) {
            Some((s, _)) => Ok(ServiceEntry {
                service: s.clone(),
                stats: Stats::default(),
            }),
            None => Err(ipvs::Error::from_errno(op, libc::ESRCH)),
        }
    }
    async fn dests(&self, key: &ServiceKey) -> Result<Vec<DestEntry>, ipvs::Error> {
        self.dump(Read::Dests(*key), Operation::ListDests(*key))?;
        // Like the kernel: a missing service gives an empty dump, not an error.
        Ok(self
            .table
            .lock()
            .unwrap()
            .get(key)
            .map(|(_, d)| d.values().map(|d| DestEntry::from(d.clone())).collect())
            .unwrap_or_default())
    }
    async fn daemons(&self) -> Result<Vec<SyncDaemon>, ipvs::Error> {
        self.dump(Read::Daemons, Operation::ListDaemons)?;
        let mut out = self.daemons.lock().unwrap().clone();
        out.sort_by_key(|d| d.state == DaemonState::Backup);
        Ok(out)
    }
    async fn apply(&self, ops: &[Op]) -> Vec<Result<(), ipvs::Error>> {
        ops.iter()
            .map(|op| {
                self.apply_one(op)
                    .map(|()| self.log.lock().unwrap().push(op.clone()))
                    .map_err(|errno| ipvs::Error::from_errno(Operation::Apply(op.clone()), errno))
            })
            .collect()
    }
}
