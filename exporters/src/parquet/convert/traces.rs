//! `ExportTraceServiceRequest` → one row per span.

use super::view::{self, bytes_of, depth, str_of, KvView, ResourceView, ScopeView};
use super::{
    append_id, convert_items, non_empty, struct_array, ts, ts_builder, AttrCols, ConvertError,
    ItemRows, OriginCols,
};
use crate::parquet::schema::{event_fields, link_fields, list_item};
use arrow_array::builder::{
    ArrayBuilder, FixedSizeBinaryBuilder, Int64Builder, StringBuilder, TimestampNanosecondBuilder,
};
use arrow_array::{Array, ArrayRef, ListArray, RecordBatch};
use arrow_buffer::OffsetBuffer;
use arrow_schema::ArrowError;
use sonde_core::names::{span_kind, span_status};
use sonde_core::wire::{Reader, WireError};
use sonde_core::Signal;
use std::sync::Arc;

pub(super) fn convert(payload: &[u8]) -> Result<RecordBatch, ConvertError> {
    let rows = SpanCols::new(view::capacity_hint(payload.len(), 512));
    convert_items(Signal::Traces, payload, rows)
}

/// A span's scalar fields as read (defaults = protobuf's defaults).
#[derive(Default)]
struct SpanFields<'a> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    parent_span_id: &'a [u8],
    trace_state: &'a str,
    flags: u32,
    name: &'a str,
    kind: i32,
    start: u64,
    end: u64,
    dropped_attrs: u32,
    dropped_events: u32,
    dropped_links: u32,
    status_message: &'a str,
    status_code: i32,
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
}

impl ItemRows for SpanCols {
    /// Reads the span in `buf[range]` and appends its row (attributes, events and links are
    /// appended as they are read; the scalar fields once the span is read, the last occurrence
    /// of each winning).
    fn append(
        &mut self,
        buf: &[u8],
        resource: &ResourceView<'_>,
        scope: &ScopeView<'_>,
        (a, b): (usize, usize),
    ) -> Result<(), WireError> {
        let mut s = SpanFields::default();
        let mut r = Reader::new(buf, a, b);
        while let Some(f) = r.next()? {
            match f.number {
                1 => s.trace_id = bytes_of(buf, &f)?,
                2 => s.span_id = bytes_of(buf, &f)?,
                3 => s.trace_state = str_of(buf, &f)?,
                4 => s.parent_span_id = bytes_of(buf, &f)?,
                5 => s.name = str_of(buf, &f)?,
                6 => s.kind = f.varint()? as i32,
                7 => s.start = f.fixed64()?,
                8 => s.end = f.fixed64()?,
                9 => self
                    .attrs
                    .push(buf, &KvView::field(buf, &f, depth::ITEM + 1)?)?,
                10 => s.dropped_attrs = f.varint()? as u32,
                11 => self.events.append(buf, f.len()?)?,
                12 => s.dropped_events = f.varint()? as u32,
                13 => self.links.append(buf, f.len()?)?,
                14 => s.dropped_links = f.varint()? as u32,
                15 => {
                    // Status: 2 = message, 3 = code. Repeated occurrences merge.
                    let (a, b) = f.len()?;
                    let mut st = Reader::new(buf, a, b);
                    while let Some(f) = st.next()? {
                        match f.number {
                            2 => s.status_message = str_of(buf, &f)?,
                            3 => s.status_code = f.varint()? as i32,
                            _ => {}
                        }
                    }
                }
                16 => s.flags = f.fixed32()?,
                _ => {}
            }
        }
        self.attrs.end_row();
        self.events.end_row();
        self.links.end_row();

        append_id(&mut self.trace_id, s.trace_id, 16);
        append_id(&mut self.span_id, s.span_id, 8);
        append_id(&mut self.parent_span_id, s.parent_span_id, 8);
        self.trace_state.append_option(non_empty(s.trace_state));
        self.flags.append_value(i64::from(s.flags));
        self.name.append_value(s.name);
        self.kind.append_value(span_kind(s.kind));
        let (start, end) = (ts(s.start), ts(s.end));
        self.start.append_option(start);
        self.end.append_option(end);
        self.duration
            .append_option(start.zip(end).map(|(a, b)| b.saturating_sub(a)));
        self.status_code.append_value(span_status(s.status_code));
        self.status_message
            .append_option(non_empty(s.status_message));
        self.origin.append_view(resource, scope);
        self.dropped_attrs.append_value(i64::from(s.dropped_attrs));
        self.dropped_events
            .append_value(i64::from(s.dropped_events));
        self.dropped_links.append_value(i64::from(s.dropped_links));
        Ok(())
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
    /// Reads one `Span.Event` (1 = time, 2 = name, 3 = attributes, 4 = dropped count).
    fn append(&mut self, buf: &[u8], (a, b): (usize, usize)) -> Result<(), WireError> {
        let (mut time, mut name, mut dropped) = (0, "", 0u32);
        let mut r = Reader::new(buf, a, b);
        while let Some(f) = r.next()? {
            match f.number {
                1 => time = f.fixed64()?,
                2 => name = str_of(buf, &f)?,
                3 => self
                    .attrs
                    .push(buf, &KvView::field(buf, &f, depth::EVENT + 1)?)?,
                4 => dropped = f.varint()? as u32,
                _ => {}
            }
        }
        self.attrs.end_row();
        self.time.append_option(ts(time));
        self.name.append_value(name);
        self.dropped.append_value(i64::from(dropped));
        Ok(())
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
    /// Reads one `Span.Link` (1 = trace id, 2 = span id, 3 = trace state, 4 = attributes,
    /// 5 = dropped count, 6 = flags).
    fn append(&mut self, buf: &[u8], (a, b): (usize, usize)) -> Result<(), WireError> {
        let (mut trace_id, mut span_id, mut trace_state): (&[u8], &[u8], &str) = (&[], &[], "");
        let (mut flags, mut dropped) = (0u32, 0u32);
        let mut r = Reader::new(buf, a, b);
        while let Some(f) = r.next()? {
            match f.number {
                1 => trace_id = bytes_of(buf, &f)?,
                2 => span_id = bytes_of(buf, &f)?,
                3 => trace_state = str_of(buf, &f)?,
                4 => self
                    .attrs
                    .push(buf, &KvView::field(buf, &f, depth::EVENT + 1)?)?,
                5 => dropped = f.varint()? as u32,
                6 => flags = f.fixed32()?,
                _ => {}
            }
        }
        self.attrs.end_row();
        append_id(&mut self.trace_id, trace_id, 16);
        append_id(&mut self.span_id, span_id, 8);
        self.trace_state.append_option(non_empty(trace_state));
        self.flags.append_value(i64::from(flags));
        self.dropped.append_value(i64::from(dropped));
        Ok(())
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
