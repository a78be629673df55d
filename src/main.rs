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
    /// An ipvsadm-compatible command line (also used when invoked as `ipvsadm`).
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
        let args: Vec<_> = std::env::args_os().skip(1).collect();
        return run_ipvsadm(args);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => {
            eprintln!("bigbro check {}: not implemented yet", config.display());
            ExitCode::from(1)
        }
        Command::Ipvsadm { args } => run_ipvsadm(args),
    }
}

fn run_ipvsadm(_args: Vec<std::ffi::OsString>) -> ExitCode {
    eprintln!("bigbro ipvsadm: not implemented yet");
    ExitCode::from(2)
}
