//! The `sonde` command line: run the agent, validate or print a configuration.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sonde::{lifecycle, logging, DEFAULT_CONFIG, SYSTEM_CONFIG};
use sonde_config::{Config, ConfigErrors, Listen};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tracing::error;

/// Sonde: a lightweight per-host observability agent.
///
/// Collects host metrics, receives OTLP from local apps and tails log files; batches with
/// backpressure; exports over OTLP, as Parquet to object storage, or to stdout.
#[derive(Parser)]
#[command(name = "sonde", version, about, long_about)]
struct Cli {
    /// Configuration file (TOML). Default: /etc/sonde/sonde.toml if present, else the embedded
    /// default (host metrics every 10 s and an OTLP receiver on localhost, printed to stdout).
    #[arg(long, short, global = true, value_name = "FILE", env = "SONDE_CONFIG")]
    config: Option<PathBuf>,

    /// Admin server address (`/metrics`, `/health/*`, `/config`), or `off`; overrides
    /// `agent.admin`. Port 0 picks a free port (logged at start).
    #[arg(long, global = true, value_name = "ADDR", env = "SONDE_ADMIN")]
    admin: Option<Listen>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent (the default when no command is given). Stops gracefully on SIGTERM or
    /// SIGINT; a second signal exits at once.
    Run,
    /// Check a configuration file: exit 0 if valid, otherwise exit 1 listing every problem.
    Validate,
    /// Print the effective configuration: every default filled in, secrets redacted.
    PrintConfig,
    /// Probe a running agent's health endpoint: exit 0 on HTTP 200, 1 otherwise (for container
    /// HEALTHCHECKs and exec probes, where no curl is at hand).
    Health {
        /// The URL to GET (plain HTTP).
        #[arg(long, default_value = "http://127.0.0.1:13133/health/ready")]
        url: String,
        /// Time limit for the whole probe.
        #[arg(long, default_value = "3s")]
        timeout: sonde_config::Duration,
    },
    /// Print the Parquet exporter's table schema for a signal (column, Arrow type, nullability,
    /// meaning) and its version.
    Schema {
        /// traces | metrics | logs
        #[arg(value_parser = parse_signal)]
        signal: sonde_core::Signal,
    },
}

fn parse_signal(s: &str) -> Result<sonde_core::Signal, String> {
    match s {
        "traces" | "spans" => Ok(sonde_core::Signal::Traces),
        "metrics" => Ok(sonde_core::Signal::Metrics),
        "logs" => Ok(sonde_core::Signal::Logs),
        _ => Err(format!("`{s}`: expected traces, metrics or logs")),
    }
}

/// The file the configuration is read from, if any: `--config`, else the system file if it
/// exists, else none (the embedded default).
fn config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    explicit.map(Path::to_path_buf).or_else(|| {
        let system = Path::new(SYSTEM_CONFIG);
        system.exists().then(|| system.to_path_buf())
    })
}

/// Where the configuration comes from, in order of precedence.
fn config_text(explicit: Option<&Path>) -> anyhow::Result<(String, String)> {
    if let Some(p) = explicit {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("cannot read config file {}", p.display()))?;
        return Ok((text, p.display().to_string()));
    }
    if Path::new(SYSTEM_CONFIG).exists() {
        let text = std::fs::read_to_string(SYSTEM_CONFIG)
            .with_context(|| format!("cannot read {SYSTEM_CONFIG}"))?;
        return Ok((text, SYSTEM_CONFIG.to_string()));
    }
    Ok((DEFAULT_CONFIG.to_string(), "<embedded default>".to_string()))
}

fn load(explicit: Option<&Path>) -> Result<Config, ExitCode> {
    let (text, origin) = config_text(explicit).map_err(|e| {
        eprintln!("error: {}", lifecycle::error_text(e.as_ref()));
        ExitCode::from(1)
    })?;
    sonde::load_config(&text, &origin).map_err(|e: ConfigErrors| {
        eprint!("{e}");
        ExitCode::from(1)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Health { url, timeout } => match probe(&url, timeout.get()) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{url}: {e}");
                ExitCode::from(1)
            }
        },
        Command::Validate => {
            let Some(path) = cli.config.as_deref() else {
                eprintln!("error: `sonde validate` needs --config FILE");
                return ExitCode::from(2);
            };
            match load(Some(path)) {
                Ok(c) => {
                    let count = |n: usize, what: &str| {
                        format!("{n} {what}{}", if n == 1 { "" } else { "s" })
                    };
                    let processors = match c.processors.len() {
                        0 => String::new(),
                        n => format!(", {}", count(n, "processor")),
                    };
                    println!(
                        "{}: valid ({}{processors}, {})",
                        path.display(),
                        count(c.sources.len(), "source"),
                        count(c.exporters.len(), "exporter"),
                    );
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            }
        }
        Command::Schema { signal } => {
            print!("{}", sonde_exporters::parquet::schema::describe(signal));
            ExitCode::SUCCESS
        }
        Command::PrintConfig => match load(cli.config.as_deref()) {
            Ok(c) => {
                print!("{}", c.to_toml());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run => match load(cli.config.as_deref()) {
            Ok(c) => run(
                c,
                lifecycle::Options {
                    config_path: config_path(cli.config.as_deref()),
                    admin: cli.admin,
                },
            ),
            Err(code) => code,
        },
    }
}

fn run(config: Config, opts: lifecycle::Options) -> ExitCode {
    let _telemetry = logging::init(&config.agent.log, &config.agent.telemetry);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .thread_name("sonde")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(lifecycle::run(config, opts));
    // A blocking task stuck in a write (a stdout pipe nobody reads) must not keep the process
    // alive after the agent has stopped: give the blocking pool a moment, then leave.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    code
}

/// A minimal HTTP/1.0 GET with a deadline: Ok with the status line when the status is 200.
fn probe(url: &str, timeout: std::time::Duration) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};
    let rest = url
        .strip_prefix("http://")
        .context("only http:// URLs can be probed")?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let addr = host
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{host} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut response = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let status = text.lines().next().unwrap_or("").to_string();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(status)
    } else {
        anyhow::bail!("unhealthy: {status}")
    }
}
