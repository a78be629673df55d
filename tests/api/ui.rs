//! The status page `/ui` as a person sees it: loaded in headless Chromium (Debian's
//! `chromium`, installed by tests/setup.sh) from a daemon on fakes, and checked by what it
//! shows: each cluster's state, fwmark and combined weight, each node's status, health,
//! weight, kernel weight, last probe and override, and the widths of the weight-share and
//! ramp bars. A screenshot is left in target/ for a person to look at.
//!
//! Without Chromium the test prints one loud line and passes, unless CI is set.

use crate::api_common;

use std::path::PathBuf;
use std::time::Duration;

use api_common::{start_with, web1, web2, Setup};
use bigbro::health::{ProbeError, Script, Target};
use bigbro::ipvs::{Dest, Op, Service, ServiceKey};
use bigbro::reconcile::FakeKernel;
use bigbro::types::Fwmark;

/// A variant of tests/fixtures/two_clusters.yml: a third `web` node and an hour-long
/// ramp, so the page shows nodes part way up.
const CONFIG: &str = "\
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wrr
    ramp_up_time: 3600
    check_interval: 0.2
    nodes:
      - {address: 10.0.0.1, port: 9001, path: /web/status}
      - {address: 10.0.0.2, port: 9001, path: /web/status}
      - {address: 10.0.0.3, port: 9001, path: /web/status}
  - cluster_name: db
    fwmark: 8
    scheduler: wlc
    nodes:
      - {address: 10.0.1.1, port: 9001, path: /db/status}
";

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Runs headless Chromium on `url` with the given mode flags; returns its stdout.
async fn run_chromium(binary: &PathBuf, url: &str, mode: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1400,700",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(mode)
            .arg(url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium finished within 90 s")
    .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 DOM")
}

/// The text a person reads in an HTML fragment: tags dropped, entities decoded,
/// whitespace collapsed.
fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The element that starts at the first `<tag ...>` containing `marker`, up to its
/// matching close (no nesting of the same tag inside, which holds for tr, td, h2).
fn element<'a>(html: &'a str, tag: &str, marker: &str) -> &'a str {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in the page"));
    let start = html[..at].rfind(&format!("<{tag}")).expect("opening tag");
    let end = at + html[at..].find(&format!("</{tag}>")).expect("closing tag");
    &html[start..end + tag.len() + 3]
}

/// A node row's cells by class: (text, bar width if the cell has a bar).
fn cell(row: &str, class: &str) -> (String, Option<String>) {
    let td = element(row, "td", &format!("class=\"{class}\""));
    let width = td
        .split("width:")
        .nth(1)
        .map(|rest| rest.split(['"', ';']).next().unwrap().trim().to_string());
    (text_of(td), width)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_clusters_nodes_weights_and_bars() {
    let Some(browser) = chromium() else {
        let line = "api_ui: SKIPPED: chromium is not installed (run tests/setup.sh)";
        eprintln!("{line}");
        assert!(
            std::env::var("CI").is_err(),
            "{line}; CI is set, so this is a failure"
        );
        return;
    };

    // web runs already (found in the kernel): 10.0.0.1 at weight 15 with health 30 resumes
    // its hour-long ramp half way; 10.0.0.2 at 70 with health 70 is fully up; 10.0.0.3's
    // health endpoint refuses connections and is drained by an operator.
    let kernel = FakeKernel::new();
    let key = ServiceKey::fwmark_v4(Fwmark::new(7).unwrap());
    kernel.hand_edit(Op::AddService(Service::new(key, "wrr")));
    for (addr, w) in [("10.0.0.1", 15), ("10.0.0.2", 70), ("10.0.0.3", 5)] {
        kernel.hand_edit(Op::AddDest {
            service: key,
            dest: Dest::ipip(addr.parse().unwrap(), w),
        });
    }
    let api = start_with(
        CONFIG,
        Setup {
            kernel: Some(kernel),
            ..Setup::default()
        },
    )
    .await;
    api.fake.set_health(&web1(), 30);
    api.fake.set_health(&web2(), 70);
    let web3 = Target::litmus("10.0.0.3".parse().unwrap(), 9001, "/web/status").unwrap();
    api.fake.prober.set(
        &web3,
        Script::Answer {
            result: Err(ProbeError::Refused),
            after: Duration::from_millis(3),
        },
    );
    api.wait_weight("web", 85).await;
    let r = api
        .send(
            "PUT",
            "/api/v1/clusters/web/nodes/10.0.0.3/override",
            r#"{"force": "down", "reason": "disk <failing> & replaced"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let url = format!("http://{}/ui", api.addr);
    let dom = run_chromium(&browser, &url, &["--dump-dom"]).await;

    assert!(dom.contains("<title>bigbro status</title>"), "{dom}");
    assert!(
        dom.contains("http-equiv=\"refresh\" content=\"2\""),
        "the page does not refresh"
    );

    let web = text_of(element(&dom, "h2", "class=\"name\">web<"));
    assert_eq!(
        web,
        "web running fwmark 7 · wrr · active/active · combined weight 85"
    );
    let db = text_of(element(&dom, "h2", "class=\"name\">db<"));
    assert_eq!(
        db,
        "db stopped fwmark 8 · wlc · active/active · combined weight 0"
    );

    let row1 = element(&dom, "tr", "data-node=\"10.0.0.1\"");
    assert_eq!(cell(row1, "status").0, "up");
    assert_eq!(cell(row1, "health").0, "30");
    assert_eq!(
        cell(row1, "weight"),
        ("15 ramp".into(), Some("17.6%".into()))
    );
    assert_eq!(cell(row1, "kernel").0, "15");
    assert_eq!(cell(row1, "ramp"), ("50%".into(), Some("50%".into())));
    let probe = cell(row1, "probe").0;
    assert!(probe.starts_with("ok, health 30 in "), "{probe}");

    let row2 = element(&dom, "tr", "data-node=\"10.0.0.2\"");
    assert_eq!(cell(row2, "status").0, "up");
    assert_eq!(
        cell(row2, "weight"),
        ("70 health".into(), Some("82.4%".into()))
    );
    assert_eq!(cell(row2, "kernel").0, "70");
    assert_eq!(cell(row2, "ramp"), ("100%".into(), Some("100%".into())));
    assert_eq!(cell(row2, "override").0, "–");

    let row3 = element(&dom, "tr", "data-node=\"10.0.0.3\"");
    assert_eq!(cell(row3, "status").0, "down");
    assert_eq!(cell(row3, "health").0, "–");
    assert_eq!(
        cell(row3, "weight"),
        ("0 node override".into(), Some("0.0%".into()))
    );
    assert_eq!(cell(row3, "kernel").0, "0");
    assert_eq!(cell(row3, "ramp"), ("0%".into(), Some("0%".into())));
    let probe = cell(row3, "probe").0;
    assert!(
        probe.starts_with("connection refused: nothing listens on the health check port in "),
        "{probe}"
    );
    // The reason is shown as written, markup and all, not interpreted.
    assert_eq!(
        cell(row3, "override").0,
        "drained (disk <failing> & replaced)"
    );

    let row_db = element(&dom, "tr", "data-node=\"10.0.1.1\"");
    assert_eq!(cell(row_db, "status").0, "not probed");
    assert_eq!(cell(row_db, "kernel").0, "not in IPVS");

    // A screenshot for people (and for the report).
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("api_ui.png");
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        &browser,
        &url,
        &[&format!("--screenshot={}", shot.display())],
    )
    .await;
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "no real image"
    );
    eprintln!("screenshot: {}", shot.display());
}
