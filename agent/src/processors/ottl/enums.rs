//! Enum constants (`SPAN_KIND_SERVER`, `SEVERITY_NUMBER_WARN`, …) and the contexts that
//! know them, with the OTLP protobuf numbers they stand for.
//!
//! Owns the tables only; lookups happen at parse time and must never happen per item.

use super::path::Context;

const SPAN_KIND: &[(&str, i64)] = &[
    ("SPAN_KIND_UNSPECIFIED", 0),
    ("SPAN_KIND_INTERNAL", 1),
    ("SPAN_KIND_SERVER", 2),
    ("SPAN_KIND_CLIENT", 3),
    ("SPAN_KIND_PRODUCER", 4),
    ("SPAN_KIND_CONSUMER", 5),
];

const STATUS_CODE: &[(&str, i64)] = &[
    ("STATUS_CODE_UNSET", 0),
    ("STATUS_CODE_OK", 1),
    ("STATUS_CODE_ERROR", 2),
];

const SEVERITY_NUMBER: &[(&str, i64)] = &[
    ("SEVERITY_NUMBER_UNSPECIFIED", 0),
    ("SEVERITY_NUMBER_TRACE", 1),
    ("SEVERITY_NUMBER_TRACE2", 2),
    ("SEVERITY_NUMBER_TRACE3", 3),
    ("SEVERITY_NUMBER_TRACE4", 4),
    ("SEVERITY_NUMBER_DEBUG", 5),
    ("SEVERITY_NUMBER_DEBUG2", 6),
    ("SEVERITY_NUMBER_DEBUG3", 7),
    ("SEVERITY_NUMBER_DEBUG4", 8),
    ("SEVERITY_NUMBER_INFO", 9),
    ("SEVERITY_NUMBER_INFO2", 10),
    ("SEVERITY_NUMBER_INFO3", 11),
    ("SEVERITY_NUMBER_INFO4", 12),
    ("SEVERITY_NUMBER_WARN", 13),
    ("SEVERITY_NUMBER_WARN2", 14),
    ("SEVERITY_NUMBER_WARN3", 15),
    ("SEVERITY_NUMBER_WARN4", 16),
    ("SEVERITY_NUMBER_ERROR", 17),
    ("SEVERITY_NUMBER_ERROR2", 18),
    ("SEVERITY_NUMBER_ERROR3", 19),
    ("SEVERITY_NUMBER_ERROR4", 20),
    ("SEVERITY_NUMBER_FATAL", 21),
    ("SEVERITY_NUMBER_FATAL2", 22),
    ("SEVERITY_NUMBER_FATAL3", 23),
    ("SEVERITY_NUMBER_FATAL4", 24),
];

const METRIC: &[(&str, i64)] = &[
    ("METRIC_DATA_TYPE_NONE", 0),
    ("METRIC_DATA_TYPE_GAUGE", 1),
    ("METRIC_DATA_TYPE_SUM", 2),
    ("METRIC_DATA_TYPE_HISTOGRAM", 3),
    ("METRIC_DATA_TYPE_EXPONENTIAL_HISTOGRAM", 4),
    ("METRIC_DATA_TYPE_SUMMARY", 5),
    ("AGGREGATION_TEMPORALITY_UNSPECIFIED", 0),
    ("AGGREGATION_TEMPORALITY_DELTA", 1),
    ("AGGREGATION_TEMPORALITY_CUMULATIVE", 2),
];

const DATA_POINT_FLAGS: &[(&str, i64)] = &[("FLAG_NONE", 0), ("FLAG_NO_RECORDED_VALUE", 1)];

fn tables(context: Context) -> &'static [&'static [(&'static str, i64)]] {
    match context {
        Context::Span | Context::SpanEvent => &[SPAN_KIND, STATUS_CODE],
        Context::Log => &[SEVERITY_NUMBER],
        Context::Metric => &[METRIC],
        Context::DataPoint => &[METRIC, DATA_POINT_FLAGS],
    }
}

/// The value of an enum constant in a context, if the context knows it.
pub(super) fn lookup(context: Context, name: &str) -> Option<i64> {
    tables(context)
        .iter()
        .flat_map(|t| t.iter())
        .find(|(n, _)| *n == name)
        .map(|&(_, v)| v)
}

/// Every enum constant known in a context.
pub fn names(context: Context) -> Vec<&'static str> {
    tables(context)
        .iter()
        .flat_map(|t| t.iter())
        .map(|&(n, _)| n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_resolve_to_protobuf_numbers_in_their_contexts() {
        assert_eq!(lookup(Context::Span, "SPAN_KIND_SERVER"), Some(2));
        assert_eq!(lookup(Context::SpanEvent, "STATUS_CODE_ERROR"), Some(2));
        assert_eq!(lookup(Context::Log, "SEVERITY_NUMBER_INFO2"), Some(10));
        assert_eq!(lookup(Context::Log, "SEVERITY_NUMBER_FATAL4"), Some(24));
        assert_eq!(lookup(Context::Metric, "METRIC_DATA_TYPE_SUMMARY"), Some(5));
        assert_eq!(
            lookup(Context::DataPoint, "AGGREGATION_TEMPORALITY_CUMULATIVE"),
            Some(2)
        );
        assert_eq!(
            lookup(Context::DataPoint, "FLAG_NO_RECORDED_VALUE"),
            Some(1)
        );
    }

    #[test]
    fn enums_of_other_contexts_are_unknown() {
        assert_eq!(lookup(Context::Log, "SPAN_KIND_SERVER"), None);
        assert_eq!(lookup(Context::Span, "SEVERITY_NUMBER_WARN"), None);
        assert_eq!(lookup(Context::Span, "span_kind_server"), None);
        assert_eq!(names(Context::Log).len(), 25);
    }
}
