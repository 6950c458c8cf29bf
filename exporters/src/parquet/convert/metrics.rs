//! `ExportMetricsServiceRequest` → one row per data point, whatever the metric type: the
//! columns a type does not use are null (see the schema).

use super::{
    append_id, batch, non_empty, struct_array, ts, ts_builder, AttrCols, ConvertError, DecodeError,
    Origin, OriginCols,
};
use crate::parquet::schema::{exemplar_fields, list_item, quantile_fields};
use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, FixedSizeBinaryBuilder, Float64Builder, Int32Builder,
    Int64Builder, ListBuilder, StringBuilder, TimestampNanosecondBuilder,
};
use arrow_array::{Array, ArrayRef, ListArray, RecordBatch};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{ArrowError, DataType};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, exponential_histogram_data_point::Buckets, metric, number_data_point,
    summary_data_point::ValueAtQuantile, Exemplar, ExponentialHistogram, Histogram, Metric,
    NumberDataPoint, Summary,
};
use prost::Message;
use sonde_core::Signal;
use std::sync::Arc;

pub(super) fn convert(payload: &[u8]) -> Result<RecordBatch, ConvertError> {
    let req =
        ExportMetricsServiceRequest::decode(payload).map_err(|source| ConvertError::Decode {
            signal: Signal::Metrics,
            source: DecodeError::Prost(source),
        })?;
    let mut cols = MetricCols::default();
    let mut scopes = 0;
    for (i, rm) in req.resource_metrics.iter().enumerate() {
        let origin = Origin::new(i, rm.resource.as_ref(), &rm.schema_url);
        for sm in &rm.scope_metrics {
            scopes += 1;
            let origin = origin.with_scope(scopes, sm.scope.as_ref(), &sm.schema_url);
            for m in &sm.metrics {
                cols.append_metric(&origin, m);
            }
        }
    }
    let columns = cols.finish().map_err(|source| ConvertError::Arrow {
        signal: Signal::Metrics,
        source,
    })?;
    batch(Signal::Metrics, columns)
}

fn temporality_name(t: i32) -> &'static str {
    match t {
        1 => "delta",
        2 => "cumulative",
        _ => "unspecified",
    }
}

/// Everything one data point row can hold; what its type does not use stays `None`.
#[derive(Default)]
struct Row<'a> {
    time: u64,
    start: u64,
    value_int: Option<i64>,
    value_double: Option<f64>,
    count: Option<u64>,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    buckets: Option<(&'a [u64], &'a [f64])>,
    exp: Option<Exp<'a>>,
    quantiles: Option<&'a [ValueAtQuantile]>,
    flags: u32,
    exemplars: &'a [Exemplar],
    attributes: &'a [KeyValue],
}

struct Exp<'a> {
    scale: i32,
    zero_count: u64,
    zero_threshold: f64,
    positive: Option<&'a Buckets>,
    negative: Option<&'a Buckets>,
}

/// The metric-level fields repeated on each of its rows.
struct Head<'a> {
    metric: &'a Metric,
    kind: &'static str,
    temporality: Option<&'static str>,
    monotonic: Option<bool>,
}

fn i64_of(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

struct MetricCols {
    name: StringBuilder,
    description: StringBuilder,
    unit: StringBuilder,
    kind: StringBuilder,
    temporality: StringBuilder,
    monotonic: BooleanBuilder,
    time: TimestampNanosecondBuilder,
    start: TimestampNanosecondBuilder,
    value_int: Int64Builder,
    value_double: Float64Builder,
    count: Int64Builder,
    sum: Float64Builder,
    min: Float64Builder,
    max: Float64Builder,
    bucket_counts: ListBuilder<Int64Builder>,
    explicit_bounds: ListBuilder<Float64Builder>,
    exp_scale: Int32Builder,
    exp_zero_count: Int64Builder,
    exp_zero_threshold: Float64Builder,
    exp_pos_offset: Int32Builder,
    exp_pos_counts: ListBuilder<Int64Builder>,
    exp_neg_offset: Int32Builder,
    exp_neg_counts: ListBuilder<Int64Builder>,
    quantiles: Quantiles,
    flags: Int64Builder,
    exemplars: Exemplars,
    origin: OriginCols,
    attrs: AttrCols,
    metadata: AttrCols,
}

fn i64_list() -> ListBuilder<Int64Builder> {
    ListBuilder::new(Int64Builder::new()).with_field(list_item(DataType::Int64))
}

impl Default for MetricCols {
    fn default() -> Self {
        MetricCols {
            name: StringBuilder::new(),
            description: StringBuilder::new(),
            unit: StringBuilder::new(),
            kind: StringBuilder::new(),
            temporality: StringBuilder::new(),
            monotonic: BooleanBuilder::new(),
            time: ts_builder(0),
            start: ts_builder(0),
            value_int: Int64Builder::new(),
            value_double: Float64Builder::new(),
            count: Int64Builder::new(),
            sum: Float64Builder::new(),
            min: Float64Builder::new(),
            max: Float64Builder::new(),
            bucket_counts: i64_list(),
            explicit_bounds: ListBuilder::new(Float64Builder::new())
                .with_field(list_item(DataType::Float64)),
            exp_scale: Int32Builder::new(),
            exp_zero_count: Int64Builder::new(),
            exp_zero_threshold: Float64Builder::new(),
            exp_pos_offset: Int32Builder::new(),
            exp_pos_counts: i64_list(),
            exp_neg_offset: Int32Builder::new(),
            exp_neg_counts: i64_list(),
            quantiles: Quantiles::default(),
            flags: Int64Builder::new(),
            exemplars: Exemplars::default(),
            origin: OriginCols::default(),
            attrs: AttrCols::default(),
            metadata: AttrCols::default(),
        }
    }
}

impl MetricCols {
    /// One row per data point of `m`, whatever its type (none when it has no data).
    fn append_metric(&mut self, origin: &Origin<'_>, m: &Metric) {
        let Some(data) = &m.data else {
            return;
        };
        match data {
            metric::Data::Gauge(g) => {
                let head = Head {
                    metric: m,
                    kind: "gauge",
                    temporality: None,
                    monotonic: None,
                };
                self.append_numbers(origin, &head, &g.data_points);
            }
            metric::Data::Sum(s) => {
                let head = Head {
                    metric: m,
                    kind: "sum",
                    temporality: Some(temporality_name(s.aggregation_temporality)),
                    monotonic: Some(s.is_monotonic),
                };
                self.append_numbers(origin, &head, &s.data_points);
            }
            metric::Data::Histogram(h) => self.append_histogram(origin, m, h),
            metric::Data::ExponentialHistogram(h) => self.append_exp_histogram(origin, m, h),
            metric::Data::Summary(s) => self.append_summary(origin, m, s),
        }
    }

    /// Gauge and sum points: an integer or a floating-point value.
    fn append_numbers(&mut self, origin: &Origin<'_>, head: &Head<'_>, points: &[NumberDataPoint]) {
        for p in points {
            let (vi, vd) = number(p.value);
            self.append(
                origin,
                head,
                Row {
                    time: p.time_unix_nano,
                    start: p.start_time_unix_nano,
                    value_int: vi,
                    value_double: vd,
                    flags: p.flags,
                    exemplars: &p.exemplars,
                    attributes: &p.attributes,
                    ..Default::default()
                },
            );
        }
    }

    /// Histogram points: count, sum, min, max and the explicit buckets.
    fn append_histogram(&mut self, origin: &Origin<'_>, m: &Metric, h: &Histogram) {
        let head = Head {
            metric: m,
            kind: "histogram",
            temporality: Some(temporality_name(h.aggregation_temporality)),
            monotonic: None,
        };
        for p in &h.data_points {
            self.append(
                origin,
                &head,
                Row {
                    time: p.time_unix_nano,
                    start: p.start_time_unix_nano,
                    count: Some(p.count),
                    sum: p.sum,
                    min: p.min,
                    max: p.max,
                    buckets: Some((&p.bucket_counts, &p.explicit_bounds)),
                    flags: p.flags,
                    exemplars: &p.exemplars,
                    attributes: &p.attributes,
                    ..Default::default()
                },
            );
        }
    }

    /// Exponential histogram points: count, sum, min, max, the scale, the zero bucket and the
    /// positive and negative buckets.
    fn append_exp_histogram(&mut self, origin: &Origin<'_>, m: &Metric, h: &ExponentialHistogram) {
        let head = Head {
            metric: m,
            kind: "exponential_histogram",
            temporality: Some(temporality_name(h.aggregation_temporality)),
            monotonic: None,
        };
        for p in &h.data_points {
            self.append(
                origin,
                &head,
                Row {
                    time: p.time_unix_nano,
                    start: p.start_time_unix_nano,
                    count: Some(p.count),
                    sum: p.sum,
                    min: p.min,
                    max: p.max,
                    exp: Some(Exp {
                        scale: p.scale,
                        zero_count: p.zero_count,
                        zero_threshold: p.zero_threshold,
                        positive: p.positive.as_ref(),
                        negative: p.negative.as_ref(),
                    }),
                    flags: p.flags,
                    exemplars: &p.exemplars,
                    attributes: &p.attributes,
                    ..Default::default()
                },
            );
        }
    }

    /// Summary points: count, sum and the quantiles.
    fn append_summary(&mut self, origin: &Origin<'_>, m: &Metric, s: &Summary) {
        let head = Head {
            metric: m,
            kind: "summary",
            temporality: None,
            monotonic: None,
        };
        for p in &s.data_points {
            self.append(
                origin,
                &head,
                Row {
                    time: p.time_unix_nano,
                    start: p.start_time_unix_nano,
                    count: Some(p.count),
                    sum: Some(p.sum),
                    quantiles: Some(&p.quantile_values),
                    flags: p.flags,
                    attributes: &p.attributes,
                    ..Default::default()
                },
            );
        }
    }

    fn append(&mut self, origin: &Origin<'_>, head: &Head<'_>, r: Row<'_>) {
        let m = head.metric;
        self.name.append_value(&m.name);
        self.description.append_option(non_empty(&m.description));
        self.unit.append_option(non_empty(&m.unit));
        self.kind.append_value(head.kind);
        self.temporality.append_option(head.temporality);
        self.monotonic.append_option(head.monotonic);
        self.time.append_option(ts(r.time));
        self.start.append_option(ts(r.start));
        self.value_int.append_option(r.value_int);
        self.value_double.append_option(r.value_double);
        self.count.append_option(r.count.map(i64_of));
        self.sum.append_option(r.sum);
        self.min.append_option(r.min);
        self.max.append_option(r.max);
        match r.buckets {
            Some((counts, bounds)) => {
                self.bucket_counts
                    .values()
                    .extend(counts.iter().map(|c| Some(i64_of(*c))));
                self.bucket_counts.append(true);
                self.explicit_bounds.values().append_slice(bounds);
                self.explicit_bounds.append(true);
            }
            None => {
                self.bucket_counts.append(false);
                self.explicit_bounds.append(false);
            }
        }
        match &r.exp {
            Some(e) => {
                self.exp_scale.append_value(e.scale);
                self.exp_zero_count.append_value(i64_of(e.zero_count));
                self.exp_zero_threshold.append_value(e.zero_threshold);
                for (offset, counts, b) in [
                    (
                        &mut self.exp_pos_offset,
                        &mut self.exp_pos_counts,
                        e.positive,
                    ),
                    (
                        &mut self.exp_neg_offset,
                        &mut self.exp_neg_counts,
                        e.negative,
                    ),
                ] {
                    offset.append_value(b.map_or(0, |b| b.offset));
                    if let Some(b) = b {
                        counts
                            .values()
                            .extend(b.bucket_counts.iter().map(|c| Some(i64_of(*c))));
                    }
                    counts.append(true);
                }
            }
            None => {
                self.exp_scale.append_null();
                self.exp_zero_count.append_null();
                self.exp_zero_threshold.append_null();
                self.exp_pos_offset.append_null();
                self.exp_pos_counts.append(false);
                self.exp_neg_offset.append_null();
                self.exp_neg_counts.append(false);
            }
        }
        self.quantiles.append(r.quantiles);
        self.flags.append_value(r.flags as i64);
        for e in r.exemplars {
            self.exemplars.append(e);
        }
        self.exemplars.end_row();
        self.origin.append(origin);
        self.attrs.append(r.attributes);
        self.metadata.append(&m.metadata);
    }

    fn finish(mut self) -> Result<Vec<ArrayRef>, ArrowError> {
        let mut out: Vec<ArrayRef> = vec![
            Arc::new(self.name.finish()),
            Arc::new(self.description.finish()),
            Arc::new(self.unit.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.temporality.finish()),
            Arc::new(self.monotonic.finish()),
            Arc::new(self.time.finish()),
            Arc::new(self.start.finish()),
            Arc::new(self.value_int.finish()),
            Arc::new(self.value_double.finish()),
            Arc::new(self.count.finish()),
            Arc::new(self.sum.finish()),
            Arc::new(self.min.finish()),
            Arc::new(self.max.finish()),
            Arc::new(self.bucket_counts.finish()),
            Arc::new(self.explicit_bounds.finish()),
            Arc::new(self.exp_scale.finish()),
            Arc::new(self.exp_zero_count.finish()),
            Arc::new(self.exp_zero_threshold.finish()),
            Arc::new(self.exp_pos_offset.finish()),
            Arc::new(self.exp_pos_counts.finish()),
            Arc::new(self.exp_neg_offset.finish()),
            Arc::new(self.exp_neg_counts.finish()),
            self.quantiles.finish()?,
            Arc::new(self.flags.finish()),
            self.exemplars.finish()?,
        ];
        self.origin.finish(&mut out)?;
        self.attrs.finish(&mut out)?;
        self.metadata.finish(&mut out)?;
        Ok(out)
    }
}

fn number(v: Option<number_data_point::Value>) -> (Option<i64>, Option<f64>) {
    match v {
        Some(number_data_point::Value::AsInt(i)) => (Some(i), None),
        Some(number_data_point::Value::AsDouble(d)) => (None, Some(d)),
        None => (None, None),
    }
}

/// `list<struct<quantile, value>>`, null for rows that are not summaries.
struct Quantiles {
    offsets: Vec<i32>,
    valid: Vec<bool>,
    quantile: Float64Builder,
    value: Float64Builder,
}

impl Default for Quantiles {
    fn default() -> Self {
        Quantiles {
            offsets: vec![0],
            valid: Vec::new(),
            quantile: Float64Builder::new(),
            value: Float64Builder::new(),
        }
    }
}

impl Quantiles {
    fn append(&mut self, q: Option<&[ValueAtQuantile]>) {
        if let Some(q) = q {
            for v in q {
                self.quantile.append_value(v.quantile);
                self.value.append_value(v.value);
            }
        }
        self.valid.push(q.is_some());
        self.offsets.push(self.quantile.len() as i32);
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let values = struct_array(
            quantile_fields(),
            vec![
                Arc::new(self.quantile.finish()),
                Arc::new(self.value.finish()),
            ],
        )?;
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        let valid = std::mem::take(&mut self.valid);
        Ok(Arc::new(ListArray::try_new(
            list_item(DataType::Struct(quantile_fields())),
            OffsetBuffer::new(offsets.into()),
            Arc::new(values),
            Some(NullBuffer::from(valid)),
        )?))
    }
}

/// `list<struct<exemplar>>`, empty when a point has none.
struct Exemplars {
    offsets: Vec<i32>,
    time: TimestampNanosecondBuilder,
    value_int: Int64Builder,
    value_double: Float64Builder,
    trace_id: FixedSizeBinaryBuilder,
    span_id: FixedSizeBinaryBuilder,
    attrs: AttrCols,
}

impl Default for Exemplars {
    fn default() -> Self {
        Exemplars {
            offsets: vec![0],
            time: ts_builder(0),
            value_int: Int64Builder::new(),
            value_double: Float64Builder::new(),
            trace_id: FixedSizeBinaryBuilder::new(16),
            span_id: FixedSizeBinaryBuilder::new(8),
            attrs: AttrCols::default(),
        }
    }
}

impl Exemplars {
    fn append(&mut self, e: &Exemplar) {
        self.time.append_option(ts(e.time_unix_nano));
        let (vi, vd) = match e.value {
            Some(exemplar::Value::AsInt(i)) => (Some(i), None),
            Some(exemplar::Value::AsDouble(d)) => (None, Some(d)),
            None => (None, None),
        };
        self.value_int.append_option(vi);
        self.value_double.append_option(vd);
        append_id(&mut self.trace_id, &e.trace_id, 16);
        append_id(&mut self.span_id, &e.span_id, 8);
        self.attrs.append(&e.filtered_attributes);
    }

    fn end_row(&mut self) {
        self.offsets.push(self.value_int.len() as i32);
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.value_int.finish()),
            Arc::new(self.value_double.finish()),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
        ];
        self.attrs.finish(&mut cols)?;
        let values = struct_array(exemplar_fields(), cols)?;
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        Ok(Arc::new(ListArray::try_new(
            list_item(values.data_type().clone()),
            OffsetBuffer::new(offsets.into()),
            Arc::new(values),
            None,
        )?))
    }
}
