//! The admin HTTP server on `agent.admin` (loopback by default): the agent's own metrics as
//! Prometheus text, health that means something, and the effective configuration.
//!
//! - `GET /metrics`: every counter and gauge of the registry, plus process CPU, RSS, open fds and
//!   build info (`process_*` names as the Prometheus client libraries use them).
//! - `GET /health/live`: 200 while the pipeline heartbeat turns, else 503.
//! - `GET /health/ready`: 200 when sources are bound and no exporter is failing past
//!   `agent.health.unhealthy_after`; else 503 with a JSON body naming each component and why.
//! - `GET /config`: the effective configuration, secrets redacted.
//! - `GET /processors`: what each processor found or holds, as JSON (the resource processor's
//!   detected attributes, cloud ones included once their metadata service answered).

use crate::health::Health;
use crate::processors::ProcessorNode;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sonde_core::metrics::Registry;
use sonde_core::process::ProcessFigures;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct AdminState {
    pub metrics: Registry,
    pub health: Arc<Health>,
    /// The effective config as redacted TOML; replaced on reload.
    pub config: Arc<Mutex<String>>,
    /// The running processors; replaced on reload.
    pub processors: Arc<Mutex<Vec<Arc<ProcessorNode>>>>,
}

/// Binds the admin address and serves until `shutdown`. Returns the bound address (port 0 asks
/// the OS for one).
pub async fn serve(
    addr: SocketAddr,
    state: AdminState,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/config", get(config))
        .route("/processors", get(processors))
        .with_state(state);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    Ok((bound, task))
}

async fn metrics(State(s): State<AdminState>) -> Response {
    let mut body = s.metrics.render();
    process_metrics(&mut body);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn live(State(s): State<AdminState>) -> Response {
    if s.health.live() {
        (StatusCode::OK, "live\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the pipeline heartbeat has stopped\n",
        )
            .into_response()
    }
}

async fn ready(State(s): State<AdminState>) -> Response {
    let problems = s.health.problems();
    let (status, body) = if problems.is_empty() {
        (StatusCode::OK, serde_json::json!({ "status": "ready" }))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "status": "not ready", "problems": problems }),
        )
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn config(State(s): State<AdminState>) -> Response {
    let text = s.config.lock().unwrap_or_else(|p| p.into_inner()).clone();
    (
        [(header::CONTENT_TYPE, "application/toml; charset=utf-8")],
        text,
    )
        .into_response()
}

async fn processors(State(s): State<AdminState>) -> Response {
    let list = s
        .processors
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let body: serde_json::Map<String, serde_json::Value> = list
        .iter()
        .map(|p| {
            (
                p.name().to_string(),
                p.describe()
                    .unwrap_or(serde_json::Value::Object(Default::default())),
            )
        })
        .collect();
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::Value::Object(body).to_string(),
    )
        .into_response()
}

/// Appends the process's own figures and build info.
fn process_metrics(out: &mut String) {
    let p = ProcessFigures::read();
    let _ = writeln!(
        out,
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}",
        p.cpu_seconds
    );
    let _ = writeln!(
        out,
        "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}",
        p.resident_bytes
    );
    let _ = writeln!(
        out,
        "# HELP sonde_process_peak_resident_memory_bytes Peak resident memory size in bytes.\n# TYPE sonde_process_peak_resident_memory_bytes gauge\nsonde_process_peak_resident_memory_bytes {}",
        p.peak_resident_bytes
    );
    let _ = writeln!(
        out,
        "# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds {}",
        p.open_fds
    );
    let _ = writeln!(
        out,
        "# HELP sonde_build_info Sonde's version.\n# TYPE sonde_build_info gauge\nsonde_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
}
