//! The OCF agent (ocf/bigbro) on the host, against a scripted stand-in for the daemon's
//! HTTP API: every exit code of every action, including the answers a healthy daemon never
//! gives (500, 401, a foreign 404, a PUT that does not take), the token handling, waiting
//! out a daemon restart, and the kernel fallback's decisions, with `bigbro ipvsadm`
//! replaced by a script over a text file. These are unit tests of the agent's logic: the
//! agent against the real daemon and a real IPVS kernel (ocf-tester, direct calls, the
//! fallback deleting real services) is tests/ops/ocf_kernel.rs.
//!
//! Every action runs under dash, Debian's /bin/sh, which has no bash extensions.

use crate::ops_common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ops_common::{assert_rc, have, rc, run_agent, Run};

const SHELL: &str = "dash";
const SHELLFUNCS: &str = "/usr/lib/ocf/lib/heartbeat/ocf-shellfuncs";

/// A request the stand-in received.
#[derive(Clone, Debug)]
struct Request {
    method: String,
    path: String,
    authorization: Option<String>,
}

/// What the stand-in answers.
#[derive(Default)]
struct State {
    /// Known clusters and whether each runs.
    clusters: BTreeMap<String, bool>,
    /// When set, PUT and DELETE need `Authorization: Bearer <token>` (401 otherwise).
    token: Option<String>,
    /// Answers forced for a method, instead of the daemon's behaviour.
    forced: BTreeMap<String, (u16, String)>,
    /// PUT answers OK but the cluster stays stopped.
    put_does_not_take: bool,
    /// PUT finds the cluster started by someone else just before: 304.
    put_started_meanwhile: bool,
    requests: Vec<Request>,
}

/// A stand-in for the daemon's big_brother routes (GET, PUT, DELETE /cluster/NAME) with
/// their exact bodies, on a loopback port.
struct FakeDaemon {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl FakeDaemon {
    /// A stand-in knowing cluster `web` (stopped), serving on a fresh port.
    fn start() -> FakeDaemon {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        FakeDaemon::serve(listener)
    }

    fn serve(listener: TcpListener) -> FakeDaemon {
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        state.lock().unwrap().clusters.insert("web".into(), false);
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                answer(stream, &shared);
            }
        });
        FakeDaemon { port, state }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn set_running(&self, running: bool) {
        self.state
            .lock()
            .unwrap()
            .clusters
            .insert("web".into(), running);
    }

    fn running(&self) -> bool {
        self.state.lock().unwrap().clusters["web"]
    }

    fn force(&self, method: &str, status: u16, body: &str) {
        self.state
            .lock()
            .unwrap()
            .forced
            .insert(method.into(), (status, body.into()));
    }

    fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    fn methods(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.method).collect()
    }
}

fn answer(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut authorization = None;
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_string());
            }
        }
    }
    let (status, body) = {
        let mut s = state.lock().unwrap();
        s.requests.push(Request {
            method: method.clone(),
            path: path.clone(),
            authorization: authorization.clone(),
        });
        respond(&mut s, &method, &path, authorization.as_deref())
    };
    let reason = match status {
        200 => "OK",
        304 => "Not Modified",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Error",
    };
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// The daemon's behaviour (docs/api.md, "big_brother's routes"), unless a test forced an answer.
fn respond(s: &mut State, method: &str, path: &str, auth: Option<&str>) -> (u16, String) {
    if let Some(forced) = s.forced.get(method) {
        return forced.clone();
    }
    let Some(name) = path.strip_prefix("/cluster/") else {
        return (404, "Not Found".into());
    };
    let Some(&running) = s.clusters.get(name) else {
        return (404, format!("Cluster {name} not found"));
    };
    if method != "GET" {
        if let Some(token) = &s.token {
            if auth != Some(format!("Bearer {token}").as_str()) {
                return (401, "missing or wrong bearer token".into());
            }
        }
    }
    match (method, running) {
        ("GET", _) => (
            200,
            format!(
                "Running: {running}\nCombinedWeight: {}\n",
                if running { 100 } else { 0 }
            ),
        ),
        ("PUT", true) | ("DELETE", false) => (304, String::new()),
        ("PUT", false) if s.put_started_meanwhile => {
            s.clusters.insert(name.into(), true);
            (304, String::new())
        }
        ("PUT", false) => {
            if !s.put_does_not_take {
                s.clusters.insert(name.into(), true);
            }
            (200, "OK".into())
        }
        ("DELETE", true) => {
            s.clusters.insert(name.into(), false);
            (200, "OK".into())
        }
        _ => (404, "Not Found".into()),
    }
}

/// A scratch directory with a bigbro configuration (cluster web: fwmark 7 plus relay
/// 10007; cluster dns6: IPv6 fwmark 53), a curl wrapper that records its arguments, and a
/// `bigbro` stand-in: `check` is the real binary, `ipvsadm -S`/`-D` read and edit the
/// text file `kernel` instead of IPVS.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(
            p.join("config.yml"),
            "clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wlc
    multi_datacenter: true
    nodes:
      - {address: 10.0.1.11, port: 9292, path: /web/status}
  - cluster_name: dns6
    fwmark: 53
    scheduler: rr
    nodes:
      - {address: \"2001:db8::1\", port: 9292, path: /dns/status}
",
        )
        .unwrap();
        std::fs::write(p.join("kernel"), "").unwrap();
        let d = p.display();
        write_script(
            &p.join("curl"),
            &format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" >> {d}/curl.calls\n\
                 curl \"$@\"\nrc=$?\necho $rc >> {d}/curl.results\nexit $rc\n"
            ),
        );
        write_script(
            &p.join("bigbro"),
            &format!(
                r#"#!/bin/sh
printf '%s\n' "$*" >> {d}/bigbro.calls
case "$1" in
check) exec {real} "$@" ;;
ipvsadm)
    case "$2" in
    -S) cat {d}/kernel ;;
    -D)
        shift 2
        [ -e {d}/delete-fails ] && {{ echo "Memory allocation problem" >&2; exit 1; }}
        grep -q -e "^-A $* -s " {d}/kernel || {{ echo "No such service" >&2; exit 1; }}
        grep -v -e "^-A $* -s " {d}/kernel > {d}/kernel.new; mv {d}/kernel.new {d}/kernel ;;
    *) echo "fake bigbro ipvsadm: $*" >&2; exit 2 ;;
    esac ;;
*) echo "fake bigbro: $*" >&2; exit 2 ;;
esac
"#,
                real = env!("CARGO_BIN_EXE_bigbro")
            ),
        );
        Scratch { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn set_kernel(&self, text: &str) {
        std::fs::write(self.path("kernel"), text).unwrap();
    }

    fn kernel(&self) -> String {
        std::fs::read_to_string(self.path("kernel")).unwrap()
    }

    fn lines(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The agent's environment: cluster web at `url`, op timeout 4 s (so it waits 1 s for
    /// a daemon that does not answer), this scratch's curl, bigbro and config.
    fn env(&self, url: &str) -> Vec<(String, String)> {
        vec![
            ("OCF_RESKEY_cluster".into(), "web".into()),
            ("OCF_RESKEY_url".into(), url.into()),
            ("OCF_RESKEY_config".into(), self.s("config.yml")),
            ("OCF_RESKEY_binary".into(), self.s("bigbro")),
            ("OCF_RESKEY_CRM_meta_timeout".into(), "4000".into()),
            ("OCF_RESKEY_CRM_meta_interval".into(), "10000".into()),
            ("CURL_BIN".into(), self.s("curl")),
        ]
    }

    fn run(&self, action: &str, url: &str, extra: &[(&str, &str)]) -> Run {
        let mut env = self.env(url);
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v.to_string()));
        }
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_agent(SHELL, action, &pairs)
    }
}

fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A loopback URL nothing listens on.
fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

fn ready(test: &str) -> bool {
    have(test, &[SHELL, "curl", SHELLFUNCS])
}

// --- meta-data, usage, unknown actions ------------------------------------------------

#[test]
fn meta_data_is_valid_and_advertises_only_what_is_implemented() {
    if !ready("meta_data") {
        return;
    }
    let run = run_agent(SHELL, "meta-data", &[]);
    assert_rc("meta-data", &run, rc::SUCCESS);
    let xml = &run.stdout;
    let actions: Vec<&str> = xml
        .lines()
        .filter_map(|l| l.trim().strip_prefix("<action name=\""))
        .filter_map(|l| l.split('"').next())
        .collect();
    assert_eq!(
        actions,
        ["start", "stop", "monitor", "validate-all", "meta-data"]
    );
    for param in ["cluster", "url", "token_file", "config", "binary"] {
        assert!(
            xml.contains(&format!("<parameter name=\"{param}\"")),
            "{param} missing"
        );
    }
    assert!(xml.contains("<parameter name=\"cluster\" unique=\"1\" required=\"1\">"));
    assert!(xml.contains("default=\"http://127.0.0.1:9292\""));

    // The DTD pacemaker's tools validate against, when xmllint is there.
    if have(
        "meta_data (DTD)",
        &["xmllint", "/usr/share/resource-agents/ra-api-1.dtd"],
    ) {
        let out = std::process::Command::new("sh")
            .args([
                "-c",
                "cd /usr/share/resource-agents && xmllint --noout --valid -",
            ])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(run.stdout.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        assert!(
            out.status.success(),
            "meta-data does not validate against ra-api-1.dtd:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn usage_and_help_succeed_and_unimplemented_actions_say_so() {
    if !ready("usage") {
        return;
    }
    for action in ["usage", "help"] {
        let run = run_agent(SHELL, action, &[]);
        assert_rc(action, &run, rc::SUCCESS);
        assert!(run
            .stdout
            .contains("{start|stop|monitor|validate-all|meta-data|usage|help}"));
    }
    // What big_brother's agent advertised without implementing, and the rest of the OCF
    // vocabulary: OCF_ERR_UNIMPLEMENTED, whatever the parameters.
    for action in [
        "reload",
        "migrate_to",
        "migrate_from",
        "notify",
        "promote",
        "demote",
        "status",
        "",
    ] {
        let run = run_agent(SHELL, action, &[("OCF_RESKEY_cluster", "web")]);
        assert_rc(action, &run, rc::ERR_UNIMPLEMENTED);
    }
}

// --- parameters --------------------------------------------------------------------------

#[test]
fn bad_parameters_are_configuration_errors() {
    if !ready("bad_parameters") {
        return;
    }
    let s = Scratch::new();
    let fake = FakeDaemon::start();
    for (what, key, value) in [
        ("no cluster", "OCF_RESKEY_cluster", ""),
        ("a slash", "OCF_RESKEY_cluster", "web/../x"),
        ("a space", "OCF_RESKEY_cluster", "web app"),
        ("65 characters", "OCF_RESKEY_cluster", &"a".repeat(65)),
        ("not http", "OCF_RESKEY_url", "127.0.0.1:9292"),
        ("a quote", "OCF_RESKEY_url", "http://127.0.0.1:9292/\"x"),
    ] {
        for action in ["start", "stop", "monitor", "validate-all"] {
            let run = s.run(action, &fake.url(), &[(key, value)]);
            assert_rc(&format!("{action} with {what}"), &run, rc::ERR_CONFIGURED);
            assert!(run.stderr.contains("ocf-exit-reason:"), "{}", run.stderr);
        }
    }
    assert!(
        fake.requests().is_empty(),
        "bad parameters reached the daemon"
    );
    // 64 characters of the allowed set are a name.
    let name = format!("{}.-_", "a".repeat(61));
    fake.state
        .lock()
        .unwrap()
        .clusters
        .insert(name.clone(), true);
    assert_rc(
        "monitor, 64 characters",
        &s.run("monitor", &fake.url(), &[("OCF_RESKEY_cluster", &name)]),
        rc::SUCCESS,
    );
}

#[test]
fn a_missing_curl_or_bigbro_is_not_installed() {
    if !ready("missing_binaries") {
        return;
    }
    let s = Scratch::new();
    let fake = FakeDaemon::start();
    for action in ["start", "stop", "monitor", "validate-all"] {
        let run = s.run(action, &fake.url(), &[("CURL_BIN", "/nonexistent/curl")]);
        assert_rc(&format!("{action} without curl"), &run, rc::ERR_INSTALLED);
    }
    let run = s.run(
        "validate-all",
        &fake.url(),
        &[("OCF_RESKEY_binary", "/nonexistent/bigbro")],
    );
    assert_rc("validate-all without bigbro", &run, rc::ERR_INSTALLED);
    // ocf-tester's probe with every binary "missing" must give 7 or 5.
    let run = s.run(
        "monitor",
        &fake.url(),
        &[
            ("OCF_TESTER_FAIL_HAVE_BINARY", "1"),
            ("OCF_RESKEY_CRM_meta_interval", "0"),
        ],
    );
    assert_rc("probe, binaries missing", &run, rc::ERR_INSTALLED);
}

// --- monitor -----------------------------------------------------------------------------

#[test]
fn monitor_reads_running_from_the_daemon() {
    if !ready("monitor") {
        return;
    }
    let s = Scratch::new();
    let fake = FakeDaemon::start();
    assert_rc(
        "monitor, stopped",
        &s.run("monitor", &fake.url(), &[]),
        rc::NOT_RUNNING,
    );
    fake.set_running(true);
    assert_rc(
        "monitor, running",
        &s.run("monitor", &fake.url(), &[]),
        rc::SUCCESS,
    );
    // GET /cluster/NAME, the route that adopts kernel state, without a token.
    let reqs = fake.requests();
    assert!(reqs
        .iter()
        .all(|r| r.method == "GET" && r.path == "/cluster/web" && r.authorization.is_none()));
    // A trailing slash on url is fine.
    let url = format!("{}/", fake.url());
    assert_rc("monitor, url/", &s.run("monitor", &url, &[]), rc::SUCCESS);
    assert_eq!(fake.requests().last().unwrap().path, "/cluster/web");
    assert!(
        s.lines("bigbro.calls").is_empty(),
        "the kernel was read while the daemon answers"
    );
}

#[test]
fn monitor_unknown_cluster_is_not_running_but_other_answers_are_errors() {
    if !ready("monitor_answers") {
        return;
    }
    let s = Scratch::new();
    let fake = FakeDaemon::start();
    let run = s.run("monitor", &fake.url(), &[("OCF_RESKEY_cluster", "nope")]);
    assert_rc("monitor, unknown cluster", &run, rc::NOT_RUNNING);
    assert!(run.stderr.contains("has no cluster nope"), "{}", run.stderr);

    for (status, body) in [
        (500, "Application error"),
        (404, "Not Found"), // not bigbro's body: a different server on that port
        (200, "<html>hello</html>"),
        (200, "Running: maybe\n"),
        (401, "no"),
    ] {
        fake.force("GET", status, body);
        let run = s.run("monitor", &fake.url(), &[]);
        assert_rc(
            &format!("monitor, {status} {body:?}"),
            &run,
            rc::ERR_GENERIC,
        );
        assert!(
            run.stderr.contains(&format!("HTTP {status}")),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn monitor_without_a_daemon_reads_the_kernel() {
    if !ready("monitor_without_daemon") {
        return;
    }
    let s = Scratch::new();
    let url = dead_url();
    // Service live and nobody adjusting weights: failed.
    s.set_kernel("-A -f 7 -s wlc\n-a -f 7 -r 10.0.1.11:0 -i -w 37\n-A -f 8 -s rr\n");
    let run = s.run("monitor", &url, &[]);
    assert_rc("monitor, daemon down, service live", &run, rc::ERR_GENERIC);
    assert!(
        run.stderr
            .contains("IPVS service -f 7 of cluster web is live"),
        "{}",
        run.stderr
    );
    // The relay alone is live too.
    s.set_kernel("-A -f 10007 -s wlc\n");
    assert_rc(
        "monitor, daemon down, relay live",
        &s.run("monitor", &url, &[]),
        rc::ERR_GENERIC,
    );
    // Neither: cleanly stopped (another cluster's service is not ours).
    s.set_kernel("-A -f 8 -s rr\n-A -f 70 -s rr\n");
    assert_rc(
        "monitor, daemon down, no service",
        &s.run("monitor", &url, &[]),
        rc::NOT_RUNNING,
    );
    // An IPv6 cluster is matched with its -6.
    s.set_kernel("-A -f 53 -s rr\n");
    assert_rc(
        "monitor dns6, only the IPv4 fwmark 53",
        &s.run("monitor", &url, &[("OCF_RESKEY_cluster", "dns6")]),
        rc::NOT_RUNNING,
    );
    s.set_kernel("-A -f 53 -6 -s rr\n");
    assert_rc(
        "monitor dns6, live",
        &s.run("monitor", &url, &[("OCF_RESKEY_cluster", "dns6")]),
        rc::ERR_GENERIC,
    );
    // Cannot tell: an error, never "not running".
    let run = s.run("monitor", &url, &[("OCF_RESKEY_cluster", "gone")]);
    assert_rc(
        "monitor, daemon down, cluster not in config",
        &run,
        rc::ERR_GENERIC,
    );
    assert!(
        run.stderr.contains("has no cluster named"),
        "{}",
        run.stderr
    );
    let run = s.run(
        "monitor",
        &url,
        &[("OCF_RESKEY_binary", "/nonexistent/bigbro")],
    );
    assert_rc("monitor, daemon down, no bigbro", &run, rc::ERR_GENERIC);
    assert!(run.stderr.contains("is not there"), "{}", run.stderr);
}

#[test]
fn the_agent_waits_out_a_daemon_restart() {
    if !ready("restart_window") {
        return;
    }
    let s = Scratch::new();
    // Reserve a port, let the agent's first try be refused, then bring the daemon up
    // there: the agent's retry must find it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let results = s.path("curl.results");
    let starter = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&results).map(|m| m.len()).unwrap_or(0) == 0 {
            assert!(Instant::now() < deadline, "the agent never tried");
            std::thread::sleep(Duration::from_millis(10));
        }
        let fake = FakeDaemon::serve(TcpListener::bind(("127.0.0.1", port)).unwrap());
        fake.set_running(true);
        fake
    });
    // Op timeout 20 s: it waits up to 5 s.
    let run = s.run(
        "monitor",
        &format!("http://127.0.0.1:{port}"),
        &[("OCF_RESKEY_CRM_meta_timeout", "20000")],
    );
    let fake = starter.join().unwrap();
    assert_rc("monitor across a restart", &run, rc::SUCCESS);
    let results = s.lines("curl.results");
    assert_eq!(
        results.first().map(String::as_str),
        Some("7"),
        "refused first"
    );
    assert_eq!(results.last().map(String::as_str), Some("0"));
    assert_eq!(fake.methods(), ["GET"]);
    assert!(s.lines("bigbro.calls").is_empty());
}

// --- start -------------------------------------------------------------------------------

#[test]
fn start_puts_and_checks_and_is_idempotent() {
    if !ready("start") {
        return;
    }
    let s = Scratch::new();
    let fake = FakeDaemon::start();
    assert_rc("start", &s.run("start", &fake.url(), &[]), rc::SUCCESS);
    assert!(fake.running());
    assert_eq!(fake.methods(), ["GET", "PUT", "GET"]);
    // Started already: no PUT.
    assert_rc(
        "start again",
        &s.run("start", &fake.url(), &[]),
        rc::SUCCESS,
    );
    assert_eq!(fake.methods(), ["GET", "PUT", "GET", "GET"]);
}

#[test]
fn start_maps_each_answer_to_its_exit_code() {
    if !ready("start_answers") {
        return;
    }
    let s = Scratch::new();
    let fake = FakeDaemon::start();
    let run = s.run("start", &fake.url(), &[("OCF_RESKEY_cluster", "nope")]);
    assert_rc("start, unknown cluster", &run, rc::ERR_ARGS);
    assert!(run.stderr.contains("has no cluster nope"), "{}", run.stderr);

    // PUT 304: started meanwhile by someone else, which is all start wants.
    fake.state.lock().unwrap().put_started_meanwhile = true;
    assert_rc(
        "start, PUT 304",
        &s.run("start", &fake.url(), &[]),
        rc::SUCCESS,
    );
    assert_eq!(fake.methods()[1..], ["GET", "PUT", "GET"]);
    fake.state.lock().unwrap().put_started_meanwhile = false;
    fake.set_running(false);

    for (status, body, want) in [
        (500, "Application error", rc::ERR_GENERIC),
        (401, "missing or wrong bearer token", rc::ERR_PERM),
        (403, "forbidden", rc::ERR_PERM),
        (404, "Cluster web not found", rc::ERR_ARGS),
    ] {
        fake.force("PUT", status, body);
        let run = s.run("start", &fake.url(), &[]);
        assert_rc(&format!("start, PUT {status}"), &run, want);
        assert!(!fake.running());
    }

    // PUT says OK but the daemon still reports it stopped: not started.
    fake.state.lock().unwrap().forced.clear();
    fake.state.lock().unwrap().put_does_not_take = true;
    let run = s.run("start", &fake.url(), &[]);
    assert_rc("start, PUT does not take", &run, rc::ERR_GENERIC);
    assert!(
        run.stderr.contains("is not running after"),
        "{}",
        run.stderr
    );
}

#[test]
fn start_without_a_daemon_fails_and_leaves_the_kernel_alone() {
    if !ready("start_without_daemon") {
        return;
    }
    let s = Scratch::new();
    let run = s.run("start", &dead_url(), &[]);
    assert_rc("start, daemon down", &run, rc::ERR_GENERIC);
    assert!(
        run.stderr.contains("bigbro daemon unreachable"),
        "{}",
        run.stderr
    );
    assert!(s.lines("bigbro.calls").is_empty());
}

// --- stop --------------------------------------------------------------------------------

#[test]
fn stop_deletes_and_checks_and_is_idempotent() {
    if !ready("stop") {
        return;
    }
    let s = Scratch::new();
    let fake = FakeDaemon::start();
    fake.set_running(true);
    assert_rc("stop", &s.run("stop", &fake.url(), &[]), rc::SUCCESS);
    assert!(!fake.running());
    assert_eq!(fake.methods(), ["GET", "DELETE", "GET"]);
    assert_rc("stop again", &s.run("stop", &fake.url(), &[]), rc::SUCCESS);
    assert_eq!(fake.methods(), ["GET", "DELETE", "GET", "GET"]);
    // A cluster the daemon does not have: nothing of it can run.
    assert_rc(
        "stop, unknown cluster",
        &s.run("stop", &fake.url(), &[("OCF_RESKEY_cluster", "nope")]),
        rc::SUCCESS,
    );
    assert!(s.lines("bigbro.calls").is_empty());
}

#[test]
fn stop_never_goes_behind_a_live_daemons_back() {
    if !ready("stop_refused") {
        return;
    }
    let s = Scratch::new();
    s.set_kernel("-A -f 7 -s wlc\n");
    let fake = FakeDaemon::start();
    fake.set_running(true);
    for (status, body) in [(500, "Application error"), (401, "no token")] {
        fake.force("DELETE", status, body);
        let run = s.run("stop", &fake.url(), &[]);
        assert_rc(&format!("stop, DELETE {status}"), &run, rc::ERR_GENERIC);
        assert!(run.stderr.contains("refused to stop"), "{}", run.stderr);
    }
    fake.force("GET", 500, "Application error");
    assert_rc(
        "stop, GET 500",
        &s.run("stop", &fake.url(), &[]),
        rc::ERR_GENERIC,
    );
    // DELETE "OK" while the daemon still reports it running.
    fake.state.lock().unwrap().forced.clear();
    fake.force("DELETE", 200, "OK");
    let run = s.run("stop", &fake.url(), &[]);
    assert_rc("stop, DELETE does not take", &run, rc::ERR_GENERIC);
    assert!(run.stderr.contains("still runs"), "{}", run.stderr);

    assert!(
        s.lines("bigbro.calls").is_empty(),
        "the agent touched the kernel while the daemon answered"
    );
    assert_eq!(s.kernel(), "-A -f 7 -s wlc\n");
}

#[test]
fn stop_without_a_daemon_deletes_the_services_itself() {
    if !ready("stop_without_daemon") {
        return;
    }
    let s = Scratch::new();
    let url = dead_url();
    s.set_kernel(
        "-A -f 7 -s wlc\n-a -f 7 -r 10.0.1.11:0 -i -w 37\n-A -f 8 -s rr\n-A -f 10007 -s wlc\n",
    );
    let run = s.run("stop", &url, &[]);
    assert_rc("stop, daemon down", &run, rc::SUCCESS);
    // Both of web's services went (our stand-in drops only -A lines); fwmark 8 stayed.
    assert_eq!(
        s.kernel(),
        "-a -f 7 -r 10.0.1.11:0 -i -w 37\n-A -f 8 -s rr\n"
    );
    let calls = s.lines("bigbro.calls");
    assert!(calls.contains(&"ipvsadm -D -f 7".to_string()), "{calls:?}");
    assert!(
        calls.contains(&"ipvsadm -D -f 10007".to_string()),
        "{calls:?}"
    );
    assert!(run
        .stderr
        .contains("removing cluster web from the kernel directly"));

    // Nothing left to delete: success, no -D.
    let before = s.lines("bigbro.calls").len();
    assert_rc(
        "stop again, daemon down",
        &s.run("stop", &url, &[]),
        rc::SUCCESS,
    );
    assert!(!s.lines("bigbro.calls")[before..]
        .iter()
        .any(|c| c.contains("-D")));

    // IPv6: -D -f 53 -6.
    s.set_kernel("-A -f 53 -6 -s rr\n");
    assert_rc(
        "stop dns6, daemon down",
        &s.run("stop", &url, &[("OCF_RESKEY_cluster", "dns6")]),
        rc::SUCCESS,
    );
    assert_eq!(s.kernel(), "");
    assert!(s
        .lines("bigbro.calls")
        .contains(&"ipvsadm -D -f 53 -6".to_string()));
}

#[test]
fn stop_without_a_daemon_fails_when_it_cannot_make_sure() {
    if !ready("stop_cannot") {
        return;
    }
    let s = Scratch::new();
    let url = dead_url();
    s.set_kernel("-A -f 7 -s wlc\n");
    std::fs::write(s.path("delete-fails"), "").unwrap();
    let run = s.run("stop", &url, &[]);
    assert_rc("stop, delete fails", &run, rc::ERR_GENERIC);
    assert!(
        run.stderr.contains("is still in the kernel"),
        "{}",
        run.stderr
    );
    std::fs::remove_file(s.path("delete-fails")).unwrap();

    for (what, key, value, says) in [
        (
            "cluster not in config",
            "OCF_RESKEY_cluster",
            "gone",
            "has no cluster named",
        ),
        (
            "config missing",
            "OCF_RESKEY_config",
            "/nonexistent.yml",
            "/nonexistent.yml",
        ),
        (
            "no bigbro",
            "OCF_RESKEY_binary",
            "/nonexistent/bigbro",
            "is not there",
        ),
    ] {
        let run = s.run("stop", &url, &[(key, value)]);
        assert_rc(&format!("stop, daemon down, {what}"), &run, rc::ERR_GENERIC);
        assert!(run.stderr.contains(says), "{what}: {}", run.stderr);
    }
    assert_eq!(s.kernel(), "-A -f 7 -s wlc\n");
}

// --- token -------------------------------------------------------------------------------

#[test]
fn the_token_goes_with_put_and_delete_and_never_on_a_command_line() {
    if !ready("token") {
        return;
    }
    let s = Scratch::new();
    let fake = FakeDaemon::start();
    // Any printable ASCII, as the daemon accepts; " and \ need escaping for curl.
    let token = r#"s3cr3t-"Tok\en".~+/=!"#;
    fake.state.lock().unwrap().token = Some(token.into());
    std::fs::write(s.path("token"), format!("  {token}\n\n")).unwrap();
    let tf = s.s("token");
    let with = [("OCF_RESKEY_token_file", tf.as_str())];
    assert_rc(
        "start with token",
        &s.run("start", &fake.url(), &with),
        rc::SUCCESS,
    );
    assert_rc(
        "stop with token",
        &s.run("stop", &fake.url(), &with),
        rc::SUCCESS,
    );
    for r in fake.requests() {
        let want = (r.method != "GET").then(|| format!("Bearer {token}"));
        assert_eq!(r.authorization, want, "{r:?}");
    }
    let calls = std::fs::read_to_string(s.path("curl.calls")).unwrap();
    assert!(
        !calls.contains(token),
        "the token is on curl's command line:\n{calls}"
    );

    // Without it, the daemon refuses: start is a permission error, stop fails.
    assert_rc(
        "start, no token",
        &s.run("start", &fake.url(), &[]),
        rc::ERR_PERM,
    );

    // Unusable token files: start and validate-all are argument errors; stop fails
    // rather than work around a live daemon.
    fake.set_running(true);
    for (what, content) in [
        ("empty", "\n"),
        ("two words", "abcdefgh ijklmnop\n"),
        ("two lines", "abcdefgh\nijklmnop\n"),
    ] {
        std::fs::write(s.path("token"), content).unwrap();
        fake.set_running(false);
        assert_rc(
            &format!("start, token {what}"),
            &s.run("start", &fake.url(), &with),
            rc::ERR_ARGS,
        );
        assert_rc(
            &format!("validate-all, token {what}"),
            &s.run("validate-all", &fake.url(), &with),
            rc::ERR_ARGS,
        );
        fake.set_running(true);
        assert_rc(
            &format!("stop, token {what}"),
            &s.run("stop", &fake.url(), &with),
            rc::ERR_GENERIC,
        );
        assert!(fake.running());
    }
    let missing = [("OCF_RESKEY_token_file", "/nonexistent/token")];
    let run = s.run("validate-all", &fake.url(), &missing);
    assert_rc("validate-all, no token file", &run, rc::ERR_ARGS);
    assert!(run.stderr.contains("cannot be read"), "{}", run.stderr);
    // monitor needs no token.
    assert_rc(
        "monitor, no token file",
        &s.run("monitor", &fake.url(), &missing),
        rc::SUCCESS,
    );
}

// --- validate-all ------------------------------------------------------------------------

#[test]
fn validate_all_asks_the_daemon_then_the_config() {
    if !ready("validate") {
        return;
    }
    let s = Scratch::new();
    let fake = FakeDaemon::start();
    assert_rc(
        "validate-all",
        &s.run("validate-all", &fake.url(), &[]),
        rc::SUCCESS,
    );
    assert_rc(
        "validate-all, unknown cluster",
        &s.run(
            "validate-all",
            &fake.url(),
            &[("OCF_RESKEY_cluster", "nope")],
        ),
        rc::ERR_ARGS,
    );
    fake.force("GET", 404, "Not Found");
    assert_rc(
        "validate-all, not bigbro",
        &s.run("validate-all", &fake.url(), &[]),
        rc::ERR_ARGS,
    );
    // Daemon down: the configuration file decides.
    let url = dead_url();
    assert_rc(
        "validate-all, down",
        &s.run("validate-all", &url, &[]),
        rc::SUCCESS,
    );
    assert_rc(
        "validate-all, down, unknown",
        &s.run("validate-all", &url, &[("OCF_RESKEY_cluster", "gone")]),
        rc::ERR_ARGS,
    );
    assert!(s
        .lines("bigbro.calls")
        .iter()
        .all(|c| c.starts_with("check ")));
}

// --- the shell itself --------------------------------------------------------------------

#[test]
fn the_agent_is_posix_shell() {
    if !ready("posix") {
        return;
    }
    let agent = ops_common::agent();
    let out = std::process::Command::new(SHELL)
        .arg("-n")
        .arg(&agent)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dash -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if have("posix (shellcheck)", &["shellcheck"]) {
        let out = std::process::Command::new("shellcheck")
            .args(["-s", "sh"])
            .arg(&agent)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "shellcheck -s sh:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // checkbashisms comes from devscripts; tests/setup.sh extracts it alone.
    let cached = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/tools/checkbashisms");
    let checkbashisms = if cached.exists() {
        cached.display().to_string()
    } else {
        "checkbashisms".to_string()
    };
    if have("posix (checkbashisms)", &[checkbashisms.as_str()]) {
        let out = std::process::Command::new("perl")
            .arg(&checkbashisms)
            .args(["--posix", "--extra", "--force"])
            .arg(&agent)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "checkbashisms:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn bigbro_check_cluster_prints_one_clusters_services() {
    let s = Scratch::new();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_bigbro"))
            .args(args)
            .output()
            .unwrap()
    };
    let cfg = s.s("config.yml");
    let out = run(&["check", "--ipvs", "--cluster", "web", "-c", &cfg]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "-A -f 7 -s wlc\n-a -f 7 -r 10.0.1.11:0 -i -w 1 --tun-type ipip\n\
         -A -f 10007 -s wlc\n-a -f 10007 -r 10.0.1.11:0 -i -w 1 --tun-type ipip\n"
    );
    let out = run(&["check", "--ipvs", "--cluster", "dns6", "-c", &cfg]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "-A -f 53 -6 -s rr\n-a -f 53 -6 -r [2001:db8::1]:0 -i -w 1 --tun-type ipip\n"
    );
    let out = run(&["check", "--cluster", "nope", "-c", &cfg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("bigbro check: {cfg} has no cluster named \"nope\" (its clusters: web, dns6)\n")
    );
}

/// The operator guide lists every parameter and every advertised action of the agent.
#[test]
fn the_guide_documents_the_agents_parameters_and_actions() {
    if !ready("guide") {
        return;
    }
    let guide = include_str!("../../docs/operator-guide.md");
    let section = guide
        .split("## The OCF resource agent")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("the guide has a section on the agent");
    let xml = run_agent(SHELL, "meta-data", &[]).stdout;
    let names = |tag: &str| -> Vec<String> {
        xml.lines()
            .filter_map(|l| l.trim().strip_prefix(tag))
            .filter_map(|l| l.split('"').next())
            .map(str::to_string)
            .collect()
    };
    for param in names("<parameter name=\"") {
        assert!(
            section.contains(&format!("| `{param}` |")),
            "parameter {param} undocumented"
        );
    }
    for action in names("<action name=\"") {
        assert!(
            section.contains(&format!("`{action}`")),
            "action {action} undocumented"
        );
    }
}
