//! The prost-based converter this module replaced, kept as the test oracle.
//!
//! `ExportTraceServiceRequest` → one row per span.

use crate::parquet::convert::{
    append_id, batch, non_empty, struct_array, ts, ts_builder, AttrCols, ConvertError, DecodeError,
    Origin, OriginCols,
};
use crate::parquet::schema::{event_fields, link_fields, list_item};
use arrow_array::builder::{
    ArrayBuilder, FixedSizeBinaryBuilder, Int64Builder, StringBuilder, TimestampNanosecondBuilder,
};
use arrow_array::{Array, ArrayRef, ListArray, RecordBatch};
use arrow_buffer::OffsetBuffer;
use arrow_schema::ArrowError;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{span, Span};
use prost::Message;
use sonde_core::Signal;
use std::sync::Arc;

pub(crate) fn convert(payload: &[u8]) -> Result<RecordBatch, ConvertError> {
    let req =
        ExportTraceServiceRequest::decode(payload).map_err(|source| ConvertError::Decode {
            signal: Signal::Traces,
            source: DecodeError::Prost(source),
        })?;
    let rows: usize = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    let mut cols = SpanCols::new(rows);
    let mut scopes = 0;
    for (i, rs) in req.resource_spans.iter().enumerate() {
        let origin = Origin::new(i, rs.resource.as_ref(), &rs.schema_url);
        for ss in &rs.scope_spans {
            scopes += 1;
            let origin = origin.with_scope(scopes, ss.scope.as_ref(), &ss.schema_url);
            for span in &ss.spans {
                cols.append(&origin, span);
            }
        }
    }
    let columns = cols.finish().map_err(|source| ConvertError::Arrow {
        signal: Signal::Traces,
        source,
    })?;
    batch(Signal::Traces, columns)
}

pub(crate) fn kind_name(kind: i32) -> &'static str {
    match span::SpanKind::try_from(kind) {
        Ok(span::SpanKind::Unspecified) => "unspecified",
        Ok(span::SpanKind::Internal) => "internal",
        Ok(span::SpanKind::Server) => "server",
        Ok(span::SpanKind::Client) => "client",
        Ok(span::SpanKind::Producer) => "producer",
        Ok(span::SpanKind::Consumer) => "consumer",
        Err(_) => "unknown",
    }
}

fn status_name(code: i32) -> &'static str {
    match code {
        0 => "unset",
        1 => "ok",
        2 => "error",
        _ => "unknown",
    }
}

struct SpanCols {
    trace_id: FixedSizeBinaryBuilder,
    span_id: FixedSizeBinaryBuilder,
    parent_span_id: FixedSizeBinaryBuilder,
    trace_state: StringBuilder,
    flags: Int64Builder,
    name: StringBuilder,
    kind: StringBuilder,
    start: TimestampNanosecondBuilder,
    end: TimestampNanosecondBuilder,
    duration: Int64Builder,
    status_code: StringBuilder,
    status_message: StringBuilder,
    origin: OriginCols,
    attrs: AttrCols,
    dropped_attrs: Int64Builder,
    events: Events,
    dropped_events: Int64Builder,
    links: Links,
    dropped_links: Int64Builder,
}

impl SpanCols {
    fn new(rows: usize) -> Self {
        SpanCols {
            trace_id: FixedSizeBinaryBuilder::with_capacity(rows, 16),
            span_id: FixedSizeBinaryBuilder::with_capacity(rows, 8),
            parent_span_id: FixedSizeBinaryBuilder::with_capacity(rows, 8),
            trace_state: StringBuilder::new(),
            flags: Int64Builder::with_capacity(rows),
            name: StringBuilder::with_capacity(rows, rows * 16),
            kind: StringBuilder::with_capacity(rows, rows * 6),
            start: ts_builder(rows),
            end: ts_builder(rows),
            duration: Int64Builder::with_capacity(rows),
            status_code: StringBuilder::with_capacity(rows, rows * 5),
            status_message: StringBuilder::new(),
            origin: OriginCols::default(),
            attrs: AttrCols::default(),
            dropped_attrs: Int64Builder::with_capacity(rows),
            events: Events::default(),
            dropped_events: Int64Builder::with_capacity(rows),
            links: Links::default(),
            dropped_links: Int64Builder::with_capacity(rows),
        }
    }

    fn append(&mut self, origin: &Origin<'_>, s: &Span) {
        append_id(&mut self.trace_id, &s.trace_id, 16);
        append_id(&mut self.span_id, &s.span_id, 8);
        append_id(&mut self.parent_span_id, &s.parent_span_id, 8);
        self.trace_state.append_option(non_empty(&s.trace_state));
        self.flags.append_value(s.flags as i64);
        self.name.append_value(&s.name);
        self.kind.append_value(kind_name(s.kind));
        let (start, end) = (ts(s.start_time_unix_nano), ts(s.end_time_unix_nano));
        self.start.append_option(start);
        self.end.append_option(end);
        self.duration
            .append_option(start.zip(end).map(|(a, b)| b.saturating_sub(a)));
        let status = s.status.as_ref();
        self.status_code
            .append_value(status_name(status.map_or(0, |s| s.code)));
        self.status_message
            .append_option(status.and_then(|s| non_empty(&s.message)));
        self.origin.append(origin);
        self.attrs.append(&s.attributes);
        self.dropped_attrs
            .append_value(s.dropped_attributes_count as i64);
        for e in &s.events {
            self.events.append(e);
        }
        self.events.end_row();
        self.dropped_events
            .append_value(s.dropped_events_count as i64);
        for l in &s.links {
            self.links.append(l);
        }
        self.links.end_row();
        self.dropped_links
            .append_value(s.dropped_links_count as i64);
    }

    fn finish(mut self) -> Result<Vec<ArrayRef>, ArrowError> {
        let mut out: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.parent_span_id.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.start.finish()),
            Arc::new(self.end.finish()),
            Arc::new(self.duration.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.status_message.finish()),
        ];
        self.origin.finish(&mut out)?;
        self.attrs.finish(&mut out)?;
        out.push(Arc::new(self.dropped_attrs.finish()));
        out.push(self.events.finish()?);
        out.push(Arc::new(self.dropped_events.finish()));
        out.push(self.links.finish()?);
        out.push(Arc::new(self.dropped_links.finish()));
        Ok(out)
    }
}

struct Events {
    offsets: Vec<i32>,
    time: TimestampNanosecondBuilder,
    name: StringBuilder,
    attrs: AttrCols,
    dropped: Int64Builder,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            offsets: vec![0],
            time: ts_builder(0),
            name: StringBuilder::new(),
            attrs: AttrCols::default(),
            dropped: Int64Builder::new(),
        }
    }
}

impl Events {
    fn append(&mut self, e: &span::Event) {
        self.time.append_option(ts(e.time_unix_nano));
        self.name.append_value(&e.name);
        self.attrs.append(&e.attributes);
        self.dropped.append_value(e.dropped_attributes_count as i64);
    }

    fn end_row(&mut self) {
        self.offsets.push(self.dropped.len() as i32);
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let mut cols: Vec<ArrayRef> =
            vec![Arc::new(self.time.finish()), Arc::new(self.name.finish())];
        self.attrs.finish(&mut cols)?;
        cols.push(Arc::new(self.dropped.finish()));
        let values = struct_array(event_fields(), cols)?;
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        Ok(Arc::new(ListArray::try_new(
            list_item(values.data_type().clone()),
            OffsetBuffer::new(offsets.into()),
            Arc::new(values),
            None,
        )?))
    }
}

struct Links {
    offsets: Vec<i32>,
    trace_id: FixedSizeBinaryBuilder,
    span_id: FixedSizeBinaryBuilder,
    trace_state: StringBuilder,
    flags: Int64Builder,
    attrs: AttrCols,
    dropped: Int64Builder,
}

impl Default for Links {
    fn default() -> Self {
        Links {
            offsets: vec![0],
            trace_id: FixedSizeBinaryBuilder::new(16),
            span_id: FixedSizeBinaryBuilder::new(8),
            trace_state: StringBuilder::new(),
            flags: Int64Builder::new(),
            attrs: AttrCols::default(),
            dropped: Int64Builder::new(),
        }
    }
}

impl Links {
    fn append(&mut self, l: &span::Link) {
        append_id(&mut self.trace_id, &l.trace_id, 16);
        append_id(&mut self.span_id, &l.span_id, 8);
        self.trace_state.append_option(non_empty(&l.trace_state));
        self.flags.append_value(l.flags as i64);
        self.attrs.append(&l.attributes);
        self.dropped.append_value(l.dropped_attributes_count as i64);
    }

    fn end_row(&mut self) {
        self.offsets.push(self.dropped.len() as i32);
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.flags.finish()),
        ];
        self.attrs.finish(&mut cols)?;
        cols.push(Arc::new(self.dropped.finish()));
        let values = struct_array(link_fields(), cols)?;
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        Ok(Arc::new(ListArray::try_new(
            list_item(values.data_type().clone()),
            OffsetBuffer::new(offsets.into()),
            Arc::new(values),
            None,
        )?))
    }
}
