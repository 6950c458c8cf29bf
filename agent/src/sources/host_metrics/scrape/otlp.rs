//! Building OTLP metrics: the three instrument kinds the scraper emits and their data points.
//!
//! Counters become cumulative monotonic sums, up-down counters cumulative non-monotonic sums,
//! gauges gauges. Sums carry the series' start time (boot time for kernel counters, the
//! process's start for per-process ones); gauges carry none. Integers stay integers, fractional
//! figures are doubles.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Metric, NumberDataPoint, Sum,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instrument {
    Counter,
    UpDownCounter,
    Gauge,
}

/// The metrics of one resource, all stamped with the same scrape time.
pub struct Emitter {
    metrics: Vec<Metric>,
    now: u64,
    start: u64,
}

impl Emitter {
    /// `now` is the scrape time, `start` the start time of every sum (Unix nanoseconds).
    pub fn new(now: u64, start: u64) -> Self {
        Self {
            metrics: Vec::new(),
            now,
            start,
        }
    }

    /// Adds one metric with `points`; a metric with no points is left out.
    pub fn push(
        &mut self,
        instrument: Instrument,
        name: &str,
        unit: &str,
        description: &str,
        points: Points,
    ) {
        if points.0.is_empty() {
            return;
        }
        let mut data_points = points.0;
        let start = match instrument {
            Instrument::Gauge => 0,
            Instrument::Counter | Instrument::UpDownCounter => self.start,
        };
        for p in &mut data_points {
            p.time_unix_nano = self.now;
            p.start_time_unix_nano = start;
        }
        let data = match instrument {
            Instrument::Gauge => metric::Data::Gauge(Gauge { data_points }),
            Instrument::Counter | Instrument::UpDownCounter => metric::Data::Sum(Sum {
                data_points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: instrument == Instrument::Counter,
            }),
        };
        self.metrics.push(Metric {
            name: name.to_owned(),
            description: description.to_owned(),
            unit: unit.to_owned(),
            data: Some(data),
            ..Default::default()
        });
    }

    pub fn finish(self) -> Vec<Metric> {
        self.metrics
    }
}

/// The data points of one metric, before they are stamped with times.
#[derive(Default)]
pub struct Points(Vec<NumberDataPoint>);

impl Points {
    pub fn new() -> Self {
        Self::default()
    }

    /// An integer point. Figures above `i64::MAX` saturate (no kernel counter gets there).
    pub fn int(&mut self, attrs: &[(&str, &str)], value: u64) -> &mut Self {
        let v = i64::try_from(value).unwrap_or(i64::MAX);
        self.point(attrs, number_data_point::Value::AsInt(v))
    }

    pub fn double(&mut self, attrs: &[(&str, &str)], value: f64) -> &mut Self {
        self.point(attrs, number_data_point::Value::AsDouble(value))
    }

    fn point(&mut self, attrs: &[(&str, &str)], value: number_data_point::Value) -> &mut Self {
        self.0.push(NumberDataPoint {
            attributes: attrs.iter().map(|(k, v)| kv_str(k, v)).collect(),
            value: Some(value),
            ..Default::default()
        });
        self
    }
}

pub use crate::sources::kv_str;

pub fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// `part / whole` as a fraction in [0, 1]; `None` when `whole` is zero.
pub fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 / whole as f64).clamp(0.0, 1.0))
}
