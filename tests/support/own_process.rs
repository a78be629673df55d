//! Runs one test in a process of its own: this test binary again, asked for that test
//! alone (`--exact`). For the few tests that read or change what a whole process shares
//! (its descriptor count and memory, its environment), which the other tests of the same
//! suite, running on other threads of the same process, would disturb or be disturbed by.
//! The body runs in the child only, never in the parent as well; the parent passes or
//! fails with the child and shows the child's output.

use std::process::Command;

/// Set, to the test's libtest name, in the child that runs it.
const CHILD_ENV: &str = "BIGBRO_TEST_OWN_PROCESS";

/// Runs `body`, test `name` of module `module_path` (`module_path!()`), in a process of
/// its own.
pub fn run(module_path: &str, name: &str, body: impl FnOnce()) {
    // libtest names a test by its module path without the crate name.
    let full = match module_path.split_once("::") {
        Some((_crate, rest)) => format!("{rest}::{name}"),
        None => name.to_string(),
    };
    if std::env::var(CHILD_ENV).is_ok_and(|v| v == full) {
        return body();
    }
    let exe = std::env::current_exe().expect("own_process: cannot find the test binary");
    let out = Command::new(exe)
        .args(["--exact", &full, "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, &full)
        .output()
        .unwrap_or_else(|e| panic!("own_process: cannot run {full} in a process of its own: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("test result: ok. 1 passed"),
        "{full} failed in its own process ({}):\n{text}",
        out.status
    );
    println!("--- {full}, in its own process ---\n{text}--- end ---");
}
