//! `GET /ui`: a plain status page for people, rendered on the server (no JavaScript, no
//! build step) and refreshed by the browser every few seconds: per cluster its state,
//! fwmark, combined weight and override; per node its status, health, wanted and kernel
//! weight with a bar for its share of the cluster, ramp progress as a bar, the last probe
//! and any override.
//!
//! Everything shown that comes from configuration or clients (names, reasons, errors) is
//! HTML-escaped. Rendering reads views only.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::server::AppState;
use crate::daemon::{ClusterStatus, NodeStatus};
use crate::weight::{NodeSnapshot, OverrideView, Status};

/// Seconds between refreshes.
pub const REFRESH_SECONDS: u32 = 2;

pub fn routes() -> Router<AppState> {
    Router::new().route("/ui", get(page))
}

async fn page(State(app): State<AppState>) -> Response {
    let (status, body) = match app.query(app.handle.statuses()).await {
        Ok(clusters) => (StatusCode::OK, render(&clusters, now_utc())),
        Err(e) => {
            tracing::error!("Error: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                render_error(&e.to_string(), now_utc()),
            )
        }
    };
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

/// HTML-escapes text for element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d2733; background: #fff; }
h1 { font-size: 1.4em; margin: 0 0 .2em; }
h1 small, .updated { color: #66707a; font-weight: normal; font-size: .8em; }
section.cluster { margin: 1.5em 0; }
h2 { font-size: 1.15em; margin: 0 0 .4em; display: flex; gap: .8em; align-items: baseline; }
.tag { font-size: .75em; padding: .1em .5em; border-radius: .8em; font-weight: 600; }
.tag.running { background: #d8f2dc; color: #17612a; }
.tag.stopped { background: #e6e8eb; color: #4a535c; }
.meta { color: #4a535c; font-weight: normal; font-size: .85em; }
p.override, p.errors { margin: .2em 0 .5em; padding: .3em .6em; border-radius: .3em; }
p.override { background: #fff4d6; }
p.errors { background: #fde2e1; color: #8a1c17; }
table { border-collapse: collapse; min-width: 60em; }
th, td { text-align: left; padding: .3em .8em .3em 0; border-bottom: 1px solid #e6e8eb; white-space: nowrap; }
th { font-size: .8em; color: #66707a; text-transform: uppercase; letter-spacing: .04em; }
td.status { font-weight: 600; }
tr.up td.status { color: #17612a; }
tr.down td.status { color: #b3261e; }
tr.unknown td.status { color: #8a6d00; }
.bar { display: inline-block; vertical-align: middle; width: 8em; height: .7em; background: #e6e8eb; border-radius: .35em; overflow: hidden; margin-right: .5em; }
.fill { height: 100%; background: #3b7dd8; }
td.ramp .fill { background: #2e9d5b; }
.num { display: inline-block; min-width: 3.2em; font-variant-numeric: tabular-nums; }
.why, .err { color: #66707a; font-size: .85em; }
.err { color: #b3261e; }
";

/// The page for `clusters` as of `now` (shown as the time of the data).
pub fn render(clusters: &[ClusterStatus], now: String) -> String {
    let mut out = head(&now);
    if clusters.is_empty() {
        out.push_str("<p class=\"empty\">No clusters are configured.</p>\n");
    }
    for c in clusters {
        cluster(&mut out, c);
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn render_error(message: &str, now: String) -> String {
    let mut out = head(&now);
    let _ = writeln!(
        out,
        "<p class=\"errors\">The daemon did not answer: {}</p>\n</body>\n</html>",
        esc(message)
    );
    out
}

fn head(now: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>bigbro status</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>bigbro <small>{}</small></h1>\n\
         <p class=\"updated\">As of <time>{}</time>; this page refreshes every {REFRESH_SECONDS} s.</p>\n",
        env!("CARGO_PKG_VERSION"),
        esc(now)
    )
}

fn cluster(out: &mut String, c: &ClusterStatus) {
    let total = c.combined_weight;
    let (state, class) = if c.running {
        ("running", "running")
    } else {
        ("stopped", "stopped")
    };
    let _ = writeln!(
        out,
        "<section class=\"cluster\" id=\"cluster-{id}\">\n<h2><span class=\"name\">{name}</span> \
         <span class=\"tag {class}\">{state}</span> \
         <span class=\"meta\">fwmark <span class=\"fwmark\">{fwmark}</span> · {sched} · {mode} · \
         combined weight <span class=\"combined\">{total}</span></span></h2>",
        id = esc(c.name.as_str()),
        name = esc(c.name.as_str()),
        fwmark = c.fwmark,
        sched = c.scheduler.as_str(),
        mode = match c.backend_mode {
            crate::config::BackendMode::ActiveActive => "active/active",
            crate::config::BackendMode::ActivePassive => "active/passive",
        },
    );
    if let Some(policy) = &c.policy {
        if let Some(o) = &policy.over {
            let _ = writeln!(
                out,
                "<p class=\"override\">Cluster override: {}</p>",
                override_text(o)
            );
        }
        if policy.files.up || policy.files.down {
            let which = if policy.files.up { "up" } else { "down" };
            let _ = writeln!(
                out,
                "<p class=\"override\">Override file <code>{which}/{}</code> is present.</p>",
                esc(c.name.as_str())
            );
        }
    }
    if let Some(d) = c.downpage.as_ref().filter(|d| d.active) {
        let _ = writeln!(
            out,
            "<p class=\"errors\">No node has weight: the downpage {} is serving.</p>",
            d.address
        );
    }
    if !c.errors.is_empty() {
        let list: Vec<String> = c.errors.iter().map(|e| esc(e)).collect();
        let _ = writeln!(
            out,
            "<p class=\"errors\">Kernel errors in the last pass: {}</p>",
            list.join("; ")
        );
    }
    out.push_str(
        "<table>\n<thead><tr><th>Node</th><th>Status</th><th>Health</th><th>Weight (share)</th>\
         <th>In kernel</th><th>Ramp</th><th>Last probe</th><th>Override</th></tr></thead>\n<tbody>\n",
    );
    for (n, p) in c.nodes() {
        node(out, n, p, total);
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn node(out: &mut String, n: &NodeStatus, p: Option<&NodeSnapshot>, total: u64) {
    let status = match p.map(|p| p.status) {
        Some(Status::Up) => "up",
        Some(Status::Down) => "down",
        Some(Status::Unknown) => "unknown",
        None => "not probed",
    };
    let health = p
        .and_then(|p| p.health)
        .map_or("–".to_string(), |h| h.to_string());
    let weight = n.weight.get();
    let share = if total == 0 {
        0.0
    } else {
        f64::from(weight) * 100.0 / total as f64
    };
    let source = p
        .and_then(|p| serde_json::to_value(p.source).ok())
        .and_then(|v| v.as_str().map(|x| x.replace('_', " ")))
        .unwrap_or_default();
    let kernel = n
        .kernel_weight()
        .map_or("not in IPVS".to_string(), |w| w.to_string());
    let ramp = p.map_or(0.0, |p| p.ramp_progress.clamp(0.0, 1.0) * 100.0);
    let probe = match p.and_then(|p| p.last_probe.as_ref()) {
        None => "not yet probed".to_string(),
        Some(l) if l.ok => format!(
            "ok, health {} in {}",
            l.health.unwrap_or(0),
            millis(l.latency_seconds)
        ),
        Some(l) => format!(
            "<span class=\"err\">{}</span> in {}",
            esc(l.error.as_deref().unwrap_or("health 0")),
            millis(l.latency_seconds)
        ),
    };
    let over = p
        .and_then(|p| p.over.as_ref())
        .map_or("–".to_string(), override_text);
    let class = status.replace(' ', "-");
    let _ = writeln!(
        out,
        "<tr class=\"node {class}\" data-node=\"{addr}\">\
         <td class=\"address\">{addr}</td>\
         <td class=\"status\">{status}</td>\
         <td class=\"health\">{health}</td>\
         <td class=\"weight\"><span class=\"bar\"><span class=\"fill\" style=\"display:block;width:{share:.1}%\"></span></span>\
         <span class=\"num\">{weight}</span> <span class=\"why\">{source}</span></td>\
         <td class=\"kernel\">{kernel}</td>\
         <td class=\"ramp\"><span class=\"bar\"><span class=\"fill\" style=\"display:block;width:{ramp:.0}%\"></span></span>\
         <span class=\"num\">{ramp:.0}%</span></td>\
         <td class=\"probe\">{probe}</td>\
         <td class=\"override\">{over}</td></tr>",
        addr = esc(&n.address.to_string()),
    );
}

fn override_text(o: &OverrideView) -> String {
    let what = match o.force {
        crate::weight::Force::Up => "forced up".to_string(),
        crate::weight::Force::Down => "drained".to_string(),
        crate::weight::Force::Weight(w) => format!("weight {w}"),
    };
    let until = o
        .expires_in_seconds
        .map_or(String::new(), |s| format!(", {} left", duration_text(s)));
    format!("{what} ({}{until})", esc(&o.reason))
}

fn millis(seconds: f64) -> String {
    format!("{:.0} ms", seconds * 1000.0)
}

fn duration_text(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

/// The current time as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_text(secs)
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian calendar).
pub fn utc_text(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }

    #[test]
    fn formats_utc() {
        assert_eq!(utc_text(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_text(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_text(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn durations() {
        assert_eq!(duration_text(59.6), "60 s");
        assert_eq!(duration_text(600.0), "10 min");
        assert_eq!(duration_text(7200.0), "2 h");
    }
}
