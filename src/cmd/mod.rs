//! The command line: `run`, `check`, `demo`, `dev`, `emulator` and `cert`. Every failure is one line on stderr and a
//! non-zero exit, never a panic or a backtrace.

pub mod check;
pub mod dev;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod error;
pub mod run;

use crate::cmd::error::RunError;
use crate::config::Config;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "tccc-sidecar",
    version,
    about = "TLS reverse proxy that adds the Tencent Cloud Contact Center workbench to existing web apps"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve: TLS listener, proxy, admin listener.
    Run {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate the configuration, certificates and referenced files, then exit (like nginx -t).
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// The embedded demo: a demo CRM with the sidecar in front, a generated certificate, nothing to configure.
    #[cfg(feature = "emulator")]
    Demo {
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
        listen: std::net::SocketAddr,
        /// The host name or address other machines' browsers use (the certificate names it).
        #[arg(long, value_name = "NAME")]
        host: Option<String>,
        /// Shell mode: calls survive navigation from page to page (`inject.mode = "shell"`).
        #[arg(long)]
        shell: bool,
    },
    /// Local HTTPS dev server in front of a local app: one seat, loopback only.
    Dev(Box<crate::cmd::dev::DevArgs>),
    /// The local CCC API emulator and its stand-in Web SDK origin.
    #[cfg(feature = "emulator")]
    Emulator(Box<crate::cmd::emulator::EmulatorArgs>),
    /// Write a development CA (name-constrained to the hosts) and a leaf certificate as PEM.
    Cert {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long = "host", value_name = "NAME", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])]
        hosts: Vec<String>,
    },
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Run { config } => run(&config),
        #[cfg(feature = "emulator")]
        Command::Demo {
            listen,
            host,
            shell,
        } => demo(listen, host, shell),
        Command::Dev(args) => dev(*args),
        #[cfg(feature = "emulator")]
        Command::Emulator(args) => {
            let rt = match runtime(1) {
                Ok(rt) => rt,
                Err(e) => return fail(&e),
            };
            match rt.block_on(crate::cmd::emulator::run(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::Cert { out, hosts } => {
            match crate::listener::tls::devcert::generate(&hosts)
                .and_then(|c| crate::listener::tls::devcert::write(&out, &c))
            {
                Ok(()) => {
                    println!(
                    "wrote {0}/ca.crt, {0}/ca.key, {0}/tls.crt, {0}/tls.key (CA limited to: {1})",
                    out.display(),
                    hosts.join(", ")
                );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
    }
}

fn fail(msg: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("tccc-sidecar: {msg}");
    ExitCode::from(1)
}

/// The configuration and the warnings worth showing about it.
fn load(path: &std::path::Path) -> Result<(Config, Vec<String>), RunError> {
    let config = Config::load(path)?;
    let notes = crate::cmd::check::preflight(&config)?;
    Ok((config, notes))
}

fn check(path: &std::path::Path) -> ExitCode {
    match load(path) {
        Ok((_, notes)) => {
            for n in notes {
                eprintln!("tccc-sidecar: {n}");
            }
            println!(
                "tccc-sidecar: configuration file {} test is successful",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, RunError> {
    let mut b = if threads == 1 {
        // One CPU: the current-thread scheduler has no cross-thread queues to pay for.
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    b.enable_all().build().map_err(RunError::Runtime)
}

#[cfg(feature = "emulator")]
fn demo(listen: std::net::SocketAddr, host: Option<String>, shell: bool) -> ExitCode {
    let _log =
        crate::runtime::logging::init(crate::config::LogFormat::Text, "warn,tccc_sidecar=info");
    let rt = match runtime(crate::runtime::worker_threads(None)) {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    match rt.block_on(crate::demo::run(listen, host, shell)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn dev(args: crate::cmd::dev::DevArgs) -> ExitCode {
    let _log =
        crate::runtime::logging::init(crate::config::LogFormat::Text, "warn,tccc_sidecar=info");
    let rt = match runtime(crate::runtime::worker_threads(None)) {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    match rt.block_on(crate::cmd::dev::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn run(path: &std::path::Path) -> ExitCode {
    let (config, notes) = match load(path) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let _log = crate::runtime::logging::init(config.log.format, &config.log.level);
    // Through the logger, so that JSON logs stay one JSON object per line.
    for n in notes {
        tracing::warn!("{}", n.trim_start_matches("warning: "));
    }
    // The listener's workers run on threads of their own (server::serve_workers); this
    // runtime only carries the admin listener, file watchers and signals.
    let rt = match runtime(1) {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    match rt.block_on(crate::cmd::run::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}
