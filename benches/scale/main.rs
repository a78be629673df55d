//! The scale harness (docs/PERFORMANCE.md): measures bigbro against the real alternatives in one run
//! and writes a results table.
//!
//! ```text
//! cargo run --release --example scale -- all            # everything, ~15-30 min here
//! cargo run --release --example scale -- kernel         # bulk apply, churn, no-op, reaction
//! cargo run --release --example scale -- probe --nodes 10000 [--seconds 60]
//! ```
//!
//! `kernel` runs tests/kernel_bench/main.rs in the test bed (tests/setup.sh installs it);
//! `probe` runs the weight driver's real prober against stub backends on loopback, each
//! size in a fresh child process so that CPU time and peak RSS are that size's alone.
//! The table goes to stdout and to `--out` (default target/scale-results.md); the raw
//! JSON of every measurement to the same path with `.json`. docs/PERFORMANCE.md explains
//! every row. Nothing here asserts a timing: targets are reported, met or missed.

mod kernel;
mod probe;
mod stub;
mod table;
mod usage;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(about = "bigbro's scale harness: bigbro against the real alternatives")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The kernel benchmarks and probing at 1,000 and 10,000 nodes; writes the table.
    All {
        #[command(flatten)]
        out: Out,
        /// Seconds of probing per size.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Only the kernel benchmarks (test bed); writes the table.
    Kernel {
        #[command(flatten)]
        out: Out,
    },
    /// Only probing, at each size given; writes the table.
    Probing {
        #[command(flatten)]
        out: Out,
        #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
        nodes: Vec<usize>,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// One probing measurement in this process (what `all` and `probing` run per size);
    /// prints its JSON.
    Probe {
        #[arg(long)]
        nodes: usize,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        #[arg(long, default_value_t = 2000)]
        interval_ms: u64,
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
        /// Ramp-up time of the nodes (0: weights follow health at once).
        #[arg(long, default_value_t = 0)]
        ramp_seconds: u64,
        /// Nodes per cluster (one `set_cluster` call each).
        #[arg(long, default_value_t = 10)]
        cluster_size: usize,
        /// tokio worker threads (default: one per CPU, as the daemon's runtime); 0 runs
        /// everything on one current-thread runtime.
        #[arg(long)]
        threads: Option<usize>,
        /// Run the probe tasks on that runtime too, instead of on a current-thread runtime
        /// of their own as the daemon does (health::ProbeThread).
        #[arg(long)]
        shared_runtime: bool,
    },
    /// Renders the table again from a results JSON file (as `all` writes it).
    Render {
        /// The JSON file.
        json: PathBuf,
        #[command(flatten)]
        out: Out,
    },
    /// The stub backends (started by `probe`).
    Stub {
        #[arg(long)]
        nodes: usize,
    },
}

#[derive(clap::Args)]
struct Out {
    /// Where the results table goes (the raw JSON goes beside it, with `.json`).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/target/scale-results.md"))]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Stub { nodes } => stub::run((0..nodes).map(probe::node_addr).collect(), probe::PORT),
        Cmd::Probe {
            nodes,
            seconds,
            interval_ms,
            timeout_ms,
            ramp_seconds,
            cluster_size,
            threads,
            shared_runtime,
        } => {
            let result = probe::run(&probe::Settings {
                nodes,
                seconds,
                interval: Duration::from_millis(interval_ms),
                timeout: Duration::from_millis(timeout_ms),
                ramp: Duration::from_secs(ramp_seconds),
                cluster_size,
                threads: threads
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
                probe_thread: !shared_runtime,
            })?;
            println!("{result}");
            Ok(())
        }
        Cmd::All { out, seconds } => {
            let mut run = Run::start();
            run.kernel()?;
            for nodes in [1000, 10_000] {
                run.probing(nodes, seconds)?;
            }
            run.finish(&out.out)
        }
        Cmd::Render { json, out } => {
            let raw: Value = serde_json::from_str(&std::fs::read_to_string(&json)?)
                .with_context(|| format!("reading {}", json.display()))?;
            let m = &raw["machine"];
            let text = |v: &Value| v.as_str().unwrap_or("?").to_string();
            let machine = table::Machine {
                date: text(&m["date"]),
                host: text(&m["host"]),
                guest: text(&m["guest"]),
                load: text(&m["load"]),
            };
            let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
            let rendered = table::render(&machine, &list(&raw["kernel"]), &list(&raw["probing"]));
            std::fs::write(&out.out, &rendered)?;
            println!("{rendered}");
            Ok(())
        }
        Cmd::Kernel { out } => {
            let mut run = Run::start();
            run.kernel()?;
            run.finish(&out.out)
        }
        Cmd::Probing {
            out,
            nodes,
            seconds,
        } => {
            let mut run = Run::start();
            for n in nodes {
                run.probing(n, seconds)?;
            }
            run.finish(&out.out)
        }
    }
}

/// One harness run: everything measured, and the conditions it was measured in.
struct Run {
    started: String,
    load: Vec<String>,
    kernel: Vec<Value>,
    guest_kernel: String,
    probing: Vec<Value>,
}

impl Run {
    fn start() -> Run {
        Run {
            started: shell("date -u '+%Y-%m-%d %H:%M UTC'"),
            load: vec![format!("start {}", usage::load_average())],
            kernel: Vec::new(),
            guest_kernel: String::new(),
            probing: Vec::new(),
        }
    }

    fn kernel(&mut self) -> anyhow::Result<()> {
        let results = kernel::run(&[])?;
        self.kernel = results.lines;
        self.guest_kernel = results.guest_kernel;
        self.load
            .push(format!("after kernel {}", usage::load_average()));
        Ok(())
    }

    fn probing(&mut self, nodes: usize, seconds: u64) -> anyhow::Result<()> {
        eprintln!("scale: probing {nodes} nodes for {seconds} s");
        let output = Command::new(std::env::current_exe()?)
            .args(["probe", "--nodes", &nodes.to_string()])
            .args(["--seconds", &seconds.to_string()])
            .output()
            .context("running the probe measurement")?;
        if !output.status.success() {
            bail!(
                "probing {nodes} nodes failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let line = text.lines().last().unwrap_or_default();
        let value: Value =
            serde_json::from_str(line).with_context(|| format!("probe output {text:?}"))?;
        eprintln!("  {value}");
        self.probing.push(value);
        self.load
            .push(format!("after {nodes} nodes {}", usage::load_average()));
        Ok(())
    }

    fn finish(self, out: &PathBuf) -> anyhow::Result<()> {
        let machine = table::Machine {
            date: self.started,
            host: format!(
                "{} CPUs ({}), {}, host kernel {}",
                shell("nproc"),
                shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'"),
                shell("free -g | awk '/Mem:/ {print $2 \" GiB\"}'"),
                shell("uname -r")
            ),
            guest: self.guest_kernel,
            load: self.load.join(", "),
        };
        let text = table::render(&machine, &self.kernel, &self.probing);
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
        let raw = json!({
            "machine": {"date": machine.date, "host": machine.host, "guest": machine.guest, "load": machine.load},
            "kernel": self.kernel,
            "probing": self.probing,
        });
        std::fs::write(out.with_extension("json"), format!("{raw:#}\n"))?;
        println!("{text}");
        eprintln!("scale: wrote {} (and .json)", out.display());
        Ok(())
    }
}

/// A shell command's trimmed output, or "?".
fn shell(command: &str) -> String {
    Command::new("sh")
        .args(["-c", command])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".into())
}
