//! Nagios passive checks through `send_nsca`, as big_brother sent them: after a change,
//! for each running cluster with a `nagios` section, the number of local nodes at weight 0
//! decides the check (half or more down: 2 `CRITICAL 50% of nodes are down`; some down: 1
//! `WARNING a node is down`; none: 0 `OK all nodes up`), sent only when that number
//! changed since the last notification.
//!
//! Unlike big_brother it never goes through a shell: `send_nsca -H <server> -d ,` is run
//! with an argument vector and the line `host,check,code,message` on its standard input,
//! so nothing in the configuration can inject a command. Sending runs in its own task; a
//! failure is logged and counted, never retried in a loop, and never delays the kernel.
//! [`Reporter`] keeps, for the controller, what was last sent for each cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::metrics::Metrics;
use crate::config::{Model, Nagios};
use crate::desired::{weight_of, Running, Weights};
use crate::types::{ClusterName, Weight};

/// How long `send_nsca` may take before it is killed.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// One passive check result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// 0 OK, 1 WARNING, 2 CRITICAL.
    pub code: u8,
    pub message: &'static str,
}

/// big_brother's rule for `down` of `total` local nodes at weight 0.
pub fn check(down: usize, total: usize) -> Check {
    if total > 0 && down * 2 >= total {
        Check {
            code: 2,
            message: "CRITICAL 50% of nodes are down",
        }
    } else if down > 0 {
        Check {
            code: 1,
            message: "WARNING a node is down",
        }
    } else {
        Check {
            code: 0,
            message: "OK all nodes up",
        }
    }
}

/// The line `send_nsca` reads: `host,check,code,message`.
pub fn line(n: &Nagios, c: &Check) -> String {
    format!("{},{},{},{}\n", n.host, n.check, c.code, c.message)
}

/// The program and arguments (no shell).
pub fn argv(program: &Path, n: &Nagios) -> (PathBuf, Vec<String>) {
    (
        program.to_path_buf(),
        vec!["-H".into(), n.server.clone(), "-d".into(), ",".into()],
    )
}

/// Runs `send_nsca` with `line` on its standard input.
pub async fn send(program: &Path, n: &Nagios, c: &Check) -> Result<(), String> {
    let (program, args) = argv(program, n);
    let mut child = tokio::process::Command::new(&program)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let text = line(n, c);
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .await
            .map_err(|e| format!("writing to {}: {e}", program.display()))?;
    }
    let output = tokio::time::timeout(SEND_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("{} did not finish within 10 s", program.display()))?
        .map_err(|e| format!("waiting for {}: {e}", program.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} -H {} exited with {}: {}",
            program.display(),
            n.server,
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Sends the nagios checks of the running clusters when their number of nodes down
/// changes.
pub(crate) struct Reporter {
    /// `send_nsca`.
    program: PathBuf,
    metrics: Metrics,
    /// Nodes-down count of the last notification, by cluster.
    last: BTreeMap<ClusterName, usize>,
}

impl Reporter {
    pub fn new(program: PathBuf, metrics: Metrics) -> Reporter {
        Reporter {
            program,
            metrics,
            last: BTreeMap::new(),
        }
    }

    /// Forgets a cluster that stopped (its next start notifies again).
    pub fn forget(&mut self, name: &ClusterName) {
        self.last.remove(name);
    }

    /// Sends, in tasks of their own, the checks whose count changed.
    pub fn report(
        &mut self,
        model: &Model,
        running: &BTreeMap<ClusterName, Running>,
        weights: &Weights,
    ) {
        for c in &model.clusters {
            let Some(n) = &c.nagios else { continue };
            if !running.contains_key(&c.name) || c.nodes.is_empty() {
                continue;
            }
            let down = c
                .nodes
                .iter()
                .filter(|node| weight_of(weights, c, node.address) == Weight::ZERO)
                .count();
            if self.last.get(&c.name) == Some(&down) {
                continue;
            }
            self.last.insert(c.name.clone(), down);
            let check = check(down, c.nodes.len());
            let (n, program, metrics, name) = (
                n.clone(),
                self.program.clone(),
                self.metrics.clone(),
                c.name.clone(),
            );
            tokio::spawn(async move {
                match send(&program, &n, &check).await {
                    Ok(()) => {
                        tracing::info!("nagios: {}", line(&n, &check).trim_end());
                        metrics.nagios(true);
                    }
                    Err(e) => {
                        tracing::error!("nagios notification for cluster {name}: {e}");
                        metrics.nagios(false);
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nagios() -> Nagios {
        Nagios {
            server: "server.foo".into(),
            host: "prod.load".into(),
            check: "test1_check".into(),
        }
    }

    #[test]
    fn big_brothers_thresholds_and_strings() {
        assert_eq!(check(0, 4).code, 0);
        assert_eq!(
            check(1, 4),
            Check {
                code: 1,
                message: "WARNING a node is down"
            }
        );
        assert_eq!(check(2, 4).code, 2, "exactly half is critical");
        assert_eq!(check(1, 1).message, "CRITICAL 50% of nodes are down");
        assert_eq!(
            line(&nagios(), &check(2, 4)),
            "prod.load,test1_check,2,CRITICAL 50% of nodes are down\n"
        );
        let (_, args) = argv(Path::new("send_nsca"), &nagios());
        assert_eq!(args, ["-H", "server.foo", "-d", ","]);
    }

    #[tokio::test]
    async fn runs_without_a_shell_and_feeds_the_line_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let fake = dir.path().join("send_nsca");
        std::fs::write(
            &fake,
            format!("#!/bin/sh\necho \"$@\" > {0}\ncat >> {0}\n", out.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut n = nagios();
        n.host = "h; rm -rf /tmp/x".into();
        send(&fake, &n, &check(1, 3)).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "-H server.foo -d ,\nh; rm -rf /tmp/x,test1_check,1,WARNING a node is down\n"
        );
        let err = send(&dir.path().join("missing"), &n, &check(0, 3))
            .await
            .unwrap_err();
        assert!(err.contains("cannot run"), "{err}");
    }
}
