//! The route netlink client: one `rtnetlink` connection (netlink-proto underneath, the same
//! crate the nft layer uses), the requests of `message.rs` sent one at a time, every kernel
//! answer turned into a typed [`Error`] naming its operation.
//!
//! It writes only what it is told to write, to the interface it is handed: it never looks
//! for addresses to clean, never renames, deletes or reconfigures an interface, and it
//! refuses to take a name that a non-dummy interface holds.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use netlink_packet_core::NetlinkPayload;
use rtnetlink::packet_route::RouteNetlinkMessage;

use super::error::{Error, Operation};
use super::message::{self, Request};
use super::model::{invalid_name, AddrOp, Interface, Link, LocalAddr};

/// A route netlink connection; cheap to clone (every clone shares the connection).
#[derive(Clone)]
pub struct Client {
    handle: rtnetlink::Handle,
}

impl Client {
    /// Opens the connection and spawns its driver on the current tokio runtime (panics
    /// outside one, like `tokio::spawn`). The connection lives as long as that runtime.
    pub fn new() -> Result<Client, Error> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(|source| Error::Io {
            op: Box::new(Operation::Connect),
            source,
        })?;
        tokio::spawn(connection);
        Ok(Client { handle })
    }

    /// Sends `request` and collects the kernel's messages until the acknowledgement or
    /// the end of the dump; a kernel error becomes `op`'s typed error.
    async fn request(
        &self,
        op: &Operation,
        request: Request,
    ) -> Result<Vec<RouteNetlinkMessage>, Error> {
        let mut handle = self.handle.clone();
        let mut replies = handle.request(request).map_err(|e| Error::NoAnswer {
            op: Box::new(op.clone()),
            reason: e.to_string(),
        })?;
        let mut out = Vec::new();
        while let Some(reply) = replies.next().await {
            match reply.payload {
                NetlinkPayload::InnerMessage(m) => out.push(m),
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    return Err(Error::from_errno(op.clone(), -e.raw_code()));
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Interface `name`, or `None` when there is none.
    pub async fn link(&self, name: &str) -> Result<Option<Link>, Error> {
        let op = Operation::ReadInterface(name.to_string());
        let replies = match self.request(&op, message::get_link(name)).await {
            Err(Error::NoInterface { .. }) => return Ok(None),
            other => other?,
        };
        for reply in replies {
            if let RouteNetlinkMessage::NewLink(m) = reply {
                return match message::parse_link(&m) {
                    Some(link) => Ok(Some(link)),
                    None => Err(Error::Malformed {
                        op: Box::new(op),
                        detail: "an interface without a name".into(),
                    }),
                };
            }
        }
        Ok(None)
    }

    /// Every interface of the namespace.
    pub async fn links(&self) -> Result<Vec<Link>, Error> {
        let replies = self
            .request(&Operation::ListInterfaces, message::dump_links())
            .await?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(m) => message::parse_link(m),
                _ => None,
            })
            .collect())
    }

    /// Makes interface `name` a dummy interface that is up: creates it if missing, sets it
    /// up if down, adopts it as it is otherwise. A name held by a non-dummy interface is
    /// refused with nothing changed.
    pub async fn ensure_interface(&self, name: &str) -> Result<Interface, Error> {
        if let Some(reason) = invalid_name(name) {
            return Err(Error::BadName {
                op: Box::new(Operation::ReadInterface(name.to_string())),
                name: name.to_string(),
                reason,
            });
        }
        let link = match self.link(name).await? {
            Some(link) => link,
            None => {
                let op = Operation::CreateInterface(name.to_string());
                self.request(&op, message::new_dummy(name)).await?;
                self.link(name).await?.ok_or_else(|| Error::Malformed {
                    op: Box::new(op),
                    detail: "the interface was created but cannot be read back".into(),
                })?
            }
        };
        if !link.is_dummy() {
            return Err(Error::NotDummy {
                op: Box::new(Operation::ReadInterface(name.to_string())),
                name: name.to_string(),
                kind: link.kind,
            });
        }
        if !link.up {
            self.request(
                &Operation::SetUp(name.to_string()),
                message::set_up(link.index),
            )
            .await?;
        }
        Ok(link.interface())
    }

    /// Every address of the namespace, on every interface, with interface names.
    pub async fn addresses(&self) -> Result<Vec<LocalAddr>, Error> {
        let names: BTreeMap<u32, String> = self
            .links()
            .await?
            .into_iter()
            .map(|l| (l.index, l.name))
            .collect();
        let replies = self
            .request(&Operation::ListAddresses, message::dump_addresses())
            .await?;
        let mut out: Vec<LocalAddr> = replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewAddress(m) => message::parse_address(m),
                _ => None,
            })
            .map(|(index, addr, prefix_len)| LocalAddr {
                index,
                // An interface created between the two dumps has no name yet: its index
                // stands in (it is never the owned interface, which existed before).
                interface: names
                    .get(&index)
                    .cloned()
                    .unwrap_or_else(|| format!("#{index}")),
                addr,
                prefix_len,
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Applies `ops` to `interface`, in order, one request each; one result per op.
    pub async fn apply(&self, interface: &Interface, ops: &[AddrOp]) -> Vec<Result<(), Error>> {
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            let request = match *op {
                AddrOp::Add(addr) => message::add_address(interface.index, addr),
                AddrOp::Remove { addr, prefix_len } => {
                    message::del_address(interface.index, addr, prefix_len)
                }
            };
            let operation = Operation::Apply {
                op: *op,
                interface: interface.name.clone(),
            };
            results.push(self.request(&operation, request).await.map(|_| ()));
        }
        results
    }
}
