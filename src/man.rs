//! `bigbro man DIR` (hidden): man pages generated from the command line's own clap
//! definition, so that the Debian package ships pages that cannot drift from `--help`.
//! One page for `bigbro` and one per visible subcommand (`bigbro-check.1`...).
//!
//! It writes only into DIR: it never reads a configuration or touches the kernel.

use std::path::{Path, PathBuf};

/// Writes `bigbro.1` and `bigbro-NAME.1` for every visible subcommand of `cmd` into
/// `dir` (created if needed) and returns the paths written.
pub fn write(cmd: clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = cmd;
    cmd.build();
    let mut written = vec![render(&cmd, dir)?];
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let page = sub
            .clone()
            .name(format!("{}-{}", cmd.get_name(), sub.get_name()))
            .version(cmd.get_version().map(str::to_string).unwrap_or_default());
        written.push(render(&page, dir)?);
    }
    Ok(written)
}

fn render(cmd: &clap::Command, dir: &Path) -> std::io::Result<PathBuf> {
    let path = dir.join(format!("{}.1", cmd.get_name()));
    let mut text = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut text)?;
    std::fs::write(&path, text)?;
    Ok(path)
}
