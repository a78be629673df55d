//! [`Backend`] on bigbro's own IPVS client (`ipvs::Client`): how `bigbro ipvsadm` reaches
//! the kernel. Connecting mirrors libipvs's `ipvs_init`: resolve the IPVS family and read
//! `GET_INFO` (so a caller without CAP_NET_ADMIN is refused up front), and if that fails run
//! `/sbin/modprobe -- ip_vs` once and try again, as ipvsadm does.
//!
//! Requests go out exactly as given; a restore's consecutive changes are pipelined through
//! `Client::apply`, which keeps one acknowledgement per change. Kernel errors keep their
//! errno so `backend` can word them as ipvsadm does; failures that are not a kernel answer
//! keep the client's own explanation.

use tokio::runtime::Runtime;

use super::backend::{Backend, KernelError, EINVAL, ENOENT, ENOPROTOOPT};
use crate::ipvs::{
    Client, DestEntry, Error, Info, Op, Operation, ServiceEntry, ServiceKey, SyncDaemon, Timeouts,
};

/// The errno ipvsadm would have seen for a client error.
fn kernel_error(e: Error) -> KernelError {
    if let Some(errno) = e.errno() {
        return KernelError::from(errno);
    }
    match &e {
        Error::NotAvailable { .. } => KernelError::from(ENOPROTOOPT),
        // ipvsadm passes a 16-byte engine name on, and the kernel knows no engine by it.
        Error::BadRequest { op, .. }
            if matches!(
                op.as_ref(),
                Operation::Apply(Op::AddService(s) | Op::EditService(s))
                    if s.pe_name.as_ref().is_some_and(|p| p.len() >= 16)
            ) =>
        {
            KernelError::from(ENOENT)
        }
        Error::Io { source, .. } => KernelError {
            errno: source.raw_os_error().unwrap_or(EINVAL),
            detail: Some(e.to_string()),
        },
        _ => KernelError {
            errno: EINVAL,
            detail: Some(e.to_string()),
        },
    }
}

/// An `ipvs::Client` driven from synchronous code.
pub struct ClientBackend {
    runtime: Runtime,
    client: Client,
    info: Info,
}

impl ClientBackend {
    fn open(runtime: &Runtime) -> Result<(Client, Info), KernelError> {
        runtime.block_on(async {
            let client = Client::connect().await.map_err(kernel_error)?;
            let info = client.info().await.map_err(kernel_error)?;
            Ok((client, info))
        })
    }

    /// libipvs `ipvs_init`, with ipvsadm's one `modprobe ip_vs` retry.
    pub fn connect() -> Result<ClientBackend, KernelError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| KernelError {
                errno: e.raw_os_error().unwrap_or(EINVAL),
                detail: Some(format!("cannot start the I/O runtime: {e}")),
            })?;
        let (client, info) = match Self::open(&runtime) {
            Ok(v) => v,
            Err(_) => {
                // Like ipvsadm: whatever failed, try loading the module once.
                let _ = std::process::Command::new("/sbin/modprobe")
                    .args(["--", "ip_vs"])
                    .status();
                Self::open(&runtime)?
            }
        };
        Ok(ClientBackend {
            runtime,
            client,
            info,
        })
    }
}

impl Backend for ClientBackend {
    fn info(&mut self) -> Result<Info, KernelError> {
        // ipvsadm prints the values ipvs_init read.
        Ok(self.info)
    }

    fn services(&mut self) -> Result<Vec<ServiceEntry>, KernelError> {
        self.runtime
            .block_on(self.client.services())
            .map_err(kernel_error)
    }

    fn service(&mut self, key: &ServiceKey) -> Result<ServiceEntry, KernelError> {
        self.runtime
            .block_on(self.client.service(key))
            .map_err(kernel_error)
    }

    fn dests(&mut self, key: &ServiceKey) -> Result<Vec<DestEntry>, KernelError> {
        self.runtime
            .block_on(self.client.dests(key))
            .map_err(kernel_error)
    }

    fn timeouts(&mut self) -> Result<Timeouts, KernelError> {
        self.runtime
            .block_on(self.client.timeouts())
            .map_err(kernel_error)
    }

    fn daemons(&mut self) -> Result<Vec<SyncDaemon>, KernelError> {
        self.runtime
            .block_on(self.client.daemons())
            .map_err(kernel_error)
    }

    fn apply(&mut self, ops: &[Op]) -> Vec<Result<(), KernelError>> {
        self.runtime
            .block_on(self.client.apply(ops))
            .into_iter()
            .map(|r| r.map_err(kernel_error))
            .collect()
    }
}
