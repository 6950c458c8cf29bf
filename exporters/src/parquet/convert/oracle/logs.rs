//! The prost-based converter this module replaced, kept as the test oracle.
//!
//! `ExportLogsServiceRequest` → one row per log record.
//!
//! The body: a string stays as it is; any other value (int, double, bool, bytes, array, key-value
//! list) becomes its JSON text (bytes as a base64 string), and `body_type` says which it was, so
//! `json_extract(body, '$.field')` works on structured bodies.

use crate::parquet::convert::{
    append_id, base64, batch, json_text, non_empty, ts, ts_builder, AttrCols, ConvertError,
    DecodeError, Origin, OriginCols,
};
use arrow_array::builder::{
    FixedSizeBinaryBuilder, Int32Builder, Int64Builder, StringBuilder, TimestampNanosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message;
use sonde_core::Signal;
use std::sync::Arc;

pub(crate) fn convert(payload: &[u8]) -> Result<RecordBatch, ConvertError> {
    let req = ExportLogsServiceRequest::decode(payload).map_err(|source| ConvertError::Decode {
        signal: Signal::Logs,
        source: DecodeError::Prost(source),
    })?;
    let rows: usize = req
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    let mut cols = LogCols::new(rows);
    let mut scopes = 0;
    for (i, rl) in req.resource_logs.iter().enumerate() {
        let origin = Origin::new(i, rl.resource.as_ref(), &rl.schema_url);
        for sl in &rl.scope_logs {
            scopes += 1;
            let origin = origin.with_scope(scopes, sl.scope.as_ref(), &sl.schema_url);
            for r in &sl.log_records {
                cols.append(&origin, r);
            }
        }
    }
    let columns = cols.finish().map_err(|source| ConvertError::Arrow {
        signal: Signal::Logs,
        source,
    })?;
    batch(Signal::Logs, columns)
}

struct LogCols {
    time: TimestampNanosecondBuilder,
    observed: TimestampNanosecondBuilder,
    severity_number: Int32Builder,
    severity_text: StringBuilder,
    body: StringBuilder,
    body_type: StringBuilder,
    event_name: StringBuilder,
    trace_id: FixedSizeBinaryBuilder,
    span_id: FixedSizeBinaryBuilder,
    flags: Int64Builder,
    origin: OriginCols,
    attrs: AttrCols,
    dropped_attrs: Int64Builder,
}

impl LogCols {
    fn new(rows: usize) -> Self {
        LogCols {
            time: ts_builder(rows),
            observed: ts_builder(rows),
            severity_number: Int32Builder::with_capacity(rows),
            severity_text: StringBuilder::with_capacity(rows, rows * 5),
            body: StringBuilder::with_capacity(rows, rows * 64),
            body_type: StringBuilder::with_capacity(rows, rows * 6),
            event_name: StringBuilder::new(),
            trace_id: FixedSizeBinaryBuilder::with_capacity(rows, 16),
            span_id: FixedSizeBinaryBuilder::with_capacity(rows, 8),
            flags: Int64Builder::with_capacity(rows),
            origin: OriginCols::default(),
            attrs: AttrCols::default(),
            dropped_attrs: Int64Builder::with_capacity(rows),
        }
    }

    fn append(&mut self, origin: &Origin<'_>, r: &LogRecord) {
        self.time.append_option(ts(r.time_unix_nano));
        self.observed.append_option(ts(r.observed_time_unix_nano));
        self.severity_number.append_value(r.severity_number);
        self.severity_text
            .append_option(non_empty(&r.severity_text));
        match r.body.as_ref().and_then(|b| b.value.as_ref()) {
            None => {
                self.body.append_null();
                self.body_type.append_null();
            }
            Some(v) => {
                let (text, ty) = match v {
                    any_value::Value::StringValue(s) => (None, ("string", s.as_str())),
                    any_value::Value::BytesValue(b) => (Some(base64(b)), ("bytes", "")),
                    any_value::Value::IntValue(_) => (Some(json_text(v)), ("int", "")),
                    any_value::Value::DoubleValue(_) => (Some(json_text(v)), ("double", "")),
                    any_value::Value::BoolValue(_) => (Some(json_text(v)), ("bool", "")),
                    any_value::Value::ArrayValue(_) => (Some(json_text(v)), ("array", "")),
                    any_value::Value::KvlistValue(_) => (Some(json_text(v)), ("kvlist", "")),
                    any_value::Value::StringValueStrindex(_) => {
                        (Some(json_text(v)), ("strindex", ""))
                    }
                };
                match text {
                    Some(t) => self.body.append_value(t),
                    None => self.body.append_value(ty.1),
                }
                self.body_type.append_value(ty.0);
            }
        }
        self.event_name.append_option(non_empty(&r.event_name));
        append_id(&mut self.trace_id, &r.trace_id, 16);
        append_id(&mut self.span_id, &r.span_id, 8);
        self.flags.append_value(r.flags as i64);
        self.origin.append(origin);
        self.attrs.append(&r.attributes);
        self.dropped_attrs
            .append_value(r.dropped_attributes_count as i64);
    }

    fn finish(mut self) -> Result<Vec<ArrayRef>, arrow_schema::ArrowError> {
        let mut out: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.observed.finish()),
            Arc::new(self.severity_number.finish()),
            Arc::new(self.severity_text.finish()),
            Arc::new(self.body.finish()),
            Arc::new(self.body_type.finish()),
            Arc::new(self.event_name.finish()),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.flags.finish()),
        ];
        self.origin.finish(&mut out)?;
        self.attrs.finish(&mut out)?;
        out.push(Arc::new(self.dropped_attrs.finish()));
        Ok(out)
    }
}
