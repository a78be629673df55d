//! Helpers shared by the tests/config_*.rs files: run the real `bigbro` binary from the
//! crate root, as a user would from a clone.

use std::process::{Command, Output};

/// Runs `bigbro ARGS` in the crate root with `RUST_LOG` cleared.
pub fn bigbro(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bigbro"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .output()
        .expect("run bigbro")
}

/// Output bytes as text (bigbro only writes UTF-8).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf-8 output")
}
