//! The CLI client (`bigbro status|start|stop|drain|undrain|reload`) as a user runs it: the
//! real binary against a running API (a daemon on fakes behind a loopback socket), its
//! output, its exit status (0 done, 1 refused, 3 unreachable) and its effect.

use crate::api_common;

use api_common::{start, start_with, web1, web2, Api, Setup, CONFIG, TOKEN};
use bigbro::api::Token;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn bigbro(args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_bigbro"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("run bigbro");
    Run {
        code: out.status.code().expect("exit status"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

async fn cli(api: &Api, args: &[&str]) -> Run {
    let url = format!("http://{}", api.addr);
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--url", &url]);
    bigbro(&all).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_status_drain_undrain_stop() {
    let api = start(CONFIG).await;
    api.fake.set_health(&web1(), 30);
    api.fake.set_health(&web2(), 70);

    let r = cli(&api, &["start", "web"]).await;
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "web: started\n"),
        "{}",
        r.stderr
    );
    let r = cli(&api, &["start", "web"]).await;
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "web: already running (nothing changed)\n")
    );
    api.wait_weight("web", 100).await;

    let r = cli(&api, &["status"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "web (fwmark 7): running, combined weight 100, wrr active/active"
    );
    let header: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        header,
        ["NODE", "STATUS", "HEALTH", "WEIGHT", "KERNEL", "RAMP", "LAST", "PROBE", "OVERRIDE"]
    );
    let row: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(
        &row[..7],
        ["10.0.0.2", "up", "70", "70", "70", "100%", "ok"],
        "{}",
        r.stdout
    );
    assert_eq!(row.last(), Some(&"-"));
    assert!(
        r.stdout
            .contains("db (fwmark 8): stopped, combined weight 0, wlc active/active"),
        "{}",
        r.stdout
    );

    // Drain with a reason and a time limit: weight 0 in the kernel, shown in status.
    let r = cli(
        &api,
        &[
            "drain",
            "web",
            "10.0.0.2",
            "--reason",
            "kernel upgrade",
            "--for",
            "900",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "web 10.0.0.2: drained (weight 0, still in IPVS so established connections finish) for 900 s\n"
    );
    api.wait_weight("web", 30).await;
    assert!(api.fake.kernel.save().contains("-r 10.0.0.2:0 -i -w 0"));
    let r = cli(&api, &["status", "web"]).await;
    let row = r.stdout.lines().nth(3).unwrap();
    assert!(row.contains("drained (kernel upgrade, 9"), "{}", r.stdout);
    assert!(
        !r.stdout.contains("db (fwmark"),
        "status web shows only web"
    );

    let r = cli(&api, &["undrain", "web", "10.0.0.2"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("web 10.0.0.2: override cleared (was drained (kernel upgrade, "),
        "{}",
        r.stdout
    );
    api.wait_weight("web", 100).await;
    let r = cli(&api, &["undrain", "web", "10.0.0.2"]).await;
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "web 10.0.0.2: had no override (nothing changed)\n")
    );

    // --json gives the daemon's answer.
    let r = cli(&api, &["status", "web", "--json"]).await;
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["combined_weight"], 100);

    let r = cli(&api, &["stop", "web"]).await;
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "web: stopped: its IPVS services are deleted\n")
    );
    assert_eq!(api.fake.kernel.save(), "");
    let r = cli(&api, &["stop", "web"]).await;
    assert_eq!(r.stdout, "web: not running (nothing changed)\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_say_why_and_exit_1() {
    let api = start(CONFIG).await;
    let r = cli(&api, &["start", "nope"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "bigbro: no cluster is named \"nope\"; GET /api/v1/clusters lists them (HTTP 404)\n"
    );
    let r = cli(&api, &["drain", "web", "10.0.0.9"]).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not running"), "{}", r.stderr);
    let r = cli(&api, &["drain", "web", "not-an-address"]).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("is not an IP address"), "{}", r.stderr);

    // A broken configuration: every error listed, and the exit status says refused.
    std::fs::write(&api.config, CONFIG.replace("fwmark: 8", "fwmark: 0")).unwrap();
    let r = cli(&api, &["reload"]).await;
    assert_eq!(r.code, 1, "{}", r.stdout);
    let mut lines = r.stderr.lines();
    let first = lines.next().unwrap();
    assert!(
        first.contains("is not valid (1 error); the running configuration is unchanged (HTTP 422)"),
        "{}",
        r.stderr
    );
    let error = lines.next().unwrap();
    assert!(
        error.starts_with("  ") && error.contains("bigbro.yml:") && error.contains("fwmark"),
        "{error}"
    );
    // Fixed: applied.
    std::fs::write(&api.config, CONFIG).unwrap();
    let r = cli(&api, &["reload"]).await;
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (
            0,
            "configuration reloaded: added none; removed none; changed none\n"
        ),
        "{}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_file_is_sent_and_needed() {
    let api = start_with(
        CONFIG,
        Setup {
            token: Some(Token::new(TOKEN).unwrap()),
            ..Setup::default()
        },
    )
    .await;
    let r = cli(&api, &["start", "web"]).await;
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("needs `Authorization: Bearer <token>`"),
        "{}",
        r.stderr
    );
    let file = api.dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let r = cli(
        &api,
        &["start", "web", "--token-file", file.to_str().unwrap()],
    )
    .await;
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "web: started\n"),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains(TOKEN) && !r.stderr.contains(TOKEN));
    // Reads need no token.
    assert_eq!(cli(&api, &["status"]).await.code, 0);
    // A missing token file is named.
    let r = cli(&api, &["stop", "web", "--token-file", "/nonexistent/token"]).await;
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("cannot read the token file /nonexistent/token"),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn an_unreachable_daemon_exits_3() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let r = bigbro(&["status", "--url", &url]).await;
    assert_eq!(r.code, 3);
    assert!(
        r.stderr
            .starts_with(&format!("bigbro: cannot reach the daemon at {url}: ")),
        "{}",
        r.stderr
    );
    let r = bigbro(&["status", "--url", "ftp://x"]).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("must start with http://"), "{}", r.stderr);
}

#[tokio::test]
async fn an_https_url_is_refused_the_api_is_plain_http() {
    // A listening port that must see no connection: the refusal comes before any.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    for command in [&["status"][..], &["start", "web"], &["reload"]] {
        let mut args = command.to_vec();
        args.extend(["--url", &url]);
        let r = bigbro(&args).await;
        assert_eq!(r.code, 1, "{command:?}: {}", r.stderr);
        assert_eq!(
            r.stderr,
            format!(
                "bigbro: --url \"{url}\" is https://, but the API is plain HTTP (the daemon serves no TLS): use http://, for example http://127.0.0.1:9292\n"
            ),
            "{command:?}"
        );
        assert_eq!(r.stdout, "");
    }
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the client connected: {accepted:?}"
    );
}
