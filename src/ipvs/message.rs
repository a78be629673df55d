//! The IPVS generic netlink message: a command (`IPVS_CMD_*`) and its top-level
//! attributes, as the payload of `netlink_packet_generic::GenlMessage`.
//!
//! This file frames messages (genl header, family name, version, netlink flags) and
//! builds the read-only queries; it neither builds changes from the model (`op`,
//! `convert`) nor talks to a socket (`transport`). Parsing an unknown command keeps its
//! number; parsing never panics.

use netlink_packet_core::{
    DecodeError, Emitable, ErrorContext, NetlinkMessage, ParseableParametrized, NLM_F_ACK,
    NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};

use super::convert;
use super::model::ServiceKey;
use super::nla::{parse_all, CmdAttr};
use super::uapi::*;

/// Netlink flags of a request answered by an ACK (or an error).
pub const FLAGS_DO: u16 = NLM_F_REQUEST | NLM_F_ACK;
/// Netlink flags of a dump, as ipvsadm sets them (the kernel ends a dump with
/// `NLMSG_DONE` and sends no ACK).
pub const FLAGS_DUMP: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP;

/// `enum { IPVS_CMD_* }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpvsCmd {
    Unspec,
    NewService,
    SetService,
    DelService,
    GetService,
    NewDest,
    SetDest,
    DelDest,
    GetDest,
    NewDaemon,
    DelDaemon,
    GetDaemon,
    SetConfig,
    GetConfig,
    SetInfo,
    GetInfo,
    Zero,
    Flush,
    /// A command this code does not know (kept, never an error).
    Other(u8),
}

impl From<IpvsCmd> for u8 {
    fn from(cmd: IpvsCmd) -> u8 {
        use IpvsCmd::*;
        match cmd {
            Unspec => IPVS_CMD_UNSPEC,
            NewService => IPVS_CMD_NEW_SERVICE,
            SetService => IPVS_CMD_SET_SERVICE,
            DelService => IPVS_CMD_DEL_SERVICE,
            GetService => IPVS_CMD_GET_SERVICE,
            NewDest => IPVS_CMD_NEW_DEST,
            SetDest => IPVS_CMD_SET_DEST,
            DelDest => IPVS_CMD_DEL_DEST,
            GetDest => IPVS_CMD_GET_DEST,
            NewDaemon => IPVS_CMD_NEW_DAEMON,
            DelDaemon => IPVS_CMD_DEL_DAEMON,
            GetDaemon => IPVS_CMD_GET_DAEMON,
            SetConfig => IPVS_CMD_SET_CONFIG,
            GetConfig => IPVS_CMD_GET_CONFIG,
            SetInfo => IPVS_CMD_SET_INFO,
            GetInfo => IPVS_CMD_GET_INFO,
            Zero => IPVS_CMD_ZERO,
            Flush => IPVS_CMD_FLUSH,
            Other(n) => n,
        }
    }
}

impl From<u8> for IpvsCmd {
    fn from(n: u8) -> IpvsCmd {
        use IpvsCmd::*;
        match n {
            IPVS_CMD_UNSPEC => Unspec,
            IPVS_CMD_NEW_SERVICE => NewService,
            IPVS_CMD_SET_SERVICE => SetService,
            IPVS_CMD_DEL_SERVICE => DelService,
            IPVS_CMD_GET_SERVICE => GetService,
            IPVS_CMD_NEW_DEST => NewDest,
            IPVS_CMD_SET_DEST => SetDest,
            IPVS_CMD_DEL_DEST => DelDest,
            IPVS_CMD_GET_DEST => GetDest,
            IPVS_CMD_NEW_DAEMON => NewDaemon,
            IPVS_CMD_DEL_DAEMON => DelDaemon,
            IPVS_CMD_GET_DAEMON => GetDaemon,
            IPVS_CMD_SET_CONFIG => SetConfig,
            IPVS_CMD_GET_CONFIG => GetConfig,
            IPVS_CMD_SET_INFO => SetInfo,
            IPVS_CMD_GET_INFO => GetInfo,
            IPVS_CMD_ZERO => Zero,
            IPVS_CMD_FLUSH => Flush,
            n => Other(n),
        }
    }
}

/// One IPVS message: the payload carried in `GenlMessage<IpvsMessage>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpvsMessage {
    pub cmd: IpvsCmd,
    pub attrs: Vec<CmdAttr>,
}

impl IpvsMessage {
    pub fn new(cmd: IpvsCmd, attrs: Vec<CmdAttr>) -> IpvsMessage {
        IpvsMessage { cmd, attrs }
    }

    /// GET_SERVICE as a dump: every service.
    pub fn dump_services() -> IpvsMessage {
        IpvsMessage::new(IpvsCmd::GetService, vec![])
    }

    /// GET_SERVICE for one service (answered by one NEW_SERVICE message), with the
    /// blank fields ipvsadm's `-L <service>` sends along (the kernel reads the identity).
    pub fn get_service(key: &ServiceKey) -> IpvsMessage {
        let mut attrs = convert::service_ident_as_ipvsadm(key);
        for a in &mut attrs {
            if let super::nla::SvcAttr::Netmask(raw) = a {
                *raw = [0; 4];
            }
        }
        IpvsMessage::new(IpvsCmd::GetService, vec![CmdAttr::Service(attrs)])
    }

    /// GET_DEST (dump only): the destinations of one service.
    pub fn dump_dests(key: &ServiceKey) -> IpvsMessage {
        IpvsMessage::new(
            IpvsCmd::GetDest,
            vec![CmdAttr::Service(convert::service_ident(key))],
        )
    }

    /// GET_INFO (answered by SET_INFO).
    pub fn get_info() -> IpvsMessage {
        IpvsMessage::new(IpvsCmd::GetInfo, vec![])
    }

    /// GET_CONFIG (answered by SET_CONFIG).
    pub fn get_config() -> IpvsMessage {
        IpvsMessage::new(IpvsCmd::GetConfig, vec![])
    }

    /// GET_DAEMON (dump only).
    pub fn dump_daemons() -> IpvsMessage {
        IpvsMessage::new(IpvsCmd::GetDaemon, vec![])
    }

    /// The complete netlink message: header (`family` as type, `flags`, `seq`, `port`),
    /// genl header, attributes.
    pub fn encode(self, family: u16, flags: u16, seq: u32, port: u32) -> Vec<u8> {
        let mut genl = GenlMessage::from_payload(self);
        genl.set_resolved_family_id(family);
        encode_genl(genl, flags, seq, port)
    }
}

/// Serialises any generic netlink message with the given header fields.
pub fn encode_genl<F>(genl: GenlMessage<F>, flags: u16, seq: u32, port: u32) -> Vec<u8>
where
    F: GenlFamily + Emitable + std::fmt::Debug,
{
    let mut nl = NetlinkMessage::from(genl);
    nl.header.flags = flags;
    nl.header.sequence_number = seq;
    nl.header.port_number = port;
    nl.finalize();
    let mut buf = vec![0; nl.buffer_len()];
    nl.serialize(&mut buf);
    buf
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        IPVS_GENL_NAME
    }
    fn command(&self) -> u8 {
        self.cmd.into()
    }
    fn version(&self) -> u8 {
        IPVS_GENL_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let attrs = parse_all(buf, |nla| CmdAttr::parse_for(nla, header.cmd))
            .with_context(|| format!("IPVS message with command {}", header.cmd))?;
        Ok(IpvsMessage {
            cmd: IpvsCmd::from(header.cmd),
            attrs,
        })
    }
}
