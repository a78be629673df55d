//! The seam between whoever drives VIP addresses (the reconciler, once wired) and route
//! netlink: ensure the owned interface, list the namespace's addresses, apply changes to
//! the owned interface; implemented by the real [`Client`] and by an in-memory fake.
//!
//! The fake exists for fast unit tests of the ownership rules and of the reconciler's
//! policy around them. It answers like the kernel does (EEXIST, EADDRNOTAVAIL, ENODEV) but
//! it is never the test of a kernel feature: those run against the real kernel in the test
//! bed (`tests/kernel_route.rs`).

use std::future::Future;

use super::client::Client;
use super::error::Error;
use super::model::{AddrOp, Interface, LocalAddr};

/// What a VIP pass needs from route netlink.
pub trait RouteKernel: Send + Sync {
    /// The owned interface `name`, created (kind dummy) if missing and set up if down;
    /// `Error::NotDummy` with nothing changed if a non-dummy interface holds the name.
    fn ensure_interface(&self, name: &str)
        -> impl Future<Output = Result<Interface, Error>> + Send;
    /// Every address of the namespace (one dump). The caller splits it by owner.
    fn addresses(&self) -> impl Future<Output = Result<Vec<LocalAddr>, Error>> + Send;
    /// Applies `ops` to `interface` in order and answers one result per op.
    fn apply(
        &self,
        interface: &Interface,
        ops: &[AddrOp],
    ) -> impl Future<Output = Vec<Result<(), Error>>> + Send;
}

impl RouteKernel for Client {
    async fn ensure_interface(&self, name: &str) -> Result<Interface, Error> {
        Client::ensure_interface(self, name).await
    }
    async fn addresses(&self) -> Result<Vec<LocalAddr>, Error> {
        Client::addresses(self).await
    }
    async fn apply(&self, interface: &Interface, ops: &[AddrOp]) -> Vec<Result<(), Error>> {
        Client::apply(self, interface, ops).await
    }
}

// Compiled always, like the IPVS and mark fakes of `src/reconcile/`: the daemon on fakes
// (`src/daemon/testing.rs`) runs on it too.
pub use fake::FakeRoute;

mod fake {
    use std::sync::Mutex;

    use nix::libc;

    use super::*;
    use crate::route::error::Operation;
    use crate::route::model::{invalid_name, Link};

    #[derive(Default)]
    struct State {
        links: Vec<Link>,
        addrs: Vec<LocalAddr>,
        next_index: u32,
    }

    /// An in-memory namespace (interfaces and addresses) that answers like the kernel.
    #[derive(Default)]
    pub struct FakeRoute {
        state: Mutex<State>,
        /// Errno to answer for every op whose description contains the key text.
        failures: Mutex<Vec<(String, i32)>>,
        /// Every op applied successfully, in order.
        pub log: Mutex<Vec<AddrOp>>,
    }

    impl FakeRoute {
        /// A namespace holding `lo` (index 1, up, 127.0.0.1/8 and ::1/128).
        pub fn new() -> FakeRoute {
            let fake = FakeRoute::default();
            let lo = fake.add_link("lo", None);
            fake.hand_add(lo, "127.0.0.1".parse().unwrap(), 8);
            fake.hand_add(lo, "::1".parse().unwrap(), 128);
            fake
        }

        /// Creates an interface behind bigbro's back (`kind` `None`: a NIC or `lo`), up.
        pub fn add_link(&self, name: &str, kind: Option<&str>) -> u32 {
            let mut state = self.state.lock().unwrap();
            state.next_index += 1;
            let index = state.next_index;
            state.links.push(Link {
                index,
                name: name.into(),
                kind: kind.map(str::to_string),
                up: true,
            });
            index
        }

        pub fn link(&self, name: &str) -> Option<Link> {
            let state = self.state.lock().unwrap();
            state.links.iter().find(|l| l.name == name).cloned()
        }

        /// `ip link set NAME down`, behind bigbro's back.
        pub fn set_down(&self, name: &str) {
            let mut state = self.state.lock().unwrap();
            if let Some(link) = state.links.iter_mut().find(|l| l.name == name) {
                link.up = false;
            }
        }

        /// `ip addr add`, behind bigbro's back.
        pub fn hand_add(&self, index: u32, addr: std::net::IpAddr, prefix_len: u8) {
            let mut state = self.state.lock().unwrap();
            let interface = state
                .links
                .iter()
                .find(|l| l.index == index)
                .expect("hand_add on an existing interface")
                .name
                .clone();
            state.addrs.push(LocalAddr {
                index,
                interface,
                addr,
                prefix_len,
            });
        }

        /// `ip addr del`, behind bigbro's back.
        pub fn hand_remove(&self, index: u32, addr: std::net::IpAddr) {
            let mut state = self.state.lock().unwrap();
            state
                .addrs
                .retain(|a| !(a.index == index && a.addr == addr));
        }

        /// Every address, sorted, as the fake holds it.
        pub fn all(&self) -> Vec<LocalAddr> {
            let mut all = self.state.lock().unwrap().addrs.clone();
            all.sort();
            all
        }

        /// Makes every future op whose `Display` (with interface) contains `needle` fail
        /// with `errno`.
        pub fn fail_ops_matching(&self, needle: &str, errno: i32) {
            self.failures
                .lock()
                .unwrap()
                .push((needle.to_string(), errno));
        }

        pub fn clear_failures(&self) {
            self.failures.lock().unwrap().clear();
        }

        fn apply_one(&self, interface: &Interface, op: &AddrOp) -> Result<(), i32> {
            let text = Operation::Apply {
                op: *op,
                interface: interface.name.clone(),
            }
            .to_string();
            if let Some((_, errno)) = self
                .failures
                .lock()
                .unwrap()
                .iter()
                .find(|(needle, _)| text.contains(needle.as_str()))
            {
                return Err(*errno);
            }
            let mut state = self.state.lock().unwrap();
            if !state.links.iter().any(|l| l.index == interface.index) {
                return Err(libc::ENODEV);
            }
            let (addr, prefix_len) = (op.addr(), op.prefix_len());
            match op {
                AddrOp::Add(_) => {
                    // IPv4 refuses the same address and prefix twice; IPv6 the same
                    // address whatever the prefix.
                    if state.addrs.iter().any(|a| {
                        a.index == interface.index
                            && a.addr == addr
                            && (addr.is_ipv6() || a.prefix_len == prefix_len)
                    }) {
                        return Err(libc::EEXIST);
                    }
                    state.addrs.push(LocalAddr {
                        index: interface.index,
                        interface: interface.name.clone(),
                        addr,
                        prefix_len,
                    });
                }
                AddrOp::Remove { .. } => {
                    let before = state.addrs.len();
                    state.addrs.retain(|a| {
                        !(a.index == interface.index
                            && a.addr == addr
                            && a.prefix_len == prefix_len)
                    });
                    if state.addrs.len() == before {
                        return Err(libc::EADDRNOTAVAIL);
                    }
                }
            }
            Ok(())
        }
    }

    impl RouteKernel for FakeRoute {
        async fn ensure_interface(&self, name: &str) -> Result<Interface, Error> {
            let op = Operation::ReadInterface(name.to_string());
            if let Some(reason) = invalid_name(name) {
                return Err(Error::BadName {
                    op: Box::new(op),
                    name: name.to_string(),
                    reason,
                });
            }
            let link = match self.link(name) {
                Some(link) => link,
                None => {
                    self.add_link(name, Some("dummy"));
                    self.set_down(name);
                    self.link(name).expect("just created")
                }
            };
            if !link.is_dummy() {
                return Err(Error::NotDummy {
                    op: Box::new(op),
                    name: name.to_string(),
                    kind: link.kind,
                });
            }
            let mut state = self.state.lock().unwrap();
            if let Some(l) = state.links.iter_mut().find(|l| l.index == link.index) {
                l.up = true;
            }
            Ok(link.interface())
        }

        async fn addresses(&self) -> Result<Vec<LocalAddr>, Error> {
            Ok(self.all())
        }

        async fn apply(&self, interface: &Interface, ops: &[AddrOp]) -> Vec<Result<(), Error>> {
            ops.iter()
                .map(|op| {
                    self.apply_one(interface, op)
                        .map(|()| self.log.lock().unwrap().push(*op))
                        .map_err(|errno| {
                            let operation = Operation::Apply {
                                op: *op,
                                interface: interface.name.clone(),
                            };
                            Error::from_errno(operation, errno)
                        })
                })
                .collect()
        }
    }
}
