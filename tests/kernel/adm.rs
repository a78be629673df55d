//! `bigbro ipvsadm` against the real ipvsadm 1.31, on a real IPVS kernel.
//!
//! Every command line of tests/adm_fixtures/cases.txt runs once with `ipvsadm` and once
//! with `bigbro ipvsadm`, each in a fresh network namespace holding the same starting state;
//! stdout, stderr, exit status and the state left behind (services, timeouts, daemons) must
//! be identical byte for byte. Rich states made by either tool must be listed identically by
//! both in every listing format, a 10,000-line restore must work, and the connection table
//! (`-L -c`) must read the same.

use crate::adm_common;
use crate::testbed;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bigbro::adm::names::StaticResolver;
use bigbro::adm::parse::parse;
use bigbro::adm::AdmCommand;
use bigbro::ipvs::{Client, Op};
use nix::sched::{unshare, CloneFlags};
use testbed::kernel_test;

const BIGBRO: &str = env!("CARGO_BIN_EXE_bigbro");

/// What every case starts from: each forwarding method, IPv4 and IPv6, persistence and a
/// scheduler flag.
const SETUP: &str = "\
-A -f 7 -s wlc
-a -f 7 -r 10.0.0.1 -i -w 100
-A -t 10.0.0.100:80 -s rr -p 100
-a -t 10.0.0.100:80 -r 10.0.0.1 -m -w 3
-A -u [2001:db8::1]:53 -s sh -b sh-port
";

/// Interfaces every namespace gets, so that real servers have routes (`ip -batch`).
const LINKS: &str = "\
link set lo up
link add dummy0 type dummy
link set dummy0 up
addr add 10.0.0.254/24 dev dummy0
addr add 2001:db8::fe/64 dev dummy0 nodad
";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/adm_fixtures")
}

/// The corpus: (stdin file or None, shell words).
fn corpus() -> Vec<(Option<PathBuf>, String)> {
    let text = std::fs::read_to_string(fixtures().join("cases.txt")).expect("cases.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| match l.strip_prefix("IN=") {
            Some(rest) => {
                let (name, args) = rest.split_once(' ').expect("IN=NAME ARGS");
                (
                    Some(fixtures().join("restore").join(format!("{name}.txt"))),
                    args.to_string(),
                )
            }
            None => (None, l.to_string()),
        })
        .collect()
}

/// A scratch directory in the guest's tmpfs.
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("adm-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("links"), LINKS).unwrap();
    d
}

/// Moves this thread (and every process it starts from now on) into a new network
/// namespace with `lo` and `dummy0` up.
fn fresh_namespace(dir: &Path) {
    unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
    let st = Command::new("ip")
        .arg("-batch")
        .arg(dir.join("links"))
        .status()
        .expect("ip -batch");
    assert!(st.success(), "ip -batch failed");
}

/// Runs `tool ipvsadm-args` (args as shell words) with `stdin`; (stdout, stderr, status).
fn run_tool(real: bool, args: &str, stdin: Option<&Path>) -> (String, String, String) {
    let words = adm_common::shell_words(args);
    let mut cmd = if real {
        Command::new("ipvsadm")
    } else {
        let mut c = Command::new(BIGBRO);
        c.arg("ipvsadm");
        c
    };
    cmd.args(&words);
    cmd.stdin(match stdin {
        Some(p) => Stdio::from(std::fs::File::open(p).unwrap()),
        None => Stdio::null(),
    });
    let out = cmd.output().expect("run the tool");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        format!("{:?}", out.status.code()),
    )
}

/// bigbro's netlink client in this thread's namespace, with a runtime to drive it.
fn client() -> (tokio::runtime::Runtime, Client) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = rt.block_on(Client::connect()).expect("connect");
    (rt, c)
}

/// The kernel's whole IPVS state, read with bigbro's netlink client (not with either
/// tool under test): services, destinations, timeouts and sync daemons.
fn kernel_state() -> String {
    let (rt, c) = client();
    rt.block_on(async {
        let mut state = c.state().await.expect("dump");
        for (_, d) in &mut state {
            d.sort_by_key(|e| (e.dest.addr, e.dest.port));
        }
        state.sort_by_key(|(s, _)| s.service.key);
        format!(
            "{state:#?}\n{:?}\n{:?}",
            c.timeouts().await.expect("timeouts"),
            c.daemons().await.expect("daemons")
        )
    })
}

/// Builds SETUP with bigbro's client (the same way for both sides).
fn apply_setup() {
    let names = StaticResolver::empty();
    let ops: Vec<Op> = SETUP
        .lines()
        .map(|l| {
            let words: Vec<Vec<u8>> = l.split(' ').map(|w| w.as_bytes().to_vec()).collect();
            match parse(&words, &names) {
                Ok(AdmCommand::Change(op)) => op,
                other => panic!("setup line {l}: {other:?}"),
            }
        })
        .collect();
    let (rt, c) = client();
    rt.block_on(async {
        for r in c.apply(&ops).await {
            r.expect("setup op");
        }
    });
}

/// What one side of a case produced.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    stdout: String,
    stderr: String,
    status: String,
    state: String,
}

/// Runs `args` with one tool in a fresh namespace holding SETUP.
fn run_side(dir: &Path, real: bool, stdin: Option<&Path>, args: &str) -> Outcome {
    fresh_namespace(dir);
    apply_setup();
    let (stdout, stderr, status) = run_tool(real, args, stdin);
    Outcome {
        stdout,
        stderr,
        status,
        state: kernel_state(),
    }
}

/// Runs every `part`-th case of the corpus (of `parts`) and fails listing every difference.
fn corpus_part(part: usize, parts: usize) {
    let dir = scratch(&format!("corpus{part}"));
    let mut report = String::new();
    let mut ran = 0;
    for (i, (stdin, args)) in corpus().into_iter().enumerate() {
        if i % parts != part {
            continue;
        }
        ran += 1;
        let real = run_side(&dir, true, stdin.as_deref(), &args);
        let mine = run_side(&dir, false, stdin.as_deref(), &args);
        if real != mine {
            let _ = writeln!(
                report,
                "### ipvsadm {args}\n--- real ---\n{real:#?}\n--- bigbro ---\n{mine:#?}"
            );
        }
    }
    assert!(ran > 0);
    assert!(report.is_empty(), "bigbro ipvsadm differs:\n{report}");
}

kernel_test! {
    fn corpus_part_0() { corpus_part(0, 8) }
    fn corpus_part_1() { corpus_part(1, 8) }
    fn corpus_part_2() { corpus_part(2, 8) }
    fn corpus_part_3() { corpus_part(3, 8) }
    fn corpus_part_4() { corpus_part(4, 8) }
    fn corpus_part_5() { corpus_part(5, 8) }
    fn corpus_part_6() { corpus_part(6, 8) }
    fn corpus_part_7() { corpus_part(7, 8) }
}

/// Every listing format, as text per format.
const FORMATS: &[&str] = &[
    // No arguments at all: ipvsadm lists with names.
    "",
    "-S -n",
    "-S",
    "-L",
    "-L -n",
    "-L -n --stats",
    "-L -n --stats --exact",
    "-L -n --rate",
    "-L -n --thresholds",
    "-L -n --persistent-conn",
    "-L -n --tun-info",
    "-L --tun-info",
    "-L -n --nosort",
    "-L -n -f 1",
    "-L -f 41 --tun-info",
    "-L -n -t 10.0.0.1:80",
    "-L -u 10.1.1.1:53",
    "-L --timeout",
    "-L --daemon",
];

/// Builds the state of restore file `name` with one tool in a fresh namespace, then lists
/// it with both tools in every format: (format, real's listing, bigbro's listing).
fn list_both(dir: &Path, build_real: bool, name: &str) -> Vec<(String, String, String)> {
    let input = fixtures().join("restore").join(format!("{name}.txt"));
    fresh_namespace(dir);
    run_tool(build_real, "-R", Some(&input));
    FORMATS
        .iter()
        .map(|f| {
            let show = |real| {
                let (out, err, status) = run_tool(real, f, None);
                format!("{out}{err}status {status}\n")
            };
            (f.to_string(), show(true), show(false))
        })
        .collect()
}

/// State made by either tool from restore file `name` is listed identically by both.
fn state_lists_identically(name: &str) {
    let dir = scratch(name);
    let by_real = list_both(&dir, true, name);
    let by_mine = list_both(&dir, false, name);
    let mut report = String::new();
    for ((format, real_real, mine_real), (_, real_mine, mine_mine)) in by_real.iter().zip(&by_mine)
    {
        // --nosort prints the kernel's hash order, which is salted per namespace: only
        // listings of one namespace's state can be compared. So does ipvsadm's own sort
        // for the "sorting" state: it is not a total order for fwmarks at and past 2^31
        // (seen: FWM 1, -1 and -2147483648 come out in the kernel's dump order). There,
        // across namespaces, the same lines must be listed, in any order.
        let same_namespace_only = format.contains("--nosort") || name == "sorting";
        let lines = |text: &str| {
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            lines.sort();
            lines
        };
        for (what, text, reference) in [
            ("state by ipvsadm, listed by bigbro", mine_real, real_real),
            ("state by bigbro, listed by ipvsadm", real_mine, real_real),
            ("state by bigbro, listed by bigbro", mine_mine, real_real),
        ] {
            let reference = if same_namespace_only && what.starts_with("state by bigbro") {
                if lines(real_mine) != lines(real_real) {
                    let _ = writeln!(
                        report,
                        "### {name}: {format}: state by bigbro holds other lines than state by ipvsadm\n--- by ipvsadm ---\n{real_real}--- by bigbro ---\n{real_mine}"
                    );
                }
                real_mine
            } else {
                reference
            };
            if text != reference {
                let _ = writeln!(
                    report,
                    "### {name}: {format}: {what}\n--- reference ---\n{reference}--- this ---\n{text}"
                );
            }
        }
    }
    // The restore did build something (FORMATS[1] is -S -n).
    assert!(
        by_real[1].1.lines().count() > 2,
        "{name}: nothing restored: {}",
        by_real[1].1
    );
    assert!(report.is_empty(), "listings differ:\n{report}");
}

kernel_test! {
    fn state_save1_lists_identically() { state_lists_identically("save1") }
    fn state_sorting_lists_identically() { state_lists_identically("sorting") }
    fn state_flags_lists_identically() { state_lists_identically("flags") }
    fn state_tunnels_lists_identically() { state_lists_identically("tunnels") }
    fn state_v6_lists_identically() { state_lists_identically("v6") }
}

kernel_test! {
    /// Sync daemons and timeouts set by either tool are listed alike by both.
    fn daemons_and_timeouts_list_alike() {
        let dir = scratch("daemons");
        fresh_namespace(&dir);
        let both = |args: &str| {
            let (real, mine) = (run_tool(true, args, None), run_tool(false, args, None));
            assert_eq!(real, mine, "ipvsadm {args}");
            real.0
        };
        run_tool(true, "--start-daemon master --mcast-interface lo --syncid 9 --sync-maxlen 1000 --mcast-group 224.0.0.99 --mcast-port 9000 --mcast-ttl 3", None);
        run_tool(false, "--start-daemon backup --mcast-interface dummy0 --syncid 200 --mcast-group ff02::99", None);
        let listed = both("-L --daemon");
        assert_eq!(listed.lines().count(), 2, "{listed}");
        assert!(listed.starts_with("master sync daemon (mcast=lo, syncid=9, maxlen=1000, group=224.0.0.99, port=9000, ttl=3)\n"), "{listed}");
        run_tool(false, "--set 100 20 30", None);
        assert_eq!(both("-L --timeout"), "Timeout (tcp tcpfin udp): 100 20 30\n");
        run_tool(true, "--set 0 0 7", None);
        assert_eq!(both("-L --timeout"), "Timeout (tcp tcpfin udp): 100 20 7\n");
        run_tool(false, "--stop-daemon master", None);
        assert_eq!(both("-L --daemon").lines().count(), 1);
        assert_eq!(both("--stop-daemon master"), "");
    }
}

kernel_test! {
    /// Host and service names (a test hosts file mounted over /etc/hosts in a private
    /// mount namespace): names in addresses are resolved when parsing, listings without
    /// -n show names, cut to ipvsadm's column widths and its 59-byte buffer.
    fn names_resolve_and_list_alike() {
        let dir = scratch("names");
        fresh_namespace(&dir);
        let hosts = fixtures().join("hosts");
        let input = fixtures().join("restore/names.txt");
        let d = dir.display();
        let mut script = format!(
            "mount --bind {} /etc/hosts || exit 1\n\
             ipvsadm -R < {} > {d}/real.restore 2>&1\n\
             ipvsadm -S -n > {d}/real.saved\nipvsadm -C\n\
             {BIGBRO} ipvsadm -R < {} > {d}/mine.restore 2>&1\n\
             ipvsadm -S -n > {d}/mine.saved\n",
            hosts.display(),
            input.display(),
            input.display()
        );
        let formats = ["", "-L", "-S", "-L --tun-info", "-L --stats", "-L --rate", "-L --thresholds", "-L --persistent-conn", "-L -t web1:http", "-L -u [2001:db8::2]:80"];
        for (i, f) in formats.iter().enumerate() {
            let _ = writeln!(script, "ipvsadm {f} > {d}/{i}.real 2>&1; {BIGBRO} ipvsadm {f} > {d}/{i}.mine 2>&1");
        }
        script.push_str("exit 0\n");
        std::fs::write(dir.join("names.sh"), script).unwrap();
        testbed::sh(&format!("unshare -m sh {d}/names.sh"));
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(read("real.restore"), read("mine.restore"));
        assert_eq!(read("real.saved"), read("mine.saved"), "the restores built different states");
        assert!(read("real.saved").lines().count() > 10, "{}", read("real.saved"));
        for (i, f) in formats.iter().enumerate() {
            let (real, mine) = (read(&format!("{i}.real")), read(&format!("{i}.mine")));
            assert!(real == mine, "ipvsadm {f} differs:\n--- ipvsadm ---\n{real}--- bigbro ---\n{mine}");
        }
        assert!(read("1.real").contains("averyveryverylonghostname-nu Masq"), "{}", read("1.real"));
    }

    /// A 10,000-line restore (1,000 services of 9 real servers, in ipvsadm's save order)
    /// builds exactly what it describes, and both tools list it identically.
    fn restore_of_ten_thousand_lines() {
        let dir = scratch("big");
        let mut input = String::new();
        for s in 0..1000u32 {
            let vip = format!("10.{}.{}.1:80", 100 + s / 250, s % 250);
            let _ = writeln!(input, "-A -t {vip} -s wrr");
            for r in 1..=9u32 {
                let _ = writeln!(input, "-a -t {vip} -r 10.0.0.{r}:80 -g -w {}", s % 7 + r);
            }
        }
        assert_eq!(input.lines().count(), 10_000);
        let file = dir.join("big.txt");
        std::fs::write(&file, &input).unwrap();
        fresh_namespace(&dir);
        let start = std::time::Instant::now();
        let (out, err, status) = run_tool(false, "-R", Some(&file));
        eprintln!("bigbro ipvsadm -R of 10,000 lines took {:?}", start.elapsed());
        assert_eq!((out.as_str(), err.as_str(), status.as_str()), ("", "", "Some(0)"));
        assert!(run_tool(true, "-S -n", None).0 == input, "ipvsadm -S -n differs from the restored input");
        assert!(run_tool(false, "-S -n", None).0 == input, "bigbro ipvsadm -S -n differs from the input");
        assert!(run_tool(true, "-L", None) == run_tool(false, "-L", None), "-L listings differ");
    }

    /// `-L -c` reads the connection table as ipvsadm does, with live connections (one to a
    /// local real server, listed as `Local`), and counters show in every format.
    fn connections_are_listed_alike() {
        testbed::sh("ip link add dummy0 type dummy; ip link set dummy0 up; \
                     ip addr add 10.0.0.254/24 dev dummy0; ip addr add 10.9.9.9/32 dev lo");
        testbed::sh("ipvsadm -A -t 10.9.9.9:80 -s rr; ipvsadm -a -t 10.9.9.9:80 -r 127.0.0.1:8080 -m");
        let listener = std::net::TcpListener::bind("127.0.0.1:8080").unwrap();
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(std::net::TcpStream::connect("10.9.9.9:80").unwrap());
            let _ = listener.accept().unwrap();
        }
        let mut last = String::new();
        for format in ["-L -c -n", "-L -c", "-L -c --persistent-conn -n", "-L -n", "-L -n --stats", "-L -n --persistent-conn"] {
            // Expiry times tick every second: retry a few times for an identical pair.
            let mut same = false;
            for _ in 0..5 {
                let real = testbed::sh(&format!("ipvsadm {format}"));
                let mine = testbed::sh(&format!("{BIGBRO} ipvsadm {format}"));
                if real == mine {
                    same = true;
                    last = real;
                    break;
                }
                last = format!("--- ipvsadm ---\n{real}--- bigbro ---\n{mine}");
            }
            assert!(same, "ipvsadm {format} differs:\n{last}");
        }
        let table = testbed::sh("ipvsadm -L -c -n");
        assert!(
            table.lines().filter(|l| l.contains("10.9.9.9:80")).count() >= 3,
            "the connections are not in the table:\n{table}"
        );
        drop(clients);
    }
}
