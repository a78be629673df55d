//! The Prometheus text exposition format (version 0.0.4), written by hand: a `Writer` that
//! emits each metric family once with its `# HELP` and `# TYPE` lines, escapes label values
//! and help text as the format requires, and a fixed-bucket `Histogram`.
//!
//! It only formats numbers it is given; it never reads the daemon. A family is declared
//! before its samples, so a family with no samples still documents itself.

use std::fmt::Write as _;

/// Content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Buckets for probe latencies (seconds): 1 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram with fixed upper bounds. `counts[i]` counts observations `<= bounds[i]`
/// and above the previous bound (not cumulative); the `+Inf` bucket is `count`.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new(LATENCY_BUCKETS)
    }
}

impl Histogram {
    /// An empty histogram; `bounds` must be increasing.
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// `(upper bound, cumulative count)` for every finite bucket.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let mut running = 0;
        self.bounds.iter().zip(&self.counts).map(move |(b, c)| {
            running += c;
            (*b, running)
        })
    }
}

/// The kind of a metric family (`# TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Builds an exposition. Families must be declared with `family` before their samples.
#[derive(Default)]
pub struct Writer {
    out: String,
    current: Option<(String, Kind)>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    /// Starts the family `name` with its help text.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        debug_assert!(valid_name(name), "bad metric name {name}");
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        self.current = Some((name.to_string(), kind));
    }

    /// One sample of the current counter or gauge family.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        let name = self.current_name(&[Kind::Counter, Kind::Gauge]);
        self.line(&name, "", labels, None, value);
    }

    /// A whole histogram of the current histogram family: its buckets, `+Inf`, sum and
    /// count.
    pub fn histogram(&mut self, labels: &[(&str, &str)], h: &Histogram) {
        let buckets: Vec<(f64, u64)> = h.cumulative().collect();
        self.histogram_buckets(labels, &buckets, h.count(), h.sum());
    }

    /// A histogram given as `(upper bound, cumulative count)` pairs, the total count (the
    /// `+Inf` bucket) and the sum.
    pub fn histogram_buckets(
        &mut self,
        labels: &[(&str, &str)],
        cumulative: &[(f64, u64)],
        count: u64,
        sum: f64,
    ) {
        let name = self.current_name(&[Kind::Histogram]);
        for (bound, n) in cumulative {
            let le = format_value(*bound);
            self.line(&name, "_bucket", labels, Some(&le), *n as f64);
        }
        self.line(&name, "_bucket", labels, Some("+Inf"), count as f64);
        self.line(&name, "_sum", labels, None, sum);
        self.line(&name, "_count", labels, None, count as f64);
    }

    pub fn finish(self) -> String {
        self.out
    }

    fn current_name(&self, kinds: &[Kind]) -> String {
        match &self.current {
            Some((name, kind)) if kinds.contains(kind) => name.clone(),
            other => panic!("sample written outside a matching family: {other:?}"),
        }
    }

    fn line(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &[(&str, &str)],
        le: Option<&str>,
        value: f64,
    ) {
        self.out.push_str(name);
        self.out.push_str(suffix);
        let all = labels.iter().copied().chain(le.map(|v| ("le", v)));
        let mut first = true;
        for (k, v) in all {
            debug_assert!(valid_name(k), "bad label name {k}");
            self.out.push(if first { '{' } else { ',' });
            first = false;
            self.out.push_str(k);
            self.out.push_str("=\"");
            self.out.push_str(&escape_label(v));
            self.out.push('"');
        }
        if !first {
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(&format_value(value));
        self.out.push('\n');
    }
}

/// Label values escape backslash, double quote and line feed.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Help text escapes backslash and line feed.
pub fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Numbers as the format spells them: integers without a fraction, `+Inf`, `-Inf`, `NaN`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values_and_help() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(
            escape_help("one\\two\nthree \"q\""),
            "one\\\\two\\nthree \"q\""
        );
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(-2.0), "-2");
    }

    #[test]
    fn writes_families_with_help_type_and_labels() {
        let mut w = Writer::new();
        w.family("bigbro_x_total", Kind::Counter, "Things.\nCounted.");
        w.sample(&[("cluster", "a\"b")], 2.0);
        w.sample(&[], 1.5);
        let text = w.finish();
        assert_eq!(
            text,
            "# HELP bigbro_x_total Things.\\nCounted.\n\
             # TYPE bigbro_x_total counter\n\
             bigbro_x_total{cluster=\"a\\\"b\"} 2\n\
             bigbro_x_total 1.5\n"
        );
    }

    #[test]
    fn histograms_are_cumulative_with_inf_sum_and_count() {
        static B: &[f64] = &[0.1, 1.0];
        let mut h = Histogram::new(B);
        h.observe(0.05);
        h.observe(0.1);
        h.observe(0.5);
        h.observe(7.0);
        let mut w = Writer::new();
        w.family("lat_seconds", Kind::Histogram, "Latency.");
        w.histogram(&[("t", "x")], &h);
        assert_eq!(
            w.finish(),
            "# HELP lat_seconds Latency.\n\
             # TYPE lat_seconds histogram\n\
             lat_seconds_bucket{t=\"x\",le=\"0.1\"} 2\n\
             lat_seconds_bucket{t=\"x\",le=\"1\"} 3\n\
             lat_seconds_bucket{t=\"x\",le=\"+Inf\"} 4\n\
             lat_seconds_sum{t=\"x\"} 7.65\n\
             lat_seconds_count{t=\"x\"} 4\n"
        );
    }

    #[test]
    #[should_panic(expected = "outside a matching family")]
    fn a_sample_needs_its_family() {
        let mut w = Writer::new();
        w.family("h", Kind::Histogram, "x");
        w.sample(&[], 1.0);
    }
}
