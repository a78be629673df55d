//! big_brother's HTTP routes over a real loopback socket, status and body byte for byte
//! (docs/api.md, "big_brother's routes"): `GET /`, `GET /cluster/NAME` (adopting kernel state),
//! `/status` (not adopting), `/status_detail`, `PUT` and `DELETE` with their 200 `OK`,
//! empty 304 and 404 `Cluster NAME not found`, and 500 `Application error`. The daemon
//! behind the API is the real controller on the in-memory IPVS table.

use crate::api_common;

use api_common::{start, web1, web2, CONFIG};
use bigbro::ipvs::{Dest, Op, Service, ServiceKey};
use bigbro::types::Fwmark;

const BANNER: &str = "Big Brother: 0.9.12 (bigbro 0.1.0)\n";

fn fwm(n: u32) -> ServiceKey {
    ServiceKey::fwmark_v4(Fwmark::new(n).unwrap())
}

#[tokio::test]
async fn listing_status_start_and_stop_byte_for_byte() {
    let api = start(CONFIG).await;
    api.fake.set_health(&web1(), 30);
    api.fake.set_health(&web2(), 70);

    let r = api.get("/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(
        r.text(),
        format!("{BANNER}\nRunning:\n\nStopped:\n- web (7)\n- db (8)\n\n")
    );

    for path in ["/cluster/web", "/cluster/web/status"] {
        let r = api.get(path).await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "Running: false\nCombinedWeight: 0\n"),
            "{path}"
        );
    }
    let r = api.get("/cluster/web/status_detail").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.text(),
        r#"{"nodes":{"10.0.0.1":0,"10.0.0.2":0},"cluster":"web","running":false}"#
    );

    // Start: 200 OK; the service is in the kernel at once.
    let r = api.put("/cluster/web").await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    assert!(
        api.fake.kernel.save().contains("-A -f 7 -s wrr"),
        "{}",
        api.fake.kernel.save()
    );
    // Again: 304 with an empty body.
    let r = api.put("/cluster/web").await;
    assert_eq!((r.status, r.body.len()), (304, 0));

    api.wait_weight("web", 100).await;
    for path in ["/cluster/web", "/cluster/web/status"] {
        let r = api.get(path).await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "Running: true\nCombinedWeight: 100\n"),
            "{path}"
        );
    }
    assert_eq!(
        api.get("/cluster/web/status_detail").await.text(),
        r#"{"nodes":{"10.0.0.1":30,"10.0.0.2":70},"cluster":"web","running":true}"#
    );
    assert_eq!(
        api.get("/").await.text(),
        format!("{BANNER}\nRunning:\n+ web (7) - CombinedWeight: 100\n\nStopped:\n- db (8)\n\n")
    );

    // Both running: both listed under Running, none under Stopped.
    assert_eq!(api.put("/cluster/db").await.text(), "OK");
    api.wait_weight("db", 100).await;
    assert_eq!(
        api.get("/").await.text(),
        format!(
            "{BANNER}\nRunning:\n+ web (7) - CombinedWeight: 100\n+ db (8) - CombinedWeight: 100\n\nStopped:\n\n"
        )
    );

    // Stop: 200 OK, the service is gone; again: 304, empty.
    let r = api.delete("/cluster/web").await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    assert!(
        !api.fake.kernel.save().contains("-f 7 "),
        "{}",
        api.fake.kernel.save()
    );
    let r = api.delete("/cluster/web").await;
    assert_eq!((r.status, r.body.len()), (304, 0));
    assert_eq!(
        api.get("/cluster/web").await.text(),
        "Running: false\nCombinedWeight: 0\n"
    );
}

#[tokio::test]
async fn unknown_clusters_get_big_brothers_404_on_every_route() {
    let api = start(CONFIG).await;
    let before = api.fake.kernel.save();
    for (method, path) in [
        ("GET", "/cluster/nope"),
        ("PUT", "/cluster/nope"),
        ("DELETE", "/cluster/nope"),
        ("GET", "/cluster/nope/status"),
        ("GET", "/cluster/nope/status_detail"),
        ("GET", "/cluster/nope/anything/else"),
    ] {
        let r = api_common::request(api.addr, method, path, &[], b"").await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (404, "Cluster nope not found"),
            "{method} {path}"
        );
    }
    assert_eq!(api.fake.kernel.save(), before, "a 404 changed the kernel");
    let r = api.get("/no/such/route").await;
    assert_eq!((r.status, r.text().as_str()), (404, "Not Found\n"));
}

#[tokio::test]
async fn get_cluster_adopts_a_service_found_in_the_kernel_and_status_does_not() {
    let api = start(CONFIG).await;
    // The service appears in the kernel behind the daemon's back (as after a crash of a
    // daemon that never wrote state anywhere but the kernel).
    api.fake
        .kernel
        .hand_edit(Op::AddService(Service::new(fwm(7), "wrr")));
    api.fake.kernel.hand_edit(Op::AddDest {
        service: fwm(7),
        dest: Dest::ipip("10.0.0.1".parse().unwrap(), 40),
    });

    // /status never synchronizes: still stopped.
    assert_eq!(
        api.get("/cluster/web/status").await.text(),
        "Running: false\nCombinedWeight: 0\n"
    );
    // GET /cluster/NAME synchronizes first: adopted, running, and the adopted node keeps
    // its kernel weight.
    let r = api.get("/cluster/web").await;
    assert_eq!(r.status, 200);
    assert!(
        r.text().starts_with("Running: true\nCombinedWeight: "),
        "{}",
        r.text()
    );
    assert!(
        api.fake
            .kernel
            .save()
            .contains("-a -f 7 -r 10.0.0.1:0 -i -w 40"),
        "adoption changed the weight: {}",
        api.fake.kernel.save()
    );
    // PUT after adoption: 304, as big_brother answered after synchronize!.
    let r = api.put("/cluster/web").await;
    assert_eq!((r.status, r.body.len()), (304, 0));
}

#[tokio::test]
async fn daemon_failures_are_500_application_error() {
    let api = start(CONFIG).await;
    api.handle().shutdown().await;
    for (method, path) in [
        ("PUT", "/cluster/web"),
        ("DELETE", "/cluster/web"),
        ("GET", "/cluster/web"),
    ] {
        let r = api_common::request(api.addr, method, path, &[], b"").await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (500, "Application error"),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn wrong_methods_get_405_with_allow_and_change_nothing() {
    let api = start(CONFIG).await;
    for (method, path, allow) in [
        ("POST", "/cluster/web", "GET,HEAD,PUT,DELETE"),
        ("PATCH", "/cluster/web", "GET,HEAD,PUT,DELETE"),
        ("DELETE", "/cluster/web/status", "GET,HEAD"),
        ("PUT", "/cluster/web/status_detail", "GET,HEAD"),
        ("POST", "/", "GET,HEAD"),
    ] {
        let r = api_common::request(api.addr, method, path, &[], b"").await;
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
        assert!(
            r.text().contains(&format!("{method} is not allowed")),
            "{}",
            r.text()
        );
    }
    assert_eq!(api.fake.kernel.save(), "", "a 405 changed the kernel");
    assert_eq!(
        api.get("/cluster/web").await.text(),
        "Running: false\nCombinedWeight: 0\n"
    );
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let api = start(CONFIG).await;
    let get = api.get("/").await;
    let head = api_common::request(api.addr, "HEAD", "/", &[], b"").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(get.body.len().to_string().as_str())
    );
}

/// Sends `raw` and shuts down the write side at once, as `printf ... | nc -N` does, then
/// reads the whole answer.
async fn half_closed(addr: std::net::SocketAddr, raw: &str) -> api_common::Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw.as_bytes()).await.unwrap();
    // TcpStream::shutdown(Write): the client's FIN follows the request at once.
    stream.shutdown().await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut bytes),
    )
    .await
    .expect("answer within 10 s")
    .expect("read the answer");
    assert!(!bytes.is_empty(), "no answer to a half-closed {raw:?}");
    api_common::parse(&bytes, false)
}

// Two workers, as in the daemon: on one thread the answer was always ready before the
// server saw the end of the input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_half_closes_after_its_request_is_answered_and_obeyed() {
    let api = start(CONFIG).await;
    // Several rounds: losing the request was a race between the handler and the EOF.
    for round in 0..10 {
        for (version, extra) in [("HTTP/1.0", ""), ("HTTP/1.1", "Host: bigbro\r\n")] {
            let put = format!("PUT /cluster/web {version}\r\n{extra}\r\n");
            let r = half_closed(api.addr, &put).await;
            assert_eq!(
                (r.status, r.text().as_str()),
                (200, "OK"),
                "{round} {put:?}"
            );
            assert!(
                api.fake.kernel.save().contains("-A -f 7 -s wrr"),
                "{round} {put:?}: {}",
                api.fake.kernel.save()
            );
            let r = half_closed(
                api.addr,
                &format!("GET /cluster/web/status {version}\r\n{extra}\r\n"),
            )
            .await;
            assert_eq!(r.status, 200, "{round} {version}");
            assert!(
                r.text().starts_with("Running: true\n"),
                "{round} {version}: {}",
                r.text()
            );
            let delete = format!("DELETE /cluster/web {version}\r\n{extra}\r\n");
            let r = half_closed(api.addr, &delete).await;
            assert_eq!(
                (r.status, r.text().as_str()),
                (200, "OK"),
                "{round} {delete:?}"
            );
            assert!(
                !api.fake.kernel.save().contains("-f 7 "),
                "{round} {delete:?}: {}",
                api.fake.kernel.save()
            );
        }
    }
    // The JSON API the same way.
    let r = half_closed(
        api.addr,
        "POST /api/v1/clusters/web/start HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"], "started");
    assert!(api.fake.kernel.save().contains("-A -f 7 -s wrr"));
}

// Two workers: the server and the daemon run while the client goes, as in the daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_client_goes_away_is_still_carried_out() {
    let api = start(CONFIG).await;
    {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(api.addr).await.unwrap();
        stream
            .write_all(b"PUT /cluster/web HTTP/1.0\r\n\r\n")
            .await
            .unwrap();
        // Closed whole without reading: nobody is left to answer.
    }
    api.wait("web started by a client that left", |s| {
        s.iter().any(|c| c.name.as_str() == "web" && c.running)
    })
    .await;
    assert!(api.fake.kernel.save().contains("-A -f 7 -s wrr"));
}
