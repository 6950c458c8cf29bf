//! OTLP as it travels: the gRPC method and HTTP paths of each signal, the raw-bytes gRPC
//! [`codec`], and the [`status`] messages of answers and refusals.

pub mod codec;
pub mod status;

use crate::Signal;

/// The gRPC method that exports `signal` (`/opentelemetry.proto.collector.<signal>.v1.…/Export`).
pub fn grpc_path(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    }
}

/// The OTLP/HTTP path of `signal` (`/v1/traces`, `/v1/metrics`, `/v1/logs`).
pub fn http_path(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "/v1/traces",
        Signal::Metrics => "/v1/metrics",
        Signal::Logs => "/v1/logs",
    }
}

/// The signal a gRPC method exports, if it is one of OTLP's.
pub fn signal_of_grpc_path(path: &str) -> Option<Signal> {
    Signal::ALL.into_iter().find(|s| grpc_path(*s) == path)
}

/// The signal of an OTLP/HTTP path, if it is one of OTLP's.
pub fn signal_of_http_path(path: &str) -> Option<Signal> {
    Signal::ALL.into_iter().find(|s| http_path(*s) == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_back_to_their_signal() {
        for s in Signal::ALL {
            assert_eq!(signal_of_grpc_path(grpc_path(s)), Some(s));
            assert_eq!(signal_of_http_path(http_path(s)), Some(s));
        }
        assert_eq!(signal_of_http_path("/v1/trace"), None);
        assert_eq!(signal_of_grpc_path("/v1/traces"), None);
    }
}
