//! nf_tables mark rules: the table bigbro owns (`ip bigbro`, `ip6 bigbro`) that sets the
//! fwmark on packets to each VIP, so IPVS fwmark services see them.
//!
//! It never touches a table it does not own, and it knows nothing of clusters or IPVS.

mod batch;
mod expr;
pub mod rule;

pub use rule::*;
