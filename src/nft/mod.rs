//! nf_tables mark rules: the table bigbro owns (`ip bigbro`, `ip6 bigbro`) that sets the
//! fwmark on packets to each VIP, so IPVS fwmark services see them.
//!
//! [`rule`] is the plain data (and its `nft` rendering), `expr` the bytecode of one rule,
//! `batch` the nfnetlink batch that replaces bigbro's tables atomically, [`Nft`] the
//! connection that applies, reads back and removes them, [`Live`] what was read back.
//! `decodable` guards the netlink decoder against messages that would make it panic. The
//! pure readers ([`Dumped`], [`extack`], [`locate`], [`decodable`]) are public so the fuzz
//! targets (tests/fuzz) can feed them arbitrary bytes.
//!
//! It never touches a table it does not own, and it knows nothing of clusters or IPVS.

mod batch;
mod client;
mod decodable;
mod error;
mod expr;
mod readback;
pub mod rule;

pub use client::Nft;
pub use decodable::decodable;
pub use error::{extack, locate, Failure, NftError};
pub use readback::{Dumped, Live, Unknown};
pub use rule::*;
