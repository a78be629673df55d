//! The CLI client: `bigbro status [CLUSTER]`, `start|stop CLUSTER`, `drain|undrain CLUSTER
//! NODE` and `reload` talk to a running daemon's JSON API and print what happened for a
//! person (or the JSON with `--json`).
//!
//! Exit status: 0 done (also when there was nothing to do: already running, not drained);
//! 1 the daemon refused or failed (the message says why); 3 the daemon cannot be reached.
//! The token is read from `--token-file`, sent only in the `Authorization` header and never
//! printed. The client never follows redirects and never uses a proxy: `transport` sends
//! each request on a connection of its own (connect within 5 s, the whole exchange within
//! 30 s) and refuses `https://` (the API is plain HTTP).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use hyper::Method;
use serde_json::Value;

use super::auth::Token;
use super::transport::{self, DaemonUrl};

/// The local daemon (big_brother's port).
pub const DEFAULT_URL: &str = "http://127.0.0.1:9292";

/// Where the daemon is and how to prove who we are.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: String,
    pub token_file: Option<PathBuf>,
    /// Print the daemon's JSON instead of text.
    pub json: bool,
}

/// One command of the client.
#[derive(Clone, Debug)]
pub enum ClientCommand {
    Status {
        cluster: Option<String>,
    },
    Start {
        cluster: String,
    },
    Stop {
        cluster: String,
    },
    Drain {
        cluster: String,
        node: String,
        reason: Option<String>,
        ttl_seconds: Option<f64>,
    },
    Undrain {
        cluster: String,
        node: String,
    },
    Reload,
}

/// What a command ended with.
#[derive(Debug)]
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub code: u8,
}

impl Outcome {
    fn ok(stdout: String) -> Outcome {
        Outcome {
            stdout,
            stderr: String::new(),
            code: 0,
        }
    }
    fn refused(stderr: String) -> Outcome {
        Outcome {
            stdout: String::new(),
            stderr,
            code: 1,
        }
    }
    fn unreachable(stderr: String) -> Outcome {
        Outcome {
            stdout: String::new(),
            stderr,
            code: 3,
        }
    }

    /// Prints the outcome and gives the exit code.
    pub fn finish(self) -> ExitCode {
        print!("{}", self.stdout);
        eprint!("{}", self.stderr);
        ExitCode::from(self.code)
    }
}

/// Runs `command` against `target` (blocking: it starts its own small runtime).
pub fn run(target: &Target, command: ClientCommand) -> Outcome {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return Outcome::refused(format!("bigbro: cannot start: {e}\n")),
    };
    runtime.block_on(run_async(target, command))
}

/// The same, inside a runtime.
pub async fn run_async(target: &Target, command: ClientCommand) -> Outcome {
    let client = match Client::new(target) {
        Ok(c) => c,
        Err(o) => return o,
    };
    match command {
        ClientCommand::Status { cluster } => status(&client, cluster.as_deref(), target.json).await,
        ClientCommand::Start { cluster } => {
            start_stop(&client, &cluster, "start", target.json).await
        }
        ClientCommand::Stop { cluster } => start_stop(&client, &cluster, "stop", target.json).await,
        ClientCommand::Drain {
            cluster,
            node,
            reason,
            ttl_seconds,
        } => drain(&client, &cluster, &node, reason, ttl_seconds, target.json).await,
        ClientCommand::Undrain { cluster, node } => {
            undrain(&client, &cluster, &node, target.json).await
        }
        ClientCommand::Reload => reload(&client, target.json).await,
    }
}

struct Client {
    url: DaemonUrl,
    token: Option<Token>,
}

/// A decoded answer.
struct Answer {
    status: u16,
    json: Value,
}

impl Client {
    fn new(target: &Target) -> Result<Client, Outcome> {
        let url = DaemonUrl::parse(&target.url)
            .map_err(|e| Outcome::refused(format!("bigbro: {e}\n")))?;
        let token = match &target.token_file {
            None => None,
            Some(path) => match Token::from_file(path) {
                Ok(t) => Some(t),
                Err(e) => return Err(Outcome::refused(format!("bigbro: {e}\n"))),
            },
        };
        Ok(Client { url, token })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, Outcome> {
        let body = body.map(|b| b.to_string());
        let response = transport::exchange(&self.url, self.token.as_ref(), method, path, body)
            .await
            .map_err(|e| {
                let base = &self.url.text;
                Outcome::unreachable(if e.broke_off() {
                    format!(
                        "bigbro: the daemon at {base} broke off its answer: {}\n",
                        error_chain(&e)
                    )
                } else {
                    format!(
                        "bigbro: cannot reach the daemon at {base}: {} (is `bigbro daemon` running? see --url)\n",
                        error_chain(&e)
                    )
                })
            })?;
        let bytes = response.body;
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).trim().to_string()));
        Ok(Answer {
            status: response.status,
            json,
        })
    }
}

/// The error and its sources, each once (a source whose text its error already shows is
/// skipped).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.ends_with(&more) {
            let _ = write!(text, ": {more}");
        }
        source = s.source();
    }
    text
}

/// Sends one request and hands back the answer's JSON when it is a 200. `Err` ends the
/// command: with the daemon's refusal, or (with `--json`) with the answer printed as is.
async fn ask(
    client: &Client,
    method: Method,
    path: &str,
    body: Option<Value>,
    json: bool,
) -> Result<Value, Outcome> {
    let answer = client.send(method, path, body).await?;
    if answer.status != 200 {
        return Err(refusal(&answer));
    }
    if json {
        return Err(Outcome::ok(pretty(&answer.json)));
    }
    Ok(answer.json)
}

/// The daemon's error message for a refused request.
fn refusal(answer: &Answer) -> Outcome {
    let message = answer
        .json
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| answer.json.to_string());
    let mut text = format!("bigbro: {message} (HTTP {})\n", answer.status);
    if let Some(errors) = answer.json.get("errors").and_then(Value::as_array) {
        for e in errors {
            let _ = writeln!(text, "  {}", e.as_str().unwrap_or_default());
        }
    }
    Outcome::refused(text)
}

fn pretty(json: &Value) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(json).unwrap_or_default()
    )
}

/// Percent-encodes a path segment (cluster names are free text in YAML).
fn segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

async fn status(client: &Client, cluster: Option<&str>, json: bool) -> Outcome {
    let path = match cluster {
        Some(c) => format!("/api/v1/clusters/{}", segment(c)),
        None => "/api/v1/clusters".to_string(),
    };
    let answer = match ask(client, Method::GET, &path, None, json).await {
        Ok(a) => a,
        Err(o) => return o,
    };
    let clusters: Vec<Value> = match cluster {
        Some(_) => vec![answer],
        None => answer["clusters"].as_array().cloned().unwrap_or_default(),
    };
    Outcome::ok(render_status(&clusters))
}

/// The status table.
pub fn render_status(clusters: &[Value]) -> String {
    let mut out = String::new();
    if clusters.is_empty() {
        out.push_str("no clusters are configured\n");
    }
    for c in clusters {
        let running = c["running"].as_bool().unwrap_or(false);
        let _ = writeln!(
            out,
            "{} (fwmark {}): {}, combined weight {}, {} {}",
            c["name"].as_str().unwrap_or("?"),
            c["fwmark"],
            if running { "running" } else { "stopped" },
            c["combined_weight"],
            c["scheduler"].as_str().unwrap_or("?"),
            c["backend_mode"].as_str().unwrap_or("?").replace('_', "/"),
        );
        if let Some(o) = c.get("override").filter(|o| !o.is_null()) {
            let _ = writeln!(out, "  cluster override: {}", override_text(o));
        }
        for e in c["errors"].as_array().into_iter().flatten() {
            let _ = writeln!(out, "  kernel error: {}", e.as_str().unwrap_or_default());
        }
        let mut rows = vec![[
            "NODE".to_string(),
            "STATUS".into(),
            "HEALTH".into(),
            "WEIGHT".into(),
            "KERNEL".into(),
            "RAMP".into(),
            "LAST PROBE".into(),
            "OVERRIDE".into(),
        ]];
        for n in c["nodes"].as_array().into_iter().flatten() {
            rows.push(node_row(n));
        }
        let widths: Vec<usize> = (0..8)
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        for row in &rows {
            let mut line = String::from(" ");
            for (i, cell) in row.iter().enumerate() {
                let _ = write!(line, " {cell:<w$} ", w = widths[i]);
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    out
}

fn node_row(n: &Value) -> [String; 8] {
    let text = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let ramp = n["ramp"]["progress"]
        .as_f64()
        .map_or("-".to_string(), |p| format!("{:.0}%", p * 100.0));
    let probe = match n.get("last_probe").filter(|p| !p.is_null()) {
        None => "-".to_string(),
        Some(p) => {
            let ms = p["latency_seconds"].as_f64().unwrap_or(0.0) * 1000.0;
            if p["ok"].as_bool().unwrap_or(false) {
                format!("ok {ms:.0} ms")
            } else {
                format!(
                    "{} {ms:.0} ms",
                    p["error_code"].as_str().unwrap_or("health 0")
                )
            }
        }
    };
    let over = n
        .get("override")
        .filter(|o| !o.is_null())
        .map_or("-".to_string(), override_text);
    [
        text(&n["address"]),
        text(&n["status"]),
        text(&n["health"]),
        text(&n["weight"]),
        text(&n["kernel_weight"]),
        ramp,
        probe,
        over,
    ]
}

fn override_text(o: &Value) -> String {
    let what = match o["force"].as_str() {
        Some("down") => "drained".to_string(),
        Some("up") => "forced up".to_string(),
        _ => format!("weight {}", o["weight"]),
    };
    let left = o["expires_in_seconds"]
        .as_f64()
        .map_or(String::new(), |s| format!(", {s:.0} s left"));
    format!("{what} ({}{left})", o["reason"].as_str().unwrap_or(""))
}

async fn start_stop(client: &Client, cluster: &str, verb: &str, json: bool) -> Outcome {
    let path = format!("/api/v1/clusters/{}/{verb}", segment(cluster));
    let answer = match ask(client, Method::POST, &path, None, json).await {
        Ok(a) => a,
        Err(o) => return o,
    };
    let result = answer["result"].as_str().unwrap_or("?");
    let text = match result {
        "started" => "started",
        "already_running" => "already running (nothing changed)",
        "stopped" => "stopped: its IPVS services are deleted",
        "not_running" => "not running (nothing changed)",
        other => other,
    };
    Outcome::ok(format!("{cluster}: {text}\n"))
}

fn default_reason() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "an operator".to_string());
    format!("drained with `bigbro drain` by {user}")
}

async fn drain(
    client: &Client,
    cluster: &str,
    node: &str,
    reason: Option<String>,
    ttl_seconds: Option<f64>,
    json: bool,
) -> Outcome {
    let path = format!(
        "/api/v1/clusters/{}/nodes/{}/override",
        segment(cluster),
        segment(node)
    );
    let mut body = serde_json::json!({
        "force": "down",
        "reason": reason.unwrap_or_else(default_reason),
    });
    if let Some(ttl) = ttl_seconds {
        body["ttl_seconds"] = ttl.into();
    }
    let answer = match ask(client, Method::PUT, &path, Some(body), json).await {
        Ok(a) => a,
        Err(o) => return o,
    };
    let mut text = format!(
        "{cluster} {node}: drained (weight 0, still in IPVS so established connections finish)"
    );
    if let Some(ttl) = ttl_seconds {
        let _ = write!(text, " for {ttl} s");
    }
    if let Some(p) = answer.get("previous").filter(|p| !p.is_null()) {
        let _ = write!(text, "; replaced: {}", override_text(p));
    }
    text.push('\n');
    Outcome::ok(text)
}

async fn undrain(client: &Client, cluster: &str, node: &str, json: bool) -> Outcome {
    let path = format!(
        "/api/v1/clusters/{}/nodes/{}/override",
        segment(cluster),
        segment(node)
    );
    let answer = match ask(client, Method::DELETE, &path, None, json).await {
        Ok(a) => a,
        Err(o) => return o,
    };
    let text = match answer.get("previous").filter(|p| !p.is_null()) {
        Some(p) => format!(
            "{cluster} {node}: override cleared (was {}); its weight follows health again\n",
            override_text(p)
        ),
        None => format!("{cluster} {node}: had no override (nothing changed)\n"),
    };
    Outcome::ok(text)
}

async fn reload(client: &Client, json: bool) -> Outcome {
    let answer = match ask(client, Method::POST, "/api/v1/reload", None, json).await {
        Ok(a) => a,
        Err(o) => return o,
    };
    let list = |key: &str| -> String {
        let names: Vec<&str> = answer[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let mut text = format!(
        "configuration reloaded: added {}; removed {}; changed {}\n",
        list("added"),
        list("removed"),
        list("changed")
    );
    let restart = list("needs_restart");
    if restart != "none" {
        let _ = writeln!(
            text,
            "these settings take effect only after a restart: {restart}"
        );
    }
    Outcome::ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("web app/1"), "web%20app%2F1");
        assert_eq!(segment("10.0.0.1"), "10.0.0.1");
        assert_eq!(segment("2001:db8::1"), "2001:db8::1");
    }

    #[test]
    fn status_table_lines_up() {
        let c = serde_json::json!({
            "name": "web", "fwmark": 7, "running": true, "combined_weight": 100,
            "scheduler": "wrr", "backend_mode": "active_active", "override": null, "errors": [],
            "nodes": [{
                "address": "10.0.0.1", "status": "up", "health": 100, "weight": 100,
                "kernel_weight": 100, "ramp": {"progress": 1.0, "seconds": 0.0},
                "last_probe": {"ok": true, "latency_seconds": 0.003}, "override": null
            }]
        });
        assert_eq!(
            render_status(&[c]),
            "web (fwmark 7): running, combined weight 100, wrr active/active\n\
             \x20 NODE      STATUS  HEALTH  WEIGHT  KERNEL  RAMP  LAST PROBE  OVERRIDE\n\
             \x20 10.0.0.1  up      100     100     100     100%  ok 3 ms     -\n"
        );
    }
}
