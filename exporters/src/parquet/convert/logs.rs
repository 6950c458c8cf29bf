//! `ExportLogsServiceRequest` → one row per log record.
//!
//! The body: a string stays as it is; any other value (int, double, bool, bytes, array, key-value
//! list) becomes its JSON text (bytes as a base64 string), and `body_type` says which it was, so
//! `json_extract(body, '$.field')` works on structured bodies.

use super::view::{self, bytes_of, depth, str_of, write_json, AnyView, Chunks, KvView};
use super::view::{ResourceView, ScopeView};
use super::{
    append_id, base64_into, convert_items, non_empty, ts, ts_builder, AttrCols, ConvertError,
    ItemRows, OriginCols,
};
use arrow_array::builder::{
    FixedSizeBinaryBuilder, Int32Builder, Int64Builder, StringBuilder, TimestampNanosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::ArrowError;
use sonde_core::wire::{Reader, WireError};
use sonde_core::Signal;
use std::sync::Arc;

pub(super) fn convert(payload: &[u8]) -> Result<RecordBatch, ConvertError> {
    let rows = LogCols::new(view::capacity_hint(payload.len(), 256));
    convert_items(Signal::Logs, payload, rows)
}

/// A log record's scalar fields as read (defaults = protobuf's defaults).
#[derive(Default)]
struct RecordFields<'a> {
    time: u64,
    observed: u64,
    severity_number: i32,
    severity_text: &'a str,
    body: Chunks,
    dropped_attrs: u32,
    flags: u32,
    trace_id: &'a [u8],
    span_id: &'a [u8],
    event_name: &'a str,
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
    /// Reused for the JSON of structured bodies.
    scratch: Vec<u8>,
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
            scratch: Vec::new(),
        }
    }

    /// The body: a string as it is, bytes as base64, anything else as its JSON text.
    fn append_body(&mut self, buf: &[u8], body: &AnyView<'_>) -> Result<(), WireError> {
        let ty = match body {
            AnyView::Empty => {
                self.body.append_null();
                self.body_type.append_null();
                return Ok(());
            }
            AnyView::Str(s) => {
                self.body.append_value(s);
                "string"
            }
            AnyView::Bytes(b) => {
                base64_into(&mut self.body, b);
                self.body.append_value("");
                "bytes"
            }
            v => {
                self.scratch.clear();
                write_json(&mut self.scratch, buf, v, depth::ITEM + 1)?;
                // Built from checked `&str`s and ASCII punctuation, so always UTF-8.
                self.body
                    .append_value(String::from_utf8_lossy(&self.scratch));
                match v {
                    AnyView::Int(_) => "int",
                    AnyView::Double(_) => "double",
                    AnyView::Bool(_) => "bool",
                    AnyView::Array(_) => "array",
                    AnyView::Kvlist(_) => "kvlist",
                    _ => "strindex",
                }
            }
        };
        self.body_type.append_value(ty);
        Ok(())
    }
}

impl ItemRows for LogCols {
    /// Reads the log record in `buf[range]` and appends its row (attributes as they are read,
    /// the other fields once the record is read, the last occurrence of each winning).
    fn append(
        &mut self,
        buf: &[u8],
        resource: &ResourceView<'_>,
        scope: &ScopeView<'_>,
        (a, b): (usize, usize),
    ) -> Result<(), WireError> {
        let mut r = RecordFields::default();
        let mut rd = Reader::new(buf, a, b);
        while let Some(f) = rd.next()? {
            match f.number {
                1 => r.time = f.fixed64()?,
                2 => r.severity_number = f.varint()? as i32,
                3 => r.severity_text = str_of(buf, &f)?,
                5 => {
                    r.body.push(f.len()?);
                    view::enter(depth::ITEM + 1, f.start)?;
                }
                6 => self
                    .attrs
                    .push(buf, &KvView::field(buf, &f, depth::ITEM + 1)?)?,
                7 => r.dropped_attrs = f.varint()? as u32,
                8 => r.flags = f.fixed32()?,
                9 => r.trace_id = bytes_of(buf, &f)?,
                10 => r.span_id = bytes_of(buf, &f)?,
                11 => r.observed = f.fixed64()?,
                12 => r.event_name = str_of(buf, &f)?,
                _ => {}
            }
        }
        self.attrs.end_row();
        let body = AnyView::read(buf, &r.body, depth::ITEM + 1)?;
        self.append_body(buf, &body)?;

        self.time.append_option(ts(r.time));
        self.observed.append_option(ts(r.observed));
        self.severity_number.append_value(r.severity_number);
        self.severity_text.append_option(non_empty(r.severity_text));
        self.event_name.append_option(non_empty(r.event_name));
        append_id(&mut self.trace_id, r.trace_id, 16);
        append_id(&mut self.span_id, r.span_id, 8);
        self.flags.append_value(i64::from(r.flags));
        self.origin.append_view(resource, scope);
        self.dropped_attrs.append_value(i64::from(r.dropped_attrs));
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<ArrayRef>, ArrowError> {
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
