//! Cutting a trace request by trace ID: every span goes to the group its trace ID is routed to,
//! so every span of a trace lands together (the OTLP exporter's `balance = "trace_id"`).
//!
//! It works on the wire bytes: a resource-level message whose spans all go to one group is
//! copied as it is; otherwise it is rebuilt per group from its own fields (resource, schema URL,
//! …) and the scope-level messages holding that group's spans, each span copied verbatim. A
//! request whose spans all go to one group is returned without a copy. Nothing is decoded into
//! structs.

use super::write::{len_field_size, put_len_header};
use super::{Reader, WireError, LEN};
use bytes::{Bytes, BytesMut};

/// One group's share of a split request.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub group: usize,
    pub payload: Bytes,
    pub items: u64,
}

/// A scope-level message: its own fields (everything but spans) and its spans with their
/// groups.
struct Scope {
    own: Vec<(usize, usize)>,
    spans: Vec<((usize, usize), usize)>,
}

/// A resource-level message: its whole range, its own fields (everything but scope-level
/// messages, or the whole field when it is not a resource-level message), and its scopes.
struct ResourceEntry {
    whole: (usize, usize),
    own: Vec<(usize, usize)>,
    scopes: Vec<Scope>,
}

/// The trace ID of the span in `buf[start..end]` (empty when absent).
fn trace_id(buf: &[u8], start: usize, end: usize) -> Result<&[u8], WireError> {
    let mut r = Reader::new(buf, start, end);
    while let Some(f) = r.next()? {
        if f.number == 1 && f.wire_type == LEN {
            return Ok(&buf[f.payload.0..f.payload.1]);
        }
    }
    Ok(&[])
}

/// Where the spans seen so far are routed: to one group, or to several.
#[derive(Default)]
struct Spread {
    single: Option<usize>,
    mixed: bool,
}

impl Spread {
    #[inline]
    fn note(&mut self, group: usize) {
        match self.single {
            None => self.single = Some(group),
            Some(e) if e != group => self.mixed = true,
            _ => {}
        }
    }
}

/// One group's share being built: its bytes and its span count.
type Share = Option<(BytesMut, u64)>;

/// Cuts a (valid) `ExportTraceServiceRequest` into one request per group; `route` maps a
/// trace ID to an group index below `groups`. Parts come out in group order.
pub fn split_by_trace(
    payload: &Bytes,
    groups: usize,
    mut route: impl FnMut(&[u8]) -> usize,
) -> Result<Vec<Part>, WireError> {
    let buf = &payload[..];
    let mut spread = Spread::default();
    let resources = index_request(buf, groups, &mut route, &mut spread)?;
    if !spread.mixed {
        // The whole request to one group needs no copy.
        return Ok(vec![Part {
            group: spread.single.unwrap_or(0),
            payload: payload.clone(),
            items: resources
                .iter()
                .flat_map(|r| r.scopes.iter())
                .map(|s| s.spans.len() as u64)
                .sum(),
        }]);
    }
    let first = spread.single.unwrap_or(0);
    let mut out: Vec<Share> = vec![None; groups];
    for resource in &resources {
        append_resource(&mut out, buf, resource, first);
    }
    Ok(into_parts(out))
}

/// Walks the request once and remembers where everything is: each resource-level message
/// with its own fields and scopes, each scope with its own fields and spans, each span with
/// the group its trace ID is routed to.
fn index_request(
    buf: &[u8],
    groups: usize,
    route: &mut impl FnMut(&[u8]) -> usize,
    spread: &mut Spread,
) -> Result<Vec<ResourceEntry>, WireError> {
    let mut top = Reader::new(buf, 0, buf.len());
    let mut resources: Vec<ResourceEntry> = Vec::new();
    while let Some(rf) = top.next()? {
        let whole = (rf.start, top.pos);
        if rf.number != 1 || rf.wire_type != LEN {
            // Not a resource-level message (an unknown top-level field): goes with the first
            // part, verbatim.
            resources.push(ResourceEntry {
                whole,
                own: vec![whole],
                scopes: vec![],
            });
            continue;
        }
        resources.push(index_resource(
            buf, whole, rf.payload, groups, route, spread,
        )?);
    }
    Ok(resources)
}

/// One resource-level message (`whole`, its payload at `payload`): its own fields and its
/// scopes.
fn index_resource(
    buf: &[u8],
    whole: (usize, usize),
    payload: (usize, usize),
    groups: usize,
    route: &mut impl FnMut(&[u8]) -> usize,
    spread: &mut Spread,
) -> Result<ResourceEntry, WireError> {
    let mut own = Vec::new();
    let mut scopes = Vec::new();
    let mut r = Reader::new(buf, payload.0, payload.1);
    while let Some(sf) = r.next()? {
        if sf.number != 2 || sf.wire_type != LEN {
            own.push((sf.start, r.pos));
            continue;
        }
        scopes.push(index_scope(buf, sf.payload, groups, route, spread)?);
    }
    Ok(ResourceEntry { whole, own, scopes })
}

/// One scope-level message (its payload at `payload`): its own fields and its spans, each
/// routed by its trace ID.
fn index_scope(
    buf: &[u8],
    payload: (usize, usize),
    groups: usize,
    route: &mut impl FnMut(&[u8]) -> usize,
    spread: &mut Spread,
) -> Result<Scope, WireError> {
    let mut scope = Scope {
        own: Vec::new(),
        spans: Vec::new(),
    };
    let mut s = Reader::new(buf, payload.0, payload.1);
    while let Some(pf) = s.next()? {
        if pf.number == 2 && pf.wire_type == LEN {
            let ep = route(trace_id(buf, pf.payload.0, pf.payload.1)?).min(groups - 1);
            spread.note(ep);
            scope.spans.push(((pf.start, s.pos), ep));
        } else {
            scope.own.push((pf.start, s.pos));
        }
    }
    Ok(scope)
}

/// Appends one resource-level message to the shares of the groups its spans go to: copied
/// as it is when they all go to one group (to `first` when it has no span), rebuilt for each
/// group otherwise.
fn append_resource(out: &mut [Share], buf: &[u8], resource: &ResourceEntry, first: usize) {
    let ResourceEntry { whole, own, scopes } = resource;
    let mut eps: Vec<usize> = scopes
        .iter()
        .flat_map(|s| s.spans.iter().map(|(_, e)| *e))
        .collect();
    eps.sort_unstable();
    eps.dedup();
    if eps.len() <= 1 {
        let ep = eps.first().copied().unwrap_or(first);
        let items = scopes.iter().map(|s| s.spans.len() as u64).sum::<u64>();
        let (b, n) = out[ep].get_or_insert_with(|| (BytesMut::new(), 0));
        b.extend_from_slice(&buf[whole.0..whole.1]);
        *n += items;
        return;
    }
    for ep in eps {
        let (b, n) = out[ep].get_or_insert_with(|| (BytesMut::new(), 0));
        *n += write_resource_share(b, buf, own, scopes, ep);
    }
}

/// Writes the resource-level message rebuilt for group `ep`: its own fields, then each scope
/// holding spans of that group with its own fields and those spans. Returns the spans written.
fn write_resource_share(
    b: &mut BytesMut,
    buf: &[u8],
    own: &[(usize, usize)],
    scopes: &[Scope],
    ep: usize,
) -> u64 {
    // Sizes first (for the length prefixes), then the bytes.
    let own_len: usize = own.iter().map(|(a, b)| b - a).sum();
    let scope_lens: Vec<Option<usize>> = scopes
        .iter()
        .map(|s| {
            let spans: usize = s
                .spans
                .iter()
                .filter(|(_, e)| *e == ep)
                .map(|((a, b), _)| b - a)
                .sum();
            (spans > 0).then(|| spans + s.own.iter().map(|(a, b)| b - a).sum::<usize>())
        })
        .collect();
    let resource_len = own_len
        + scope_lens
            .iter()
            .flatten()
            .map(|l| len_field_size(2, *l))
            .sum::<usize>();
    b.reserve(len_field_size(1, resource_len));
    put_len_header(b, 1, resource_len);
    for (a, z) in own {
        b.extend_from_slice(&buf[*a..*z]);
    }
    let mut n = 0;
    for (s, len) in scopes.iter().zip(&scope_lens) {
        let Some(len) = len else { continue };
        put_len_header(b, 2, *len);
        for (a, z) in &s.own {
            b.extend_from_slice(&buf[*a..*z]);
        }
        for ((a, z), e) in &s.spans {
            if *e == ep {
                b.extend_from_slice(&buf[*a..*z]);
                n += 1;
            }
        }
    }
    n
}

/// The shares built, as parts in group order.
fn into_parts(out: Vec<Share>) -> Vec<Part> {
    out.into_iter()
        .enumerate()
        .filter_map(|(group, p)| {
            p.map(|(b, items)| Part {
                group,
                payload: b.freeze(),
                items,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{wire, Signal};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use proptest::prelude::*;
    use prost::Message;
    use std::collections::BTreeMap;

    fn request(layout: &[Vec<Vec<u8>>]) -> ExportTraceServiceRequest {
        // layout[resource][span] = trace id byte; two scopes per resource, spans alternating.
        ExportTraceServiceRequest {
            resource_spans: layout
                .iter()
                .enumerate()
                .map(|(r, spans)| ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![],
                        dropped_attributes_count: r as u32,
                        ..Default::default()
                    }),
                    scope_spans: (0..2)
                        .map(|sc| ScopeSpans {
                            scope: Some(InstrumentationScope {
                                name: format!("scope-{sc}"),
                                ..Default::default()
                            }),
                            spans: spans
                                .iter()
                                .enumerate()
                                .filter(|(i, _)| i % 2 == sc)
                                .map(|(i, t)| Span {
                                    trace_id: vec![t[0]; 16],
                                    span_id: vec![i as u8 + 1; 8],
                                    name: format!("r{r}-s{i}"),
                                    ..Default::default()
                                })
                                .collect(),
                            schema_url: format!("https://schema/{sc}"),
                        })
                        .collect(),
                    schema_url: "https://schema/r".into(),
                })
                .collect(),
        }
    }

    /// (resource index, scope name, span name) → trace id, for comparing contents.
    fn flatten(req: &ExportTraceServiceRequest) -> BTreeMap<String, Vec<u8>> {
        let mut m = BTreeMap::new();
        for rs in &req.resource_spans {
            let r = rs.resource.as_ref().unwrap().dropped_attributes_count;
            assert_eq!(rs.schema_url, "https://schema/r");
            for ss in &rs.scope_spans {
                let scope = &ss.scope.as_ref().unwrap().name;
                assert_eq!(ss.schema_url, format!("https://schema/{}", &scope[6..]));
                for s in &ss.spans {
                    m.insert(format!("{r}/{scope}/{}", s.name), s.trace_id.clone());
                }
            }
        }
        m
    }

    #[test]
    fn one_group_for_everything_is_not_copied() {
        let req = request(&[vec![vec![1], vec![1]], vec![vec![1]]]);
        let bytes = Bytes::from(req.encode_to_vec());
        let parts = split_by_trace(&bytes, 3, |_| 2).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].group, 2);
        assert_eq!(parts[0].items, 3);
        assert_eq!(parts[0].payload.as_ptr(), bytes.as_ptr());
    }

    #[test]
    fn mixed_resources_are_rebuilt_per_group_keeping_resource_and_scope_fields() {
        let req = request(&[
            vec![vec![1], vec![2], vec![1], vec![3]],
            vec![vec![2], vec![2]],
        ]);
        let bytes = Bytes::from(req.encode_to_vec());
        let parts = split_by_trace(&bytes, 4, |t| t[0] as usize).unwrap();
        let mut seen = BTreeMap::new();
        for p in &parts {
            assert_eq!(wire::validate(Signal::Traces, &p.payload).unwrap(), p.items);
            let got = ExportTraceServiceRequest::decode(&p.payload[..]).unwrap();
            for (k, t) in flatten(&got) {
                assert_eq!(t[0] as usize, p.group, "span {k} went to the wrong group");
                assert!(seen.insert(k, t).is_none());
            }
        }
        assert_eq!(seen, flatten(&req));
        assert_eq!(parts.iter().map(|p| p.group).collect::<Vec<_>>(), [1, 2, 3]);
    }

    proptest! {
        #[test]
        fn split_keeps_every_span_once_and_traces_whole(
            layout in prop::collection::vec(prop::collection::vec(prop::collection::vec(0u8..6, 1), 0..8), 1..5),
            n in 1usize..5,
        ) {
            let req = request(&layout);
            let bytes = Bytes::from(req.encode_to_vec());
            let parts = split_by_trace(&bytes, n, |t| t.first().map_or(0, |b| *b as usize % n)).unwrap();
            let mut seen = BTreeMap::new();
            let mut trace_home: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
            for p in &parts {
                prop_assert_eq!(wire::validate(Signal::Traces, &p.payload).unwrap(), p.items);
                let got = ExportTraceServiceRequest::decode(&p.payload[..]).unwrap();
                for (k, t) in flatten(&got) {
                    prop_assert_eq!(*trace_home.entry(t.clone()).or_insert(p.group), p.group);
                    prop_assert!(seen.insert(k, t).is_none());
                }
            }
            prop_assert_eq!(seen, flatten(&req));
        }
    }
}
