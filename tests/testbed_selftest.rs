//! The kernel test bed's own tests: a guest test starts in a fresh network namespace, `sh`
//! and `sh_status` report what commands did, and the host reports guest failures and hung
//! guest tests as failures of the right tests, with the guest's output.

mod testbed;

use std::process::Command;

use testbed::kernel_test;

/// Set for a second run of this binary in which the `deliberately_*` tests misbehave.
const MISBEHAVE: &str = "BIGBRO_TESTBED_SELFTEST_MISBEHAVE";

kernel_test! {
    fn guest_test_starts_in_fresh_namespace_with_lo_up() {
        let ours = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let init = std::fs::read_link("/proc/1/ns/net").unwrap();
        assert_ne!(ours, init, "the test body runs in the guest's initial network namespace");

        let links = testbed::sh("ip -o link show");
        let names: Vec<&str> = links
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n))
            .collect();
        // tunl0 is created in every namespace once the ipip module is loaded.
        assert_eq!(names, ["lo", "tunl0"], "{links}");
        assert!(links.lines().next().unwrap().contains("UP"), "lo is not up: {links}");
        assert_eq!(testbed::sh("ip -4 addr show lo | grep -c 127.0.0.1"), "1\n");
    }

    fn sh_and_sh_status_report_status_and_output() {
        assert_eq!(testbed::sh("echo hello"), "hello\n");
        assert_eq!(
            testbed::sh_status("echo out; echo err >&2; exit 3"),
            (3, "out\n".to_string(), "err\n".to_string())
        );
        assert_eq!(testbed::sh_status("kill -9 $$").0, 128 + 9);
        let failed = std::panic::catch_unwind(|| testbed::sh("echo why >&2; false"));
        let message = *failed.unwrap_err().downcast::<String>().unwrap();
        assert!(message.contains("exit status 1") && message.contains("why"), "{message}");
    }

    fn block_on_runs_tokio_in_the_test_namespace() {
        let ours = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let (theirs, echoed) = testbed::block_on(async {
            let theirs = tokio::spawn(async {
                std::fs::read_link("/proc/thread-self/ns/net").unwrap()
            })
            .await
            .unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 5];
                tokio::io::AsyncReadExt::read_exact(&mut s, &mut buf).await.unwrap();
                buf
            });
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            tokio::io::AsyncWriteExt::write_all(&mut c, b"hello").await.unwrap();
            (theirs, server.await.unwrap())
        });
        assert_eq!(ours, theirs);
        assert_eq!(&echoed, b"hello");
    }

    fn deliberately_failing_when_asked() {
        if std::env::var_os(MISBEHAVE).is_some() {
            panic!("deliberate failure inside the guest");
        }
    }

    fn deliberately_hanging_when_asked() {
        if std::env::var_os(MISBEHAVE).is_some() {
            println!("about to hang");
            // The hang under test: the guest's time limit must end it.
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// Runs the `deliberately_*` kernel tests again, misbehaving, in a VM of their own with a
/// 5 s time limit, and checks the host reports both as failed, with the guest's words.
#[test]
fn host_reports_guest_failures_and_hangs() {
    if !testbed::host_ready("host_reports_guest_failures_and_hangs") {
        return;
    }
    let run = Command::new(std::env::current_exe().unwrap())
        .args(["deliberately_", "--test-threads=2"])
        .env(MISBEHAVE, "1")
        .env("BIGBRO_TESTBED_TIMEOUT", "5")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let all = format!("{stdout}\n{stderr}");
    assert!(!run.status.success(), "{all}");
    for expected in [
        "test deliberately_failing_when_asked ... FAILED",
        "test deliberately_hanging_when_asked ... FAILED",
        "deliberate failure inside the guest",
        "about to hang",
        "timed out after 5s",
        "test result: FAILED. 0 passed; 2 failed",
        "testbed: 2 kernel test(s) ran in the guest",
        "testbed: guest kernel ",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
}
