//! bigbro: a controller for Linux IPVS layer-4 load balancing in the manner of Braintree's
//! big_brother. It reads cluster YAML, programs IPVS fwmark services and their real servers
//! over generic netlink, installs the packet-marking rules through nf_tables, polls every
//! backend's health and turns health into IPVS weights.
//!
//! Data flows one way: probe → weight policy → desired state → diff → netlink. Only
//! `reconcile` writes to the kernel (and `adm`, whose job is to be ipvsadm).

pub mod adm;
pub mod api;
pub mod config;
pub mod daemon;
pub mod desired;
pub mod health;
pub mod ipvs;
pub mod nft;
pub mod reconcile;
pub mod route;
pub mod types;
pub mod weight;
