//! Data-plane fixtures for kernel tests: a client namespace, the director (the test's own
//! network namespace) and N IPIP real servers in namespaces of their own, each serving
//! HTTP: on the service ports it answers with its own name (so a client can count who
//! served it), on the health port it answers like litmus_paper with a health the test can
//! change while it runs (status, `X-Health`, `Health: N` body, delay, hang).
//!
//! ```text
//!   client ns                director (test ns)                 real server ns (×N)
//!   eth0 198.51.100.2/24 ── cl0 198.51.100.1/24
//!                            rsI 203.0.113.(4I+1)/30 ── eth0 203.0.113.(4I+2)/30
//!                                                       tunl0 VIP/32 (arp_ignore=1,
//!                                                       arp_announce=2, rp_filter=0)
//! ```
//!
//! The fixture builds the network and its servers only: IPVS services, nft rules and the
//! delivery of the VIP's traffic to IPVS stay the test's (or the code under test's)
//! business: hand routing with `route_fwmark_locally`, or none at all when bigbro owns the
//! VIP as an address on its interface (`vip_mode: address`). Guest only: it must never run on the host.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sched::{setns, CloneFlags};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::sh;

/// The default virtual IP (TEST-NET-1).
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// The client's address (TEST-NET-2); the director is 198.51.100.1 on that link.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// The director's address on the client link.
pub const DIRECTOR_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The default port the real servers serve the VIP on.
pub const SERVICE_PORT: u16 = 80;
/// The default litmus_paper health port of the real servers.
pub const HEALTH_PORT: u16 = 9292;
/// The routing table `route_fwmark_locally` uses.
pub const FWMARK_TABLE: u32 = 100;
/// How long the client waits for a connection or an answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The shape of a data plane.
#[derive(Clone, Debug)]
pub struct Config {
    /// How many real servers (1 to 63), named rs1, rs2...
    pub servers: usize,
    /// The VIP every real server carries on tunl0.
    pub vip: Ipv4Addr,
    /// The ports on which real servers answer with their name.
    pub service_ports: Vec<u16>,
    /// The port on which real servers answer health checks (not a service port).
    pub health_port: u16,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            servers: 2,
            vip: VIP,
            service_ports: vec![SERVICE_PORT],
            health_port: HEALTH_PORT,
        }
    }
}

/// A client namespace, the director (the test's namespace) and real servers; dropping it
/// stops the servers and deletes the namespaces.
pub struct DataPlane {
    config: Config,
    client: Client,
    servers: Vec<RealServer>,
}

/// One real server: a namespace, its address, and its HTTP servers.
pub struct RealServer {
    name: String,
    netns: String,
    addr: Ipv4Addr,
    health_port: u16,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

/// What a real server's health endpoint answers. The default is litmus_paper's answer for
/// health 100.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// The HTTP status code.
    pub status: u16,
    /// The `X-Health` header's value, if sent.
    pub x_health: Option<String>,
    /// The body.
    pub body: String,
    /// How long to wait before answering.
    pub delay: Duration,
    /// Never answer (until the health is changed to one that does).
    pub hang: bool,
}

/// The client side: requests from the client namespace.
pub struct Client {
    netns: String,
}

/// An HTTP response as the client saw it.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Who answered a series of requests.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Answers per real server name.
    pub answers: BTreeMap<String, usize>,
    /// One line per failed request: what went wrong.
    pub failures: Vec<String>,
}

/// State a real server's threads share with the test.
struct Shared {
    name: String,
    health: watch::Sender<Health>,
    /// Request targets (paths) of the health requests received, in order.
    health_requests: Mutex<Vec<String>>,
    service_requests: AtomicUsize,
}

/// Distinguishes the namespaces of several data planes in one test process.
static SEQUENCE: AtomicUsize = AtomicUsize::new(0);

impl DataPlane {
    /// A data plane with `servers` real servers and the default VIP and ports.
    pub fn new(servers: usize) -> DataPlane {
        DataPlane::with(Config {
            servers,
            ..Config::default()
        })
    }

    /// A data plane shaped by `config`. Panics (with the failing command) if the network
    /// cannot be built.
    pub fn with(config: Config) -> DataPlane {
        assert!(
            (1..=63).contains(&config.servers),
            "a data plane has 1 to 63 real servers, not {}",
            config.servers
        );
        assert!(
            !config.service_ports.contains(&config.health_port),
            "the health port {} is also a service port",
            config.health_port
        );
        let prefix = format!(
            "bb{}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );

        // The director: the test's namespace routes between client and real servers and
        // must not drop replies whose source (the VIP) it has no route back to. Nor
        // replies whose source is one of its own addresses (`accept_local`): when bigbro
        // owns the VIP it is a local address of the director, and here the director is
        // also the real servers' router, which a real network's replies bypass.
        for (key, value) in [
            ("ipv4/ip_forward", "1"),
            ("ipv4/conf/all/rp_filter", "0"),
            ("ipv4/conf/default/rp_filter", "0"),
            ("ipv4/conf/all/accept_local", "1"),
        ] {
            write_sysctl(key, value);
        }

        let client_ns = format!("{prefix}-client");
        let servers: Vec<(String, String, Ipv4Addr, Ipv4Addr)> = (0..config.servers)
            .map(|i| {
                let name = format!("rs{}", i + 1);
                let netns = format!("{prefix}-{name}");
                let director = Ipv4Addr::new(203, 0, 113, (4 * i + 1) as u8);
                let addr = Ipv4Addr::new(203, 0, 113, (4 * i + 2) as u8);
                (name, netns, director, addr)
            })
            .collect();

        // One `ip -batch` per namespace: every process costs time under TCG.
        let mut director = format!(
            "netns add {client_ns}\n\
             link add cl0 type veth peer name eth0 netns {client_ns}\n\
             addr add {DIRECTOR_ADDR}/24 dev cl0\n\
             link set cl0 up\n"
        );
        let mut script = String::new();
        let mut batch = |netns: &str, lines: String| {
            script.push_str(&format!("ip -n {netns} -batch - <<'EOF'\n{lines}EOF\n"));
        };
        batch(
            &client_ns,
            format!(
                "link set lo up\n\
                 addr add {CLIENT_ADDR}/24 dev eth0\n\
                 link set eth0 up\n\
                 route add default via {DIRECTOR_ADDR}\n"
            ),
        );
        for (name, netns, director_addr, addr) in &servers {
            director.push_str(&format!(
                "netns add {netns}\n\
                 link add {name} type veth peer name eth0 netns {netns}\n\
                 addr add {director_addr}/30 dev {name}\n\
                 link set {name} up\n"
            ));
            // The VIP on tunl0: the real server accepts the director's IPIP packets for it.
            batch(
                netns,
                format!(
                    "link set lo up\n\
                     addr add {addr}/30 dev eth0\n\
                     link set eth0 up\n\
                     route add default via {director_addr}\n\
                     addr add {vip}/32 dev tunl0\n\
                     link set tunl0 up\n",
                    vip = config.vip
                ),
            );
        }
        sh(&format!("ip -batch - <<'EOF'\n{director}EOF\n{script}"));
        let client = Client { netns: client_ns };

        let servers = servers
            .into_iter()
            .map(|(name, netns, _, addr)| RealServer::start(name, netns, addr, &config))
            .collect();
        DataPlane {
            config,
            client,
            servers,
        }
    }

    /// The real servers, rs1 first.
    pub fn servers(&self) -> &[RealServer] {
        &self.servers
    }

    /// The real server named `name` (rs1, rs2...).
    pub fn server(&self, name: &str) -> &RealServer {
        self.servers
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no real server named {name}"))
    }

    /// The client namespace.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The VIP.
    pub fn vip(&self) -> Ipv4Addr {
        self.config.vip
    }

    /// VIP:port, for the client.
    pub fn vip_addr(&self, port: u16) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.config.vip, port))
    }

    /// Makes the director deliver packets carrying `mark` locally (to IPVS) without
    /// owning the VIP: `ip rule add fwmark MARK lookup 100` and a `local 0.0.0.0/0` route
    /// in table 100. This is the routing bigbro's deployment supplies, not bigbro.
    pub fn route_fwmark_locally(&self, mark: u32) {
        sh(&format!(
            "ip rule add fwmark {mark} lookup {FWMARK_TABLE}
             ip route replace local 0.0.0.0/0 dev lo table {FWMARK_TABLE}"
        ));
    }
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        // Deleting a veth end deletes the pair at once; the namespaces themselves are
        // cleaned up by the kernel later. -force: carry on past links the test removed.
        let mut deletes = format!("link del cl0\nnetns del {}\n", self.client.netns);
        for server in &self.servers {
            deletes.push_str(&format!(
                "link del {}\nnetns del {}\n",
                server.name, server.netns
            ));
        }
        self.servers.clear(); // stops their threads
        let _ = super::sh_status(&format!("ip -force -batch - <<'EOF'\n{deletes}EOF"));
    }
}

impl RealServer {
    /// Configures real server `name` in its (already wired) namespace and starts its HTTP
    /// servers.
    fn start(name: String, netns: String, addr: Ipv4Addr, config: &Config) -> RealServer {
        in_netns(&netns, || {
            // Answer for the VIP only through the tunnel, never ARP for it on eth0, and
            // accept decapsulated packets whose source is reached through eth0.
            for (key, value) in [
                ("ipv4/conf/all/arp_ignore", "1"),
                ("ipv4/conf/all/arp_announce", "2"),
                ("ipv4/conf/all/rp_filter", "0"),
                ("ipv4/conf/default/rp_filter", "0"),
                ("ipv4/conf/eth0/rp_filter", "0"),
                ("ipv4/conf/tunl0/rp_filter", "0"),
            ] {
                write_sysctl(key, value);
            }
        });

        let (health, _) = watch::channel(Health::default());
        let shared = Arc::new(Shared {
            name: name.clone(),
            health,
            health_requests: Mutex::new(Vec::new()),
            service_requests: AtomicUsize::new(0),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let (netns, shared) = (netns.clone(), shared.clone());
            let (service_ports, health_port) = (config.service_ports.clone(), config.health_port);
            std::thread::spawn(move || {
                enter_netns(&netns);
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("cannot build the real server's runtime");
                runtime.block_on(serve(
                    shared,
                    service_ports,
                    health_port,
                    shutdown_rx,
                    ready_tx,
                ));
            })
        };
        if let Ok(Err(e)) | Err(e) = ready_rx.recv().map_err(|e| e.to_string()) {
            panic!("real server {name} did not start: {e}");
        }
        RealServer {
            name,
            netns,
            addr,
            health_port: config.health_port,
            shared,
            shutdown,
            thread: Some(thread),
        }
    }

    /// rs1, rs2...
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its address (the IPVS real server address, and the health-check host).
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// Its health port.
    pub fn health_port(&self) -> u16 {
        self.health_port
    }

    /// address:health port.
    pub fn health_addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.addr, self.health_port))
    }

    /// Its network namespace's name, for `ip -n` / `ip netns exec`.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Changes what its health endpoint answers from now on (and releases hung requests).
    pub fn set_health(&self, health: Health) {
        self.shared.health.send_replace(health);
    }

    /// The paths of the health requests it received so far, in order.
    pub fn health_requests(&self) -> Vec<String> {
        self.shared
            .health_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many service (VIP) requests it answered.
    pub fn service_requests(&self) -> usize {
        self.shared.service_requests.load(Ordering::SeqCst)
    }

    /// Runs `command` with `sh -c` inside its namespace (see `testbed::sh`).
    pub fn sh(&self, command: &str) -> String {
        sh(&format!(
            "ip netns exec {} sh -c {}",
            self.netns,
            shell_quote(command)
        ))
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Default for Health {
    fn default() -> Health {
        Health::litmus(100)
    }
}

impl Health {
    /// litmus_paper's answer for `health`: 200 (503 when 0), `X-Health: health`, and the
    /// body `Health: N` / `Measured Health: N`.
    pub fn litmus(health: u32) -> Health {
        Health {
            status: if health > 0 { 200 } else { 503 },
            x_health: Some(health.to_string()),
            body: format!("Health: {health}\nMeasured Health: {health}\n"),
            delay: Duration::ZERO,
            hang: false,
        }
    }

    /// litmus_paper's answer for a node that is down: 503, `X-Health: 0`, `Health: 0`.
    pub fn down() -> Health {
        Health::litmus(0)
    }

    /// The same answer with another status code.
    pub fn with_status(self, status: u16) -> Health {
        Health { status, ..self }
    }

    /// The same answer with `X-Health: value`.
    pub fn with_header(self, value: &str) -> Health {
        Health {
            x_health: Some(value.to_string()),
            ..self
        }
    }

    /// The same answer without the `X-Health` header.
    pub fn without_header(self) -> Health {
        Health {
            x_health: None,
            ..self
        }
    }

    /// The same answer with another body.
    pub fn with_body(self, body: &str) -> Health {
        Health {
            body: body.to_string(),
            ..self
        }
    }

    /// The same answer, given after `delay`.
    pub fn with_delay(self, delay: Duration) -> Health {
        Health { delay, ..self }
    }

    /// No answer at all: the connection is accepted and left hanging.
    pub fn hanging(self) -> Health {
        Health { hang: true, ..self }
    }
}

impl Client {
    /// Its network namespace's name.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// One `GET path` to `addr` from the client namespace, on a new connection.
    pub fn get(&self, addr: SocketAddr, path: &str) -> Result<Response, String> {
        let path = path.to_string();
        self.run(move || async move { http_get(addr, &path).await })
    }

    /// `requests` sequential GETs of `/` to `addr`, each on a new connection: who
    /// answered, and what failed.
    pub fn tally(&self, addr: SocketAddr, requests: usize) -> Tally {
        self.run(move || async move {
            let mut tally = Tally::default();
            for n in 1..=requests {
                match http_get(addr, "/").await {
                    Ok(r) if r.status == 200 => {
                        *tally.answers.entry(r.body.trim().to_string()).or_default() += 1;
                    }
                    Ok(r) => tally.failures.push(format!(
                        "request {n}: status {} ({})",
                        r.status,
                        r.body.trim()
                    )),
                    Err(e) => tally.failures.push(format!("request {n}: {e}")),
                }
            }
            tally
        })
    }

    /// Runs `task` on a current-thread tokio runtime in the client namespace.
    fn run<T, F>(&self, task: impl FnOnce() -> F + Send) -> T
    where
        T: Send,
        F: std::future::Future<Output = T>,
    {
        in_netns(&self.netns, || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cannot build the client's runtime")
                .block_on(task())
        })
    }

    /// Runs `command` with `sh -c` inside the client namespace (see `testbed::sh`).
    pub fn sh(&self, command: &str) -> String {
        sh(&format!(
            "ip netns exec {} sh -c {}",
            self.netns,
            shell_quote(command)
        ))
    }
}

impl Tally {
    /// How many requests `server` answered.
    pub fn count(&self, server: &str) -> usize {
        self.answers.get(server).copied().unwrap_or(0)
    }

    /// How many requests were answered.
    pub fn answered(&self) -> usize {
        self.answers.values().sum()
    }
}

impl Response {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Runs `f` on a thread inside the named network namespace and returns its result.
pub fn in_netns<T: Send>(netns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                enter_netns(netns);
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Moves the calling thread into the named network namespace.
fn enter_netns(netns: &str) {
    let path = format!("/run/netns/{netns}");
    let file = File::open(&path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
    setns(&file, CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("cannot enter network namespace {netns}: {e}"));
}

/// Sets `net.<key>` (for example `ipv4/ip_forward`) in the calling thread's namespace.
fn write_sysctl(key: &str, value: &str) {
    let path = format!("/proc/sys/net/{key}");
    std::fs::write(&path, value).unwrap_or_else(|e| panic!("cannot set {path} to {value}: {e}"));
}

fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// A real server's HTTP servers: name on the service ports, health on the health port,
/// until shutdown. Sends Ok on `ready` once every port listens, or why not.
async fn serve(
    shared: Arc<Shared>,
    service_ports: Vec<u16>,
    health_port: u16,
    mut shutdown: watch::Receiver<bool>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) {
    let mut listeners = Vec::new();
    for (port, health) in service_ports
        .iter()
        .map(|p| (*p, false))
        .chain([(health_port, true)])
    {
        match TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await {
            Ok(listener) => listeners.push((listener, health)),
            Err(e) => {
                let _ = ready.send(Err(format!("cannot listen on port {port}: {e}")));
                return;
            }
        }
    }
    let _ = ready.send(Ok(()));
    let mut tasks = tokio::task::JoinSet::new();
    for (listener, health) in listeners {
        let shared = shared.clone();
        tasks.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _ = answer(stream, &shared, health).await;
                });
            }
        });
    }
    let _ = shutdown.wait_for(|stop| *stop).await;
    tasks.abort_all();
}

/// Reads one request from `stream` and answers it.
async fn answer(mut stream: TcpStream, shared: &Shared, health: bool) -> std::io::Result<()> {
    let request = read_head(&mut stream).await?;
    let target = request
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .unwrap_or("")
        .to_string();
    if !health {
        shared.service_requests.fetch_add(1, Ordering::SeqCst);
        let body = format!("{}\n", shared.name);
        return respond(&mut stream, 200, None, &body).await;
    }
    shared
        .health_requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(target);
    let mut changes = shared.health.subscribe();
    let current = changes
        .wait_for(|h| !h.hang)
        .await
        .map(|h| h.clone())
        .map_err(|_| std::io::Error::other("the real server stopped"))?;
    tokio::time::sleep(current.delay).await;
    respond(
        &mut stream,
        current.status,
        current.x_health.as_deref(),
        &current.body,
    )
    .await
}

/// The request line and headers, up to the blank line (at most 16 KiB).
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    x_health: Option<&str>,
    body: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        body.len()
    );
    if let Some(value) = x_health {
        response.push_str(&format!("X-Health: {value}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(body);
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// One HTTP/1.1 `GET path` to `addr` on a new connection from the calling thread's
/// namespace (from a test body: the director's), bounded by 5 s. For example a health
/// request: `block_on(http_get(rs.health_addr(), "/app/status"))`.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<Response, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send to {addr}: {e}"))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .map_err(|e| format!("read from {addr}: {e}"))?;
        parse_response(&String::from_utf8_lossy(&raw))
            .ok_or_else(|| format!("{addr} sent no valid HTTP response"))
    };
    tokio::time::timeout(CLIENT_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("{addr} did not answer within {CLIENT_TIMEOUT:?}")))
}

fn parse_response(raw: &str) -> Option<Response> {
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(Response {
        status,
        headers,
        body: body.to_string(),
    })
}
