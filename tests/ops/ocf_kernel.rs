//! The OCF agent against the real daemon on a real IPVS kernel (the test bed's guest):
//! ocf-tester's whole run, each action's exit code with the kernel as the oracle
//! (`ipvsadm -S -n`, the real one), and the daemon going away: monitor reports the live
//! service as failed, stop removes it without the daemon (and nothing else), a restarted
//! daemon adopts what runs.
//!
//! The daemon is `bigbro daemon` itself, started inside the test's network namespace with
//! a small configuration; the test waits for its sd_notify READY=1, as systemd does.

use crate::ops_common;
use crate::testbed;

use std::path::Path;
use std::process::Command;

use ops_common::daemon::{setup, Daemon, BIGBRO};
use ops_common::{assert_rc, rc, Run};
use testbed::kernel_test;

/// One action of the agent for `cluster`, with the built binary and `config`; op
/// timeout 4 s, so it waits 1 s for a daemon that does not answer.
fn agent(action: &str, cluster: &str, config: &Path) -> Run {
    let config = config.display().to_string();
    ops_common::run_agent(
        "dash",
        action,
        &[
            ("OCF_RESKEY_cluster", cluster),
            ("OCF_RESKEY_config", &config),
            ("OCF_RESKEY_binary", BIGBRO),
            ("OCF_RESKEY_CRM_meta_timeout", "4000"),
            ("OCF_RESKEY_CRM_meta_interval", "10000"),
        ],
    )
}

/// The services in the kernel, as the real ipvsadm lists them, sorted.
fn services() -> Vec<String> {
    let mut all: Vec<String> = testbed::sh("ipvsadm -S -n")
        .lines()
        .filter(|l| l.starts_with("-A "))
        .map(str::to_string)
        .collect();
    all.sort();
    all
}

/// `lines`, sorted, for comparing with [`services`].
fn sorted(lines: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    all.sort();
    all
}

kernel_test! {
    /// ocf-tester, the resource-agents conformance run, against the live daemon.
    fn ocf_tester_passes_against_the_daemon() {
        let (dir, config) = setup();
        let _daemon = Daemon::start(dir.path(), &config);
        let out = Command::new("ocf-tester")
            .args(["-v", "-n", "t", "-o", "cluster=web", "-o"])
            .arg(format!("binary={BIGBRO}"))
            .arg("-o")
            .arg(format!("config={}", config.display()))
            // Installed at a path `nobody` can reach wherever the checkout lives: ocf-tester
            // runs the agent's meta-data as `nobody`.
            .arg(ops_common::guest_agent())
            .env("OCF_ROOT", ops_common::OCF_ROOT)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "ocf-tester failed:\n{text}");
        assert!(text.contains("passed all tests"), "{text}");
        // It ends with stop: nothing of web is left.
        assert_eq!(services(), Vec::<String>::new());
    }

    /// Every action's exit code, with the kernel as the oracle.
    fn each_action_has_its_exit_code() {
        let (dir, config) = setup();
        let _daemon = Daemon::start(dir.path(), &config);
        assert_rc("validate-all", &agent("validate-all", "web", &config), rc::SUCCESS);
        assert_rc("monitor, stopped", &agent("monitor", "web", &config), rc::NOT_RUNNING);
        assert_eq!(services(), Vec::<String>::new());

        assert_rc("start", &agent("start", "web", &config), rc::SUCCESS);
        assert_eq!(services(), sorted(&["-A -f 7 -s wlc", "-A -f 10007 -s wlc"]));
        let saved = testbed::sh("ipvsadm -S -n");
        assert!(saved.contains("-a -f 7 -r 127.0.0.2:0 -i"), "{saved}");
        assert_rc("monitor, started", &agent("monitor", "web", &config), rc::SUCCESS);
        assert_rc("start again", &agent("start", "web", &config), rc::SUCCESS);

        assert_rc("stop", &agent("stop", "web", &config), rc::SUCCESS);
        assert_eq!(services(), Vec::<String>::new());
        assert_rc("monitor after stop", &agent("monitor", "web", &config), rc::NOT_RUNNING);
        assert_rc("stop again", &agent("stop", "web", &config), rc::SUCCESS);

        // A cluster the daemon does not have.
        assert_rc("monitor, unknown", &agent("monitor", "nope", &config), rc::NOT_RUNNING);
        assert_rc("start, unknown", &agent("start", "nope", &config), rc::ERR_ARGS);
        assert_rc("stop, unknown", &agent("stop", "nope", &config), rc::SUCCESS);
        assert_rc("validate-all, unknown", &agent("validate-all", "nope", &config), rc::ERR_ARGS);
        assert_eq!(services(), Vec::<String>::new());
    }

    /// The daemon goes away with web running: its service stays (SIGTERM leaves IPVS as
    /// it is); monitor calls that failed, start fails, stop removes web's services itself
    /// and nothing else; a daemon started again adopts what still runs.
    fn without_the_daemon_stop_removes_the_service_itself() {
        let (dir, config) = setup();
        let mut daemon = Daemon::start(dir.path(), &config);
        assert_rc("start web", &agent("start", "web", &config), rc::SUCCESS);
        assert_rc("start dns", &agent("start", "dns", &config), rc::SUCCESS);
        // A service that is nobody's business but the operator's.
        testbed::sh("ipvsadm -A -f 99 -s rr");
        daemon.stop();
        let all = ["-A -f 7 -s wlc", "-A -f 10007 -s wlc", "-A -f 53 -s rr", "-A -f 99 -s rr"];
        assert_eq!(services(), sorted(&all));

        assert_rc("start, daemon gone", &agent("start", "web", &config), rc::ERR_GENERIC);
        assert_eq!(services(), sorted(&all));

        let run = agent("monitor", "web", &config);
        assert_rc("monitor, daemon gone, web live", &run, rc::ERR_GENERIC);
        assert!(run.stderr.contains("is live and nothing adjusts its weights"), "{}", run.stderr);
        let run = agent("stop", "web", &config);
        assert_rc("stop, daemon gone", &run, rc::SUCCESS);
        assert_eq!(services(), sorted(&["-A -f 53 -s rr", "-A -f 99 -s rr"]));
        assert_rc("monitor after stop", &agent("monitor", "web", &config), rc::NOT_RUNNING);
        assert_rc("stop again", &agent("stop", "web", &config), rc::SUCCESS);

        // IPv6: dns6 is fwmark 54 in the IPv6 family; an IPv4 service with mark 54 is
        // someone else's and stays.
        testbed::sh("ipvsadm -A -f 54 -s rr");
        let mut daemon = Daemon::start(dir.path(), &config);
        assert_rc("start dns6", &agent("start", "dns6", &config), rc::SUCCESS);
        daemon.stop();
        let before = services();
        let v6: Vec<String> = before
            .iter()
            .filter(|l| l.contains("-f 54 ") && l.contains(" -6"))
            .cloned()
            .collect();
        assert_eq!(v6.len(), 1, "{before:?}");
        let run = agent("stop", "dns6", &config);
        assert_rc("stop dns6, daemon gone", &run, rc::SUCCESS);
        let after: Vec<String> = before.into_iter().filter(|l| *l != v6[0]).collect();
        assert_eq!(services(), after);
        assert!(after.contains(&"-A -f 54 -s rr".to_string()), "{after:?}");

        // Back: dns is adopted as running (its service is there), web stays stopped.
        let _daemon = Daemon::start(dir.path(), &config);
        assert_rc("monitor dns, adopted", &agent("monitor", "dns", &config), rc::SUCCESS);
        assert_rc("monitor web, restarted", &agent("monitor", "web", &config), rc::NOT_RUNNING);
        assert_eq!(
            services(),
            sorted(&["-A -f 53 -s rr", "-A -f 54 -s rr", "-A -f 99 -s rr"])
        );
    }
}
