//! The `bigbro` binary: the daemon, its tools, and `ipvsadm` when invoked under that name.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "bigbro",
    version,
    about = "IPVS load-balancer controller in the manner of big_brother"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate a configuration and print the IPVS and nf_tables state it asks for.
    Check {
        /// Configuration file.
        #[arg(short = 'c', long = "config", default_value = "/etc/bigbro/config.yml")]
        config: std::path::PathBuf,
    },
    /// An ipvsadm-compatible command line (also used when invoked as `ipvsadm`); add
    /// `--json` to a listing (`-L`) for machine-readable output.
    #[command(disable_help_flag = true)]
    Ipvsadm {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let invoked_as = std::path::Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if invoked_as == "ipvsadm" || invoked_as == "bigbro-ipvsadm" {
        // ipvsadm prints argv[0] as it was given (e.g. in "Try `/sbin/ipvsadm -h' ...").
        let args: Vec<_> = std::env::args_os().skip(1).collect();
        return run_ipvsadm(&argv0.to_string_lossy(), args);
    }
    // `bigbro ipvsadm ...`: hand every following word over untouched (clap would claim
    // `--`, `-h` and friends).
    if std::env::args_os().nth(1).is_some_and(|a| a == "ipvsadm") {
        let args: Vec<_> = std::env::args_os().skip(2).collect();
        return run_ipvsadm("ipvsadm", args);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => {
            eprintln!("bigbro check {}: not implemented yet", config.display());
            ExitCode::from(1)
        }
        Command::Ipvsadm { args } => run_ipvsadm("ipvsadm", args),
    }
}

/// ipvsadm 1.31, byte for byte, on bigbro's netlink client (see `bigbro::adm`).
fn run_ipvsadm(program: &str, args: Vec<std::ffi::OsString>) -> ExitCode {
    ExitCode::from(bigbro::adm::main(program, args))
}
