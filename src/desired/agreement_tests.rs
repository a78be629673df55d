//! `bigbro check` and the daemon agree. For every example configuration in `config/` and a
//! few edge cases, a daemon on the fake kernel (`src/daemon/testing.rs`) starts every
//! cluster, before any probe has answered (tokio's paused clock; probes hang), and its
//! IPVS table and mark rules are then compared with the plan `bigbro check` prints.

use std::path::{Path, PathBuf};

use super::plan::{self, ipvs_text, nft_text};
use super::test_util::{text, REMOTE_ONLY};
use crate::config;
use crate::daemon::testing::spawn_fake;
use crate::daemon::StartOutcome;
use crate::health::Script;
use crate::nft;

fn sorted_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines
}

/// Starts every cluster of the configuration at `path` on a daemon on fakes, and checks
/// that the kernel holds what `bigbro check` prints.
async fn agree(path: &Path) {
    let model = config::load(path).unwrap_or_else(|e| panic!("{e}"));
    let fake = spawn_fake(path).unwrap_or_else(|e| panic!("{e}"));
    // No probe answers while the clusters start, so every node keeps its starting weight.
    fake.prober.set_default(Script::Hang);
    for c in &model.clusters {
        let outcome = fake.handle.start(c.name.as_str()).await;
        assert!(
            matches!(outcome, Ok(StartOutcome::Started)),
            "{}: start {}: {outcome:?}",
            path.display(),
            c.name
        );
    }
    let kernel = fake.kernel.save();
    let plan = plan::plan(&model);
    assert_eq!(
        kernel,
        text(&plan.desired),
        "{}: the daemon's IPVS table is the builder's plan",
        path.display()
    );
    let printed = ipvs_text(&model);
    assert_eq!(
        sorted_lines(&printed),
        sorted_lines(&kernel),
        "{}: `bigbro check` prints the daemon's IPVS table (in file order)\n{printed}",
        path.display()
    );
    assert!(!printed.is_empty() || model.clusters.is_empty());
    let marks = fake.marks.rules();
    assert_eq!(marks, plan.marks, "{}", path.display());
    assert_eq!(nft::render(&marks), nft_text(&model), "{}", path.display());
    fake.task.abort();
}

#[tokio::test(start_paused = true)]
async fn check_prints_what_the_daemon_programs_for_every_example_config() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 4, "the example configurations: {paths:?}");
    for path in &paths {
        agree(path).await;
    }
}

#[tokio::test(start_paused = true)]
async fn check_prints_what_the_daemon_programs_for_active_passive_and_remote_only_clusters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bigbro.yml");
    // Nodes listed out of order: the active node is not the first one nor the last.
    let yaml = "\
clusters:
  - cluster_name: db
    fwmark: 5
    scheduler: wrr
    backend_mode: active_passive
    vips: [{address: 192.0.2.5, port: 5432}]
    nodes:
      - {address: 10.0.0.10, port: 1, path: /, priority: 1}
      - {address: 10.0.0.9, port: 1, path: /, priority: 1}
      - {address: 10.0.0.11, port: 1, path: /, priority: 2}
  - cluster_name: web
    fwmark: 3
    scheduler: rr
    nodes:
      - {address: 10.0.1.20, port: 1, path: /}
      - {address: 10.0.1.3, port: 1, path: /}
"
    .to_string()
        + REMOTE_ONLY.trim_start_matches("clusters:\n");
    std::fs::write(&path, yaml).unwrap();
    agree(&path).await;
}
