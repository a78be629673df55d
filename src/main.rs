//! The `bigbro` binary: the daemon, its tools, and `ipvsadm` when invoked under that name.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use bigbro::api::client;
use bigbro::config;
use bigbro::desired::plan;

mod man;

/// Where the configuration is read from unless `-c` says otherwise.
const DEFAULT_CONFIG: &str = "/etc/bigbro/config.yml";

#[derive(Parser, Debug)]
#[command(
    name = "bigbro",
    version,
    about = "IPVS load-balancer controller in the manner of big_brother"
)]
struct Cli {
    /// Debug logging.
    #[arg(short = 'v', long = "verbose", global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Subcommand,
}

#[derive(clap::Subcommand, Debug)]
enum Subcommand {
    /// Validate a configuration and print the IPVS and nf_tables state it asks for.
    Check {
        /// Configuration file.
        #[arg(short = 'c', long = "config", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Print only the IPVS state, in `ipvsadm -S -n` syntax (fit for `ipvsadm -R`).
        #[arg(long, conflicts_with_all = ["nft", "addrs"])]
        ipvs: bool,
        /// Print only the nf_tables ruleset, in `nft` syntax (fit for `nft -f`).
        #[arg(long, conflicts_with = "addrs")]
        nft: bool,
        /// Print only the VIP addresses bigbro puts on its interface, as `ip addr add`
        /// commands.
        #[arg(long)]
        addrs: bool,
        /// Print only what this cluster asks for (the OCF agent uses it to find a
        /// cluster's fwmarks); exit 1 if the configuration has no such cluster.
        #[arg(long, value_name = "NAME")]
        cluster: Option<String>,
    },
    /// Run the daemon: probe every running cluster's nodes, program IPVS and the mark
    /// rules, reload on SIGHUP, exit on SIGTERM leaving the kernel as it is.
    Daemon {
        /// Configuration file (big_brother's -c).
        #[arg(short = 'c', long = "config", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Directory of the up/ and down/ override files; overrides `bigbro.data_dir`.
        #[arg(short = 'D', long = "data-dir")]
        data_dir: Option<PathBuf>,
        /// HTTP API port; overrides the port of `bigbro.api.listen`.
        #[arg(short = 'p', long = "port")]
        port: Option<u16>,
        /// HTTP API address; overrides the address of `bigbro.api.listen`.
        #[arg(short = 'b', long = "binding")]
        binding: Option<IpAddr>,
    },
    /// An ipvsadm-compatible command line (also used when invoked as `ipvsadm`); add
    /// `--json` to a listing (`-L`) for machine-readable output.
    #[command(disable_help_flag = true)]
    Ipvsadm {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Write man pages generated from this command line into DIR (for packaging).
    #[command(hide = true)]
    Man {
        /// Directory for bigbro.1 and bigbro-SUBCOMMAND.1.
        dir: PathBuf,
    },
    /// Show the running daemon's clusters and nodes (health, weights, ramp, last probe).
    Status {
        /// Only this cluster.
        cluster: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Start a cluster: create its IPVS service (big_brother's PUT /cluster/NAME).
    Start {
        cluster: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Stop a cluster: delete its IPVS services (big_brother's DELETE /cluster/NAME).
    Stop {
        cluster: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Drain a node: weight 0 while it stays in IPVS, until `undrain` (or --for expires).
    Drain {
        cluster: String,
        /// The node's address.
        node: String,
        /// Why (shown in status, the API and the log); default names the user.
        #[arg(long)]
        reason: Option<String>,
        /// Lift the drain by itself after this many seconds.
        #[arg(long = "for", value_name = "SECONDS")]
        for_seconds: Option<f64>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Clear a node's override: its weight follows its health again.
    Undrain {
        cluster: String,
        /// The node's address.
        node: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Make the daemon re-read its configuration (like SIGHUP); prints the errors if the
    /// file is refused (the running configuration then stays as it is).
    Reload {
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// Where the daemon's HTTP API is.
#[derive(clap::Args, Debug)]
struct ApiArgs {
    /// The daemon's HTTP API.
    #[arg(long, default_value = bigbro::api::client::DEFAULT_URL)]
    url: String,
    /// File holding the API token (needed for changes when the daemon requires one).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Print the daemon's JSON answer instead of text.
    #[arg(long)]
    json: bool,
}

impl ApiArgs {
    fn run(self, command: bigbro::api::client::ClientCommand) -> ExitCode {
        let target = bigbro::api::client::Target {
            url: self.url,
            token_file: self.token_file,
            json: self.json,
        };
        bigbro::api::client::run(&target, command).finish()
    }
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
    init_logging(cli.verbose);
    match cli.command {
        Subcommand::Check {
            config,
            ipvs,
            nft,
            addrs,
            cluster,
        } => check(&config, [ipvs, nft, addrs], cluster.as_deref()),
        Subcommand::Daemon {
            config,
            data_dir,
            port,
            binding,
        } => daemon(&config, data_dir, port, binding),
        Subcommand::Ipvsadm { args } => run_ipvsadm("ipvsadm", args),
        Subcommand::Man { dir } => man_pages(&dir),
        Subcommand::Status { cluster, api } => api.run(client::ClientCommand::Status { cluster }),
        Subcommand::Start { cluster, api } => api.run(client::ClientCommand::Start { cluster }),
        Subcommand::Stop { cluster, api } => api.run(client::ClientCommand::Stop { cluster }),
        Subcommand::Drain {
            cluster,
            node,
            reason,
            for_seconds,
            api,
        } => api.run(client::ClientCommand::Drain {
            cluster,
            node,
            reason,
            ttl_seconds: for_seconds,
        }),
        Subcommand::Undrain { cluster, node, api } => {
            api.run(client::ClientCommand::Undrain { cluster, node })
        }
        Subcommand::Reload { api } => api.run(client::ClientCommand::Reload),
    }
}

/// Logs go to stderr through tracing: info by default, debug with `-v`. `RUST_LOG`, when
/// set to a list of `target=level` with an optional default level (`debug`,
/// `bigbro=debug,netlink_proto=warn`), takes precedence; a value that does not parse is
/// ignored.
fn init_logging(verbose: bool) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let default = if verbose { "debug" } else { "info" };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| default.parse().expect("a level is a valid filter"));
    let _ = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .finish()
        .with(filter)
        .try_init();
}

/// `bigbro check`: the plan on stdout and exit 0, or every error on stderr (one per line,
/// then a count) and exit 1. With `cluster`, the plan of that cluster alone.
/// `only`: `--ipvs`, `--nft`, `--addrs` (at most one is set).
fn check(path: &Path, only: [bool; 3], cluster: Option<&str>) -> ExitCode {
    let [ipvs_only, nft_only, addrs_only] = only;
    match config::load(path) {
        Ok(mut model) => {
            if let Some(name) = cluster {
                let names: Vec<String> =
                    model.clusters.iter().map(|c| c.name.to_string()).collect();
                model.clusters.retain(|c| c.name.as_str() == name);
                if model.clusters.is_empty() {
                    eprintln!(
                        "bigbro check: {} has no cluster named {name:?} (its clusters: {})",
                        path.display(),
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    );
                    return ExitCode::from(1);
                }
            }
            let text = if ipvs_only {
                plan::ipvs_text(&model)
            } else if nft_only {
                plan::nft_text(&model)
            } else if addrs_only {
                plan::addrs_text(&model)
            } else {
                plan::render(&model, &path.display().to_string())
            };
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for line in errors.lines() {
                eprintln!("{line}");
            }
            eprintln!(
                "bigbro check: {} is not valid: {}",
                path.display(),
                errors.count_text()
            );
            ExitCode::from(1)
        }
    }
}

/// `bigbro daemon`.
fn daemon(
    path: &Path,
    data_dir: Option<PathBuf>,
    port: Option<u16>,
    binding: Option<IpAddr>,
) -> ExitCode {
    bigbro::daemon::run::main(bigbro::daemon::run::Args {
        config: path.to_path_buf(),
        data_dir,
        port,
        binding,
    })
}

/// ipvsadm 1.31, byte for byte, on bigbro's netlink client (see `bigbro::adm`).
fn run_ipvsadm(program: &str, args: Vec<std::ffi::OsString>) -> ExitCode {
    ExitCode::from(bigbro::adm::main(program, args))
}

/// `bigbro man DIR`: the man pages, one path written per line on stdout.
fn man_pages(dir: &Path) -> ExitCode {
    use clap::CommandFactory;
    match man::write(Cli::command(), dir) {
        Ok(paths) => {
            for p in paths {
                println!("{}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "bigbro man: cannot write man pages into {}: {e}",
                dir.display()
            );
            ExitCode::from(1)
        }
    }
}
