//! Runs the kernel benchmarks (tests/kernel_bench/main.rs) in the test bed, in release mode,
//! and collects the `BENCH {json}` lines the guest prints, with the guest kernel's name.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use serde_json::Value;

/// What the kernel benchmarks reported.
pub struct KernelResults {
    pub lines: Vec<Value>,
    /// "6.1.0-NN-amd64: Linux version ..." as the test bed reports it.
    pub guest_kernel: String,
}

/// `cargo test --release --test kernel_bench` with BIGBRO_BENCH=1 (plus `extra_env`).
pub fn run(extra_env: &[(String, String)]) -> anyhow::Result<KernelResults> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["test", "--release", "--test", "kernel_bench", "--"])
        .args(["--nocapture", "--test-threads=1"])
        .env("BIGBRO_BENCH", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if std::env::var_os("BIGBRO_TESTBED_TIMEOUT").is_none() {
        command.env("BIGBRO_TESTBED_TIMEOUT", "3600");
    }
    for (k, v) in extra_env {
        command.env(k, v);
    }
    eprintln!("scale: running the kernel benchmarks in the test bed (several minutes)");
    let mut child = command.spawn().context("running cargo test")?;
    let stderr = child.stderr.take().context("cargo stderr")?;
    let guest_kernel = std::thread::spawn(move || {
        let mut kernel = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(k) = line.strip_prefix("testbed: guest kernel ") {
                kernel = k.to_string();
            }
            if line.starts_with("testbed:") || line.contains("error") {
                eprintln!("  {line}");
            }
        }
        kernel
    });
    let mut lines = Vec::new();
    let mut transcript = String::new();
    let stdout = child.stdout.take().context("cargo stdout")?;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        transcript.push_str(&line);
        transcript.push('\n');
        if let Some(at) = line.find("BENCH {") {
            let json = &line[at + "BENCH ".len()..];
            let value: Value =
                serde_json::from_str(json).with_context(|| format!("bad BENCH line {json}"))?;
            eprintln!("  {value}");
            lines.push(value);
        }
    }
    let status = child.wait()?;
    let guest_kernel = guest_kernel.join().unwrap_or_default();
    if !status.success() {
        bail!("the kernel benchmarks failed ({status}):\n{transcript}");
    }
    if lines.is_empty() {
        bail!("the kernel benchmarks printed no results (is the test bed installed? tests/setup.sh):\n{transcript}");
    }
    Ok(KernelResults {
        lines,
        guest_kernel,
    })
}
