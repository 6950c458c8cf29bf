//! The process lifecycle: start the admin server and the topology, tell systemd, beat the
//! heartbeat, and answer signals — SIGTERM/SIGINT stop gracefully (a second one exits at once),
//! SIGHUP reloads the configuration.
//!
//! Reload: the new file is loaded and validated first; if it has any problem the running
//! configuration stays and the error is logged. Otherwise the running topology is stopped
//! gracefully (drained within `shutdown_timeout`) and the new one started; should the new one
//! fail to start (a port already taken, say), the previous configuration is started again. The
//! admin server and the agent's own counters live across reloads.

use crate::admin::{self, AdminState};
use crate::health::{Health, BEAT};
use crate::processors::ProcessorNode;
use crate::systemd::{Event, Notifier};
use crate::topology::{self, Running};
use sonde_config::{Config, Listen};
use sonde_core::metrics::{Counter, Registry};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// How the agent was started.
pub struct Options {
    /// The file the configuration came from (`None` for the embedded default): what SIGHUP
    /// re-reads.
    pub config_path: Option<PathBuf>,
    /// `--admin` / `SONDE_ADMIN`: overrides `agent.admin`.
    pub admin: Option<Listen>,
}

pub async fn run(config: Config, opts: Options) -> ExitCode {
    sonde_core::metrics::agent_start();
    let metrics = Registry::default();
    let health = Health::new(config.agent.health.unhealthy_after.get());
    let notifier = Notifier::from_env();
    let stop_admin = CancellationToken::new();
    let config_text = Arc::new(Mutex::new(config.to_toml()));
    let processors: Arc<Mutex<Vec<Arc<ProcessorNode>>>> = Arc::default();
    let reloads = ReloadCounters::new(&metrics);

    let admin_state = AdminState {
        metrics: metrics.clone(),
        health: health.clone(),
        config: config_text.clone(),
        processors: processors.clone(),
    };
    let admin_addr = opts.admin.unwrap_or(config.agent.admin);
    let Ok(admin_task) = start_admin(admin_addr, admin_state, &stop_admin).await else {
        return ExitCode::from(1);
    };

    let mut current = config;
    let mut running = match topology::start(&current, metrics.clone(), health.clone()).await {
        Ok(r) => r,
        Err(e) => {
            error!(error = error_text(&e), "cannot start");
            stop_admin.cancel();
            return ExitCode::from(1);
        }
    };
    health.set_sources_bound(true);
    *lock(&processors) = running.processors.clone();
    notifier.notify(Event::Ready(&status_line(&current)));
    let heartbeat = spawn_heartbeat(health.clone(), notifier.watchdog_interval().is_some());

    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        error!("cannot install signal handlers");
        return ExitCode::from(1);
    };
    let which = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = hup.recv() => {
                match reload(&opts, &current, running, &metrics, &health, &notifier).await {
                    (r, Some(new)) => {
                        running = r;
                        *lock(&processors) = running.processors.clone();
                        *lock(&config_text) = new.to_toml();
                        current = new;
                        reloads.ok.inc();
                    }
                    (r, None) => {
                        running = r;
                        reloads.failed.inc();
                    }
                }
            }
        }
    };
    info!(signal = which, "stopping");
    notifier.notify(Event::Stopping);
    exit_on_second_signal(term, int);
    health.set_sources_bound(false);
    running.stop().await;
    heartbeat.abort();
    stop_admin.cancel();
    if let Some(t) = admin_task {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), t).await;
    }
    ExitCode::SUCCESS
}

/// `sonde_config_reloads_total` by result.
struct ReloadCounters {
    ok: Counter,
    failed: Counter,
}

impl ReloadCounters {
    fn new(metrics: &Registry) -> Self {
        let counter = |result| {
            metrics.counter(
                "sonde_config_reloads_total",
                "Configuration reloads by result.",
                &[("result", result)],
            )
        };
        ReloadCounters {
            ok: counter("success"),
            failed: counter("failure"),
        }
    }
}

/// Starts the admin server when `addr` is not `off`; its task, to await on the way out. Err
/// (said in the log) when the address cannot be bound.
async fn start_admin(
    addr: Listen,
    state: AdminState,
    stop: &CancellationToken,
) -> Result<Option<JoinHandle<()>>, ()> {
    let Some(addr) = addr.addr() else {
        return Ok(None);
    };
    match admin::serve(addr, state, stop.clone()).await {
        Ok((bound, task)) => {
            info!(address = %bound, "admin server listening");
            Ok(Some(task))
        }
        Err(e) => {
            error!(address = %addr, error = %e, "cannot bind the admin address (agent.admin)");
            Err(())
        }
    }
}

/// The heartbeat: beats (and feeds the systemd watchdog when `watchdog`) only while every
/// export worker runs and the runtime schedules this task.
fn spawn_heartbeat(health: Arc<Health>, watchdog: bool) -> JoinHandle<()> {
    let notifier = Notifier::from_env();
    tokio::spawn(async move {
        // Beat as soon as the workers run (so the agent is live right after start), then once
        // per period; the watchdog is fed only by a beat.
        for _ in 0..100 {
            if health.heartbeat() {
                break;
            }
            tokio::time::sleep(BEAT / 100).await;
        }
        let mut tick = tokio::time::interval(BEAT);
        loop {
            tick.tick().await;
            if health.heartbeat() && watchdog {
                notifier.notify(Event::Watchdog);
            }
        }
    })
}

/// A second SIGTERM or SIGINT while stopping means "now": exit without draining.
fn exit_on_second_signal(mut term: Signal, mut int: Signal) {
    tokio::spawn(async move {
        let second = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        eprintln!("sonde: second signal ({second}), exiting immediately");
        std::process::exit(130);
    });
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `e` and its causes, joined with ": ". A cause is left out when the text before it already
/// ends with it: many errors here name their source in their own message (`thiserror`'s
/// `{source}`), and `{e:#}` would then print it twice.
pub fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut next = Some(e);
    while let Some(cause) = next {
        next = cause.source();
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn status_line(c: &Config) -> String {
    format!(
        "running: {} sources, {} exporters",
        c.sources.len(),
        c.exporters.len()
    )
}

/// Re-reads and validates the configuration; swaps the topology only for a valid one. Returns
/// the topology now running and, when the reload took, the new configuration.
async fn reload(
    opts: &Options,
    current: &Config,
    running: Running,
    metrics: &Registry,
    health: &Arc<Health>,
    notifier: &Notifier,
) -> (Running, Option<Config>) {
    let Some(path) = &opts.config_path else {
        warn!("SIGHUP: running on the embedded default configuration; nothing to reload");
        return (running, None);
    };
    info!(file = %path.display(), "SIGHUP: reloading the configuration");
    let new = match crate::load_config_file(path) {
        Ok(c) => c,
        Err(e) => {
            error!(file = %path.display(), problems = %e.to_string().trim_end(), "reload refused; the running configuration stays");
            return (running, None);
        }
    };
    if new == *current {
        info!("configuration unchanged");
        return (running, None);
    }
    if new.agent.admin != current.agent.admin && opts.admin.is_none() {
        warn!("agent.admin changed: the admin server moves only on restart");
    }
    notifier.notify(Event::Reloading);
    health.set_sources_bound(false);
    running.stop().await;
    health.set_unhealthy_after(new.agent.health.unhealthy_after.get());
    match topology::start(&new, metrics.clone(), health.clone()).await {
        Ok(r) => {
            health.set_sources_bound(true);
            notifier.notify(Event::Ready(&status_line(&new)));
            info!("configuration reloaded");
            (r, Some(new))
        }
        Err(e) => {
            error!(
                error = error_text(&e),
                "the new configuration cannot start; restarting the previous one"
            );
            health.set_unhealthy_after(current.agent.health.unhealthy_after.get());
            match topology::start(current, metrics.clone(), health.clone()).await {
                Ok(r) => {
                    health.set_sources_bound(true);
                    notifier.notify(Event::Ready(&status_line(current)));
                    (r, None)
                }
                Err(e) => {
                    // Nothing can run: exit so that the supervisor restarts the agent.
                    error!(
                        error = error_text(&e),
                        "the previous configuration cannot restart either; exiting"
                    );
                    std::process::exit(1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::error_text;
    use sonde_core::{BuildError, Kind};

    #[derive(Debug, thiserror::Error)]
    #[error("cannot listen on 127.0.0.1:4318: {source}")]
    struct Names {
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot listen on 127.0.0.1:4318")]
    struct Hides {
        source: std::io::Error,
    }

    fn in_use() -> std::io::Error {
        std::io::Error::from(std::io::ErrorKind::AddrInUse)
    }

    #[test]
    fn each_cause_is_said_once() {
        let want = format!(
            "source `otlp`: cannot listen on 127.0.0.1:4318: {}",
            in_use()
        );
        let named = BuildError::new(Kind::Source, "otlp", Names { source: in_use() });
        assert_eq!(error_text(&named), want);
        // A cause its error's message leaves out is still said.
        let hidden = BuildError::new(Kind::Source, "otlp", Hides { source: in_use() });
        assert_eq!(error_text(&hidden), want);
    }
}
