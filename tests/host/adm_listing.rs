//! `bigbro ipvsadm`'s command flow and listings against real ipvsadm 1.31 output, without a
//! kernel: commands run through `adm::Runner` on an in-memory IPVS table that answers with
//! the kernel's errnos, and every listing must equal what ipvsadm printed for the same state
//! (tests/adm_fixtures/captured_listings.txt), byte for byte. The in-memory table is only a
//! stand-in for these fast checks; tests/kernel/adm.rs is the test against a real kernel.

use std::net::IpAddr;

use bigbro::adm::backend::{Backend, KernelError, EEXIST, ENOENT, ESRCH};
use bigbro::adm::names::StaticResolver;
use bigbro::adm::Runner;
use bigbro::ipvs::{
    DaemonState, DestEntry, Info, Op, ServiceEntry, ServiceKey, Stats, SyncDaemon, Timeouts,
};

/// An IPVS table in memory with the kernel's error rules (ESRCH, EEXIST, ENOENT).
#[derive(Default)]
struct Table {
    services: Vec<(ServiceEntry, Vec<DestEntry>)>,
    timeouts: Timeouts,
    daemons: Vec<SyncDaemon>,
    known_schedulers: Vec<&'static str>,
    /// How many ops each `apply` call carried.
    batches: Vec<usize>,
}

impl Table {
    fn new() -> Table {
        Table {
            timeouts: Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300,
            },
            known_schedulers: vec!["rr", "wrr", "lc", "wlc", "sh", "mh"],
            ..Table::default()
        }
    }

    fn find(&mut self, key: &ServiceKey) -> Result<usize, KernelError> {
        self.services
            .iter()
            .position(|(s, _)| s.service.key == *key)
            .ok_or(KernelError::from(ESRCH))
    }

    fn one(&mut self, op: &Op) -> Result<(), KernelError> {
        match op {
            Op::AddService(s) | Op::EditService(s) => {
                if !self.known_schedulers.contains(&s.scheduler.as_str()) {
                    return Err(ENOENT.into());
                }
                let found = self.find(&s.key);
                let entry = ServiceEntry {
                    service: s.clone(),
                    stats: Stats::default(),
                };
                match (op, found) {
                    (Op::AddService(_), Ok(_)) => Err(EEXIST.into()),
                    (Op::AddService(_), Err(_)) => {
                        self.services.push((entry, Vec::new()));
                        Ok(())
                    }
                    (_, Ok(i)) => {
                        self.services[i].0 = entry;
                        Ok(())
                    }
                    (_, Err(e)) => Err(e),
                }
            }
            Op::DelService(k) => {
                let i = self.find(k)?;
                self.services.remove(i);
                Ok(())
            }
            Op::AddDest { service, dest } | Op::EditDest { service, dest } => {
                let i = self.find(service)?;
                let dests = &mut self.services[i].1;
                let at = dests
                    .iter()
                    .position(|d| d.dest.addr == dest.addr && d.dest.port == dest.port);
                let entry = DestEntry::from(dest.clone());
                match (op, at) {
                    (Op::AddDest { .. }, Some(_)) => Err(EEXIST.into()),
                    (Op::AddDest { .. }, None) => {
                        dests.push(entry);
                        Ok(())
                    }
                    (_, Some(j)) => {
                        dests[j] = entry;
                        Ok(())
                    }
                    (_, None) => Err(ENOENT.into()),
                }
            }
            Op::DelDest {
                service,
                addr,
                port,
            } => {
                let i = self.find(service)?;
                let dests = &mut self.services[i].1;
                let j = dests
                    .iter()
                    .position(|d| d.dest.addr == *addr && d.dest.port == *port)
                    .ok_or(KernelError::from(ENOENT))?;
                dests.remove(j);
                Ok(())
            }
            Op::Flush => {
                self.services.clear();
                Ok(())
            }
            Op::Zero(_) => Ok(()),
            Op::SetTimeouts(t) => {
                for (slot, v) in [
                    (&mut self.timeouts.tcp, t.tcp),
                    (&mut self.timeouts.tcp_fin, t.tcp_fin),
                    (&mut self.timeouts.udp, t.udp),
                ] {
                    if v != 0 {
                        *slot = v;
                    }
                }
                Ok(())
            }
            Op::StartDaemon(d) => {
                if self.daemons.iter().any(|x| x.state == d.state) {
                    return Err(EEXIST.into());
                }
                self.daemons.push(d.clone());
                Ok(())
            }
            Op::StopDaemon(s) => {
                let i = self
                    .daemons
                    .iter()
                    .position(|x| x.state == *s)
                    .ok_or(KernelError::from(ESRCH))?;
                self.daemons.remove(i);
                Ok(())
            }
        }
    }
}

impl Backend for &mut Table {
    fn info(&mut self) -> Result<Info, KernelError> {
        Ok(Info {
            version: 0x010201,
            conn_tab_size: 4096,
        })
    }
    fn services(&mut self) -> Result<Vec<ServiceEntry>, KernelError> {
        Ok(self.services.iter().map(|(s, _)| s.clone()).collect())
    }
    fn service(&mut self, key: &ServiceKey) -> Result<ServiceEntry, KernelError> {
        let i = self.find(key)?;
        Ok(self.services[i].0.clone())
    }
    fn dests(&mut self, key: &ServiceKey) -> Result<Vec<DestEntry>, KernelError> {
        // The kernel answers a missing service with an empty dump.
        Ok(self
            .find(key)
            .map(|i| self.services[i].1.clone())
            .unwrap_or_default())
    }
    fn timeouts(&mut self) -> Result<Timeouts, KernelError> {
        Ok(self.timeouts)
    }
    fn daemons(&mut self) -> Result<Vec<SyncDaemon>, KernelError> {
        Ok(self.daemons.clone())
    }
    fn apply(&mut self, ops: &[Op]) -> Vec<Result<(), KernelError>> {
        self.batches.push(ops.len());
        ops.iter().map(|op| self.one(op)).collect()
    }
}

/// (stdout, stderr, exit status) of `ipvsadm WORDS` with `stdin` on `table`.
fn run(table: &mut Table, words: &str, stdin: &str) -> (String, String, u8) {
    run_reading(table, words, &mut stdin.as_bytes())
}

/// Like `run`, with any reader as stdin.
fn run_reading(
    table: &mut Table,
    words: &str,
    stdin: &mut dyn std::io::Read,
) -> (String, String, u8) {
    let args: Vec<Vec<u8>> = words
        .split_whitespace()
        .map(|w| w.as_bytes().to_vec())
        .collect();
    let names = StaticResolver::empty();
    let mut err = Vec::new();
    let status;
    let out;
    {
        let mut backend = Some(table);
        let connect = Box::new(move || {
            backend
                .take()
                .map(|t| Box::new(t) as Box<dyn Backend + '_>)
                .ok_or(KernelError::from(ENOENT))
        });
        let mut runner = Runner::new("ipvsadm", &names, connect, &mut err);
        status = runner.run(&args, stdin);
        out = std::mem::take(&mut runner.out);
    }
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
        status,
    )
}

/// The captured listings: (arguments, expected stdout).
fn captured() -> Vec<(String, String)> {
    let text = include_str!("../adm_fixtures/captured_listings.txt");
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(args) = line.strip_prefix("=== ") {
            out.push((args.to_string(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line.strip_suffix('$').expect("lines end with $"));
            body.push('\n');
        }
    }
    out
}

#[test]
fn the_captured_scenario_lists_byte_for_byte() {
    let mut t = Table::new();
    let steps = [
        ("-A -f 7 -s wlc", "", 0),
        ("-a -f 7 -r 10.0.0.1 -i -w 100", "", 0),
        ("-a -f 7 -r 10.0.0.2 -i -w 0", "", 0),
        ("-A -t 10.0.0.100:80 -s wlc -p", "", 0),
        ("-a -t 10.0.0.100:80 -r 10.0.0.1 -g", "", 0),
        (
            "-A -t 10.0.0.100:80 -s wlc -p",
            "Service already exists\n",
            255,
        ),
        (
            "-a -t 10.0.0.100:80 -r 10.0.0.1 -g",
            "Destination already exists\n",
            255,
        ),
        ("-d -f 8 -r 10.0.0.1", "Service not defined\n", 255),
        ("-d -f 7 -r 10.0.0.9", "No such destination\n", 255),
        (
            "-A -f 9 -s nosuch",
            "Scheduler or persistence engine not found\n",
            255,
        ),
    ];
    for (words, stderr, status) in steps {
        let (out, err, rc) = run(&mut t, words, "");
        assert_eq!(
            (out.as_str(), err.as_str(), rc),
            ("", stderr, status),
            "{words}"
        );
    }
    let cases = captured();
    assert_eq!(cases.len(), 9);
    for (words, expected) in cases {
        let (out, err, rc) = run(&mut t, &words, "");
        assert_eq!((err.as_str(), rc), ("", 0), "{words}");
        assert_eq!(out, expected, "ipvsadm {words}");
    }
    let (out, err, rc) = run(&mut t, "-L -n -f 8", "");
    assert_eq!(
        (out.as_str(), err.as_str(), rc),
        ("", "No such service\n", 1)
    );
}

#[test]
fn save_output_restores_to_the_same_state() {
    let mut t = Table::new();
    let script = "-A -f 7 -s wlc -p 300\n-a -f 7 -r 10.0.0.1 -i -w 100\n\
                  -A -t 10.0.0.100:80 -s sh -b sh-port -M 255.255.255.0 -p 60\n\
                  -a -t 10.0.0.100:80 -r 10.0.0.1:8080 -m -w 3\n\
                  -A -f 8 -6 -s rr\n-a -f 8 -6 -r 10.0.0.2 -i --tun-type gue --tun-port 6080 --tun-csum\n\
                  -a -f 8 -6 -r 2001:db8::2 -i --tun-type gre --tun-nocsum -w 5\n";
    assert_eq!(run(&mut t, "-R", script), (String::new(), String::new(), 0));
    let (saved, _, _) = run(&mut t, "-S -n", "");
    assert_eq!(
        saved,
        "-A -t 10.0.0.100:80 -s sh -p 60 -M 255.255.255.0 -b sh-port\n\
         -a -t 10.0.0.100:80 -r 10.0.0.1:8080 -m -w 3\n\
         -A -f 7 -s wlc -p 300\n\
         -a -f 7 -r 10.0.0.1:0 -i -w 100 --tun-type ipip\n\
         -A -f 8 -6 -s rr\n\
         -a -f 8 -6 -r 10.0.0.2:0 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum\n\
         -a -f 8 -6 -r [2001:db8::2]:0 -i -w 5 --tun-type gre --tun-nocsum\n"
    );
    let mut again = Table::new();
    assert_eq!(run(&mut again, "-R", &saved).2, 0);
    assert_eq!(run(&mut again, "-S -n", "").0, saved);
}

#[test]
fn restore_reports_each_failure_and_keeps_going() {
    let mut t = Table::new();
    let (out, err, rc) = run(
        &mut t,
        "-R",
        "-A -f 20\n-A -f 20\n-a -f 21 -r 10.0.0.5\n-A -f 22\n",
    );
    assert_eq!(out, "");
    assert_eq!(err, "Service already exists\nService not defined\n");
    assert_eq!(rc, 0, "the status is the last line's");
    let (_, _, rc) = run(&mut t, "-R", "-A -f 23\n-A -f 23\n");
    assert_eq!(rc, 255);
    // A bad argument stops the restore at once, with status 2.
    let (_, err, rc) = run(&mut t, "-R", "-A -f 24\n-A -f x\n-A -f 25\n");
    assert_eq!(
        (err.as_str(), rc),
        ("invalid fwmark value `x' specified\n", 2)
    );
    let (saved, _, _) = run(&mut t, "-S -n", "");
    assert!(
        saved.contains("-A -f 24 ") && !saved.contains("-A -f 25 "),
        "{saved}"
    );
}

#[test]
fn timeouts_and_daemons_list_as_ipvsadm_does() {
    let mut t = Table::new();
    assert_eq!(run(&mut t, "--set 100 0 50", "").2, 0);
    assert_eq!(
        run(&mut t, "-L --timeout", "").0,
        "Timeout (tcp tcpfin udp): 100 120 50\n"
    );
    assert_eq!(
        run(
            &mut t,
            "--start-daemon master --mcast-interface lo --syncid 9 --mcast-group 224.0.0.99 --mcast-port 9000",
            ""
        )
        .2,
        0
    );
    t.daemons.push(SyncDaemon {
        state: DaemonState::Backup,
        mcast_ifn: "eth1".into(),
        sync_id: 3,
        sync_maxlen: 1472,
        mcast_group: Some("ff02::81".parse::<IpAddr>().unwrap()),
        mcast_port: 8848,
        mcast_ttl: 1,
    });
    assert_eq!(
        run(&mut t, "-L --daemon", "").0,
        "master sync daemon (mcast=lo, syncid=9, group=224.0.0.99, port=9000)\n\
         backup sync daemon (mcast=eth1, syncid=3, maxlen=1472, group=ff02::81, port=8848, ttl=1)\n"
    );
    assert_eq!(
        run(&mut t, "--start-daemon master", "").1,
        "Daemon has already run\n"
    );
    assert_eq!(run(&mut t, "--stop-daemon master", "").2, 0);
    assert_eq!(
        run(&mut t, "--stop-daemon master", "").1,
        "No daemon is running\n"
    );
}

#[test]
fn json_listing_is_structured() {
    let mut t = Table::new();
    run(
        &mut t,
        "-R",
        "-A -f 7 -s wlc -p 300\n-a -f 7 -r 10.0.0.1 -i --tun-type gue --tun-port 6080 --tun-remcsum -w 100\n",
    );
    let (out, err, rc) = run(&mut t, "-L --json", "");
    assert_eq!((err.as_str(), rc), ("", 0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["version"], "1.2.1");
    let svc = &v["services"][0];
    assert_eq!(svc["service"], "-f 7");
    assert_eq!(svc["fwmark"], 7);
    assert_eq!(svc["persistent"], true);
    assert_eq!(svc["timeout"], 300);
    let d = &svc["dests"][0];
    assert_eq!(d["address"], "10.0.0.1");
    assert_eq!(d["forward"], "tunnel");
    assert_eq!(d["tunnel"]["type"], "gue");
    assert_eq!(d["tunnel"]["port"], 6080);
    assert_eq!(d["tunnel"]["checksum"], "remcsum");
    assert_eq!(d["weight"], 100);
    let (one, _, _) = run(&mut t, "-L -f 7 --json", "");
    let one: serde_json::Value = serde_json::from_str(&one).unwrap();
    assert_eq!(one["service"], "-f 7");
    let (timeouts, _, _) = run(&mut t, "-L --timeout --json", "");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&timeouts).unwrap()["tcp_fin"],
        120
    );
    // --json belongs to listings only.
    assert_eq!(
        run(&mut t, "-S --json", ""),
        (
            String::new(),
            "Illegal 'json' option with the 'save' command\n".to_string(),
            2
        )
    );
}

#[test]
fn arguments_are_refused_before_the_kernel_is_asked() {
    // A connect that fails: any kernel access would print "Can't initialize ipvs".
    let args: Vec<Vec<u8>> = ["-a", "-f", "7", "-r", "10.0.0.2", "-w", "x"]
        .iter()
        .map(|w| w.as_bytes().to_vec())
        .collect();
    let names = StaticResolver::empty();
    let mut err = Vec::new();
    let connect = Box::new(|| -> Result<Box<dyn Backend>, KernelError> {
        panic!("the kernel must not be contacted for a refused command line")
    });
    let mut runner = Runner::new("ipvsadm", &names, connect, &mut err);
    let status = runner.run(&args, &mut "".as_bytes());
    drop(runner);
    assert_eq!(status, 2);
    assert_eq!(
        String::from_utf8(err).unwrap(),
        "illegal weight specified\n"
    );
}

/// Hands out its chunks one `read` at a time, like a pipe from a slow writer.
struct Trickle(Vec<&'static str>);

impl std::io::Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0.is_empty() {
            return Ok(0);
        }
        let chunk = self.0.remove(0).as_bytes();
        buf[..chunk.len()].copy_from_slice(chunk);
        Ok(chunk.len())
    }
}

#[test]
fn restore_applies_what_it_has_before_waiting_for_more() {
    let mut t = Table::new();
    let mut slow = Trickle(vec!["-A -f 1\n-A -f 2\n", "-A -f 3\n"]);
    assert_eq!(run_reading(&mut t, "-R", &mut slow).2, 0);
    // Lines that arrived together went together; the third was not held for EOF.
    assert_eq!(t.batches, vec![2, 1]);
}
