//! The JSON API under /api/v1 over a real loopback socket: the shapes of clusters and
//! nodes, start and stop, per-node and per-cluster overrides and their effect on the
//! kernel, reload (applied, and refused with the file's errors), the running config, and
//! the 4xx answers to bad requests, each of which leaves the daemon unchanged.

use crate::api_common;

use api_common::{start, web1, web2, Api, CONFIG};
use serde_json::{json, Value};

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    k.sort();
    k
}

/// Without the fields that move with the clock (`status_seconds`, `seconds_ago`).
fn timeless(mut v: Value) -> Value {
    match &mut v {
        Value::Object(map) => {
            map.retain(|k, _| !k.ends_with("seconds_ago") && k != "status_seconds");
            for value in map.values_mut() {
                *value = timeless(value.take());
            }
        }
        Value::Array(items) => {
            for value in items {
                *value = timeless(value.take());
            }
        }
        _ => {}
    }
    v
}

async fn started(api: &Api) {
    api.fake.set_health(&web1(), 30);
    api.fake.set_health(&web2(), 70);
    assert_eq!(
        api.post("/api/v1/clusters/web/start").await.json()["result"],
        "started"
    );
    api.wait_weight("web", 100).await;
}

#[tokio::test]
async fn clusters_and_nodes_have_their_documented_shape() {
    let api = start(CONFIG).await;
    started(&api).await;

    let r = api.get("/api/v1/clusters").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let all = r.json();
    let clusters = all["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 2);
    let web = &clusters[0];
    assert_eq!(
        keys(web),
        [
            "active_node",
            "backend_mode",
            "combined_weight",
            "downpage",
            "errors",
            "files",
            "fwmark",
            "name",
            "nodes",
            "override",
            "relay_fwmark",
            "remote_nodes",
            "running",
            "scheduler"
        ]
    );
    assert_eq!(web["name"], "web");
    assert_eq!(web["fwmark"], 7);
    assert_eq!(web["running"], true);
    assert_eq!(web["combined_weight"], 100);
    assert_eq!(web["scheduler"], "wrr");
    assert_eq!(web["backend_mode"], "active_active");
    assert_eq!(web["files"], json!({"up": false, "down": false}));
    assert_eq!(web["errors"], json!([]));

    let node = &web["nodes"][1];
    assert_eq!(
        keys(node),
        [
            "address",
            "fail_streak",
            "fall",
            "health",
            "in_ipvs",
            "kernel_weight",
            "last_probe",
            "max_weight",
            "ok_streak",
            "override",
            "path",
            "port",
            "priority",
            "ramp",
            "rise",
            "status",
            "status_seconds",
            "weight",
            "weight_source"
        ]
    );
    assert_eq!(node["address"], "10.0.0.2");
    assert_eq!(node["port"], 9001);
    assert_eq!(node["path"], "/web/status");
    assert_eq!(node["status"], "up");
    assert_eq!(node["health"], 70);
    assert_eq!(node["weight"], 70);
    assert_eq!(node["weight_source"], "health");
    assert_eq!(node["kernel_weight"], 70);
    assert_eq!(node["in_ipvs"], true);
    assert_eq!(node["rise"], 1);
    assert_eq!(node["fall"], 1);
    assert!(node["ok_streak"].as_u64().unwrap() >= 1);
    assert_eq!(node["fail_streak"], 0);
    assert_eq!(node["ramp"], json!({"progress": 1.0, "seconds": 0.0}));
    let probe = &node["last_probe"];
    assert_eq!(
        keys(probe),
        [
            "error",
            "error_code",
            "health",
            "latency_seconds",
            "ok",
            "seconds_ago"
        ]
    );
    assert_eq!(
        (probe["ok"].clone(), probe["health"].clone()),
        (json!(true), json!(70))
    );
    assert_eq!(probe["error"], Value::Null);

    // A stopped cluster: nothing is probed, so the health fields are null.
    let db = &clusters[1];
    assert_eq!(
        (db["name"].clone(), db["running"].clone()),
        (json!("db"), json!(false))
    );
    let n = &db["nodes"][0];
    assert_eq!(n["status"], Value::Null);
    assert_eq!(n["kernel_weight"], Value::Null);
    assert_eq!(n["weight"], 0);

    // One cluster, its nodes, one node.
    assert_eq!(
        timeless(api.get("/api/v1/clusters/web").await.json()),
        timeless(web.clone())
    );
    let nodes = api.get("/api/v1/clusters/web/nodes").await.json();
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 2);
    let one = api.get("/api/v1/clusters/web/nodes/10.0.0.1").await.json();
    assert_eq!(
        (one["address"].clone(), one["weight"].clone()),
        (json!("10.0.0.1"), json!(30))
    );

    // The index lists the routes.
    let index = api.get("/api/v1").await.json();
    assert_eq!(index["big_brother_api"], "0.9.12");
    assert!(index["routes"].as_array().unwrap().len() >= 10);
}

#[tokio::test]
async fn a_failed_probe_shows_its_reason_and_latency() {
    use bigbro::health::{ProbeError, Script};
    use std::time::Duration;
    let api = start(CONFIG).await;
    started(&api).await;
    api.fake.prober.set(
        &web1(),
        Script::Answer {
            result: Err(ProbeError::Refused),
            after: Duration::from_millis(5),
        },
    );
    api.wait_weight("web", 70).await;
    let n = api.get("/api/v1/clusters/web/nodes/10.0.0.1").await.json();
    assert_eq!(n["status"], "down");
    assert_eq!(n["weight"], 0);
    assert_eq!(n["weight_source"], "down");
    assert_eq!(n["kernel_weight"], 0, "drained, still in IPVS");
    assert!(n["fail_streak"].as_u64().unwrap() >= 1);
    let p = &n["last_probe"];
    assert_eq!(p["ok"], false);
    assert_eq!(p["error_code"], "refused");
    assert_eq!(
        p["error"],
        "connection refused: nothing listens on the health check port"
    );
    assert!(p["latency_seconds"].as_f64().unwrap() >= 0.005);
}

#[tokio::test]
async fn start_and_stop() {
    let api = start(CONFIG).await;
    let r = api.post("/api/v1/clusters/db/start").await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"cluster": "db", "result": "started"}))
    );
    let r = api.post("/api/v1/clusters/db/start").await;
    assert_eq!(r.json()["result"], "already_running");
    let r = api.post("/api/v1/clusters/db/stop").await;
    assert_eq!(r.json()["result"], "stopped");
    let r = api.post("/api/v1/clusters/db/stop").await;
    assert_eq!(r.json()["result"], "not_running");
    let r = api.post("/api/v1/clusters/nope/start").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], "unknown_cluster");
}

#[tokio::test]
async fn node_and_cluster_overrides_set_and_clear() {
    let api = start(CONFIG).await;
    started(&api).await;

    // Drain 10.0.0.2: weight 0, still in IPVS.
    let r = api
        .send(
            "PUT",
            "/api/v1/clusters/web/nodes/10.0.0.2/override",
            r#"{"force": "down", "reason": "kernel upgrade", "ttl_seconds": 600}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["cluster"], "web");
    assert_eq!(body["node"], "10.0.0.2");
    assert_eq!(body["previous"], Value::Null);
    assert_eq!(body["override"]["force"], "down");
    assert_eq!(body["override"]["weight"], 0);
    assert_eq!(body["override"]["reason"], "kernel upgrade");
    assert_eq!(body["override"]["expires_in_seconds"], 600.0);
    api.wait_weight("web", 30).await;
    assert!(
        api.fake
            .kernel
            .save()
            .contains("-a -f 7 -r 10.0.0.2:0 -i -w 0"),
        "{}",
        api.fake.kernel.save()
    );
    let n = api.get("/api/v1/clusters/web/nodes/10.0.0.2").await.json();
    assert_eq!(n["weight_source"], "node_override");
    assert_eq!(n["override"]["reason"], "kernel upgrade");
    let left = n["override"]["expires_in_seconds"].as_f64().unwrap();
    assert!(left > 590.0 && left <= 600.0, "{left}");

    // Replace it with a fixed weight: the answer shows what it replaced.
    let r = api
        .send(
            "PUT",
            "/api/v1/clusters/web/nodes/10.0.0.2/override",
            r#"{"force": "weight", "weight": 5, "reason": "canary"}"#,
        )
        .await;
    assert_eq!(r.json()["previous"]["reason"], "kernel upgrade");
    assert_eq!(r.json()["override"]["weight"], 5);
    api.wait_weight("web", 35).await;

    // A cluster-wide override is weaker than the node's own.
    let r = api
        .send(
            "PUT",
            "/api/v1/clusters/web/override",
            r#"{"force": "up", "reason": "litmus is broken"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["node"], Value::Null);
    api.wait_weight("web", 105).await;
    let web = api.get("/api/v1/clusters/web").await.json();
    assert_eq!(web["override"]["force"], "up");
    assert_eq!(web["override"]["weight"], 100);
    assert_eq!(web["nodes"][0]["weight_source"], "cluster_override");

    // Clear both: back to health.
    let r = api.delete("/api/v1/clusters/web/override").await;
    assert_eq!(
        (r.status, r.json()["previous"]["force"].clone()),
        (200, json!("up"))
    );
    let r = api
        .delete("/api/v1/clusters/web/nodes/10.0.0.2/override")
        .await;
    assert_eq!(r.json()["previous"]["force"], "weight");
    assert_eq!(r.json()["override"], Value::Null);
    api.wait_weight("web", 100).await;
    // Clearing again is not an error: there was nothing to clear.
    let r = api
        .delete("/api/v1/clusters/web/nodes/10.0.0.2/override")
        .await;
    assert_eq!((r.status, r.json()["previous"].clone()), (200, Value::Null));
}

#[tokio::test]
async fn bad_override_requests_get_4xx_and_change_nothing() {
    let api = start(CONFIG).await;
    started(&api).await;
    let kernel = api.fake.kernel.save();
    let before = api.get("/api/v1/clusters").await.json()["clusters"][0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["override"].clone())
        .collect::<Vec<_>>();

    let node = "/api/v1/clusters/web/nodes/10.0.0.1/override";
    for (path, body, status, code, says) in [
        (
            node,
            r#"{"force": "down", "reason": "x""#,
            400,
            "bad_json",
            "not valid JSON",
        ),
        (node, "[1, 2]", 400, "invalid_request", "expected"),
        (
            node,
            r#"{"force": "down", "reson": "x"}"#,
            400,
            "invalid_request",
            "unknown field `reson`",
        ),
        (
            node,
            r#"{"force": "sideways", "reason": "x"}"#,
            400,
            "invalid_override",
            "\"sideways\" is not one of",
        ),
        (
            node,
            r#"{"reason": "x"}"#,
            400,
            "invalid_override",
            "missing `force`",
        ),
        (
            node,
            r#"{"force": "down"}"#,
            400,
            "invalid_override",
            "missing `reason`",
        ),
        (
            node,
            r#"{"force": "down", "reason": "  "}"#,
            400,
            "invalid_override",
            "missing `reason`",
        ),
        (
            node,
            r#"{"force": "weight", "reason": "x"}"#,
            400,
            "invalid_override",
            "needs `weight`",
        ),
        (
            node,
            r#"{"force": "weight", "weight": 70000, "reason": "x"}"#,
            400,
            "invalid_override",
            "0 to 65535",
        ),
        (
            node,
            r#"{"force": "up", "weight": 3, "reason": "x"}"#,
            400,
            "invalid_override",
            "goes only with",
        ),
        (
            node,
            r#"{"force": "down", "reason": "x", "ttl_seconds": -1}"#,
            400,
            "invalid_override",
            "ttl_seconds",
        ),
        (
            node,
            r#"{"force": "down", "reason": "a\nb"}"#,
            400,
            "invalid_override",
            "one line",
        ),
        (
            node,
            r#"{"force": "down", "weight": "heavy", "reason": "x"}"#,
            400,
            "invalid_request",
            "invalid type",
        ),
        (
            "/api/v1/clusters/web/nodes/10.9.9.9/override",
            r#"{"force": "down", "reason": "x"}"#,
            404,
            "unknown_node",
            "has no node 10.9.9.9",
        ),
        (
            "/api/v1/clusters/web/nodes/not-an-ip/override",
            r#"{"force": "down", "reason": "x"}"#,
            400,
            "bad_node",
            "not an IP address",
        ),
        (
            "/api/v1/clusters/nope/nodes/10.0.0.1/override",
            r#"{"force": "down", "reason": "x"}"#,
            404,
            "unknown_cluster",
            "no cluster is named \"nope\"",
        ),
        (
            "/api/v1/clusters/nope/override",
            r#"{"force": "down", "reason": "x"}"#,
            404,
            "unknown_cluster",
            "nope",
        ),
        (
            "/api/v1/clusters/db/override",
            r#"{"force": "down", "reason": "x"}"#,
            409,
            "cluster_not_running",
            "db is not running",
        ),
    ] {
        let r = api.send("PUT", path, body).await;
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let j = r.json();
        assert_eq!(j["code"], code, "{body}: {j}");
        let error = j["error"].as_str().unwrap();
        assert!(error.contains(says), "{body}: {error}");
    }

    // Too large: 413 before anything is parsed.
    let big = format!(r#"{{"force": "down", "reason": "{}"}}"#, "x".repeat(70_000));
    let r = api.send("PUT", node, &big).await;
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (413, json!("body_too_large"))
    );

    let after = api.get("/api/v1/clusters").await.json()["clusters"][0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["override"].clone())
        .collect::<Vec<_>>();
    assert_eq!(before, after, "an override appeared");
    assert_eq!(api.fake.kernel.save(), kernel, "the kernel changed");
}

#[tokio::test]
async fn wrong_methods_and_unknown_routes_are_json_errors() {
    let api = start(CONFIG).await;
    let r = api.delete("/api/v1/clusters").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET,HEAD"));
    assert_eq!(r.json()["code"], "method_not_allowed");
    let r = api.get("/api/v1/clusters/web/start").await;
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    let r = api
        .post("/api/v1/clusters/web/nodes/10.0.0.1/override")
        .await;
    assert_eq!((r.status, r.header("allow")), (405, Some("PUT,DELETE")));
    let r = api.get("/api/v1/nothing").await;
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (404, json!("no_route"))
    );
    let r = api.get("/api/v1/clusters/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json()["error"],
        "no cluster is named \"nope\"; GET /api/v1/clusters lists them"
    );
    assert_eq!(api.fake.kernel.save(), "");
}

#[tokio::test]
async fn reload_applies_a_valid_file_and_refuses_a_broken_one() {
    let api = start(CONFIG).await;
    started(&api).await;

    // A new cluster: applied.
    let grown = format!(
        "{CONFIG}  - cluster_name: cache\n    fwmark: 9\n    scheduler: rr\n    nodes:\n      - {{address: 10.0.2.1, port: 9001, path: /}}\n"
    );
    std::fs::write(&api.config, &grown).unwrap();
    let r = api.post("/api/v1/reload").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"], "applied");
    assert_eq!(r.json()["added"], json!(["cache"]));
    assert_eq!(
        api.get("/api/v1/clusters").await.json()["clusters"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // A broken file: 422 with every error, naming file and line; nothing changes.
    let kernel = api.fake.kernel.save();
    let config_before = api.get("/api/v1/config").await.json();
    std::fs::write(&api.config, grown.replace("fwmark: 9", "fwmark: nine")).unwrap();
    let r = api.post("/api/v1/reload").await;
    assert_eq!(r.status, 422);
    let j = r.json();
    assert_eq!(j["code"], "config_refused");
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .contains("the running configuration is unchanged"),
        "{j}"
    );
    let errors = j["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{j}");
    let line = errors[0].as_str().unwrap();
    assert!(
        line.contains("bigbro.yml:") && line.contains("fwmark"),
        "{line}"
    );
    assert_eq!(api.get("/api/v1/config").await.json(), config_before);
    assert_eq!(api.fake.kernel.save(), kernel);
    assert_eq!(
        api.get("/cluster/web/status").await.text(),
        "Running: true\nCombinedWeight: 100\n"
    );
}

#[tokio::test]
async fn the_running_config_and_daemon_status() {
    let api = start(CONFIG).await;
    let config = api.get("/api/v1/config").await.json();
    let clusters = config["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 2);
    assert_eq!(clusters[0]["name"], "web");
    assert_eq!(clusters[0]["fwmark"], 7);
    assert_eq!(clusters[0]["nodes"][1]["address"], "10.0.0.2");
    assert_eq!(config["settings"]["api"]["listen"], "127.0.0.1:9292");
    let daemon = api.get("/api/v1/daemon").await.json();
    assert_eq!(daemon["adopted"], true);
    assert_eq!(daemon["kernel_error"], Value::Null);
}
