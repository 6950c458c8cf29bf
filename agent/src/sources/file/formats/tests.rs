//! The formats through [`Formats::record`]: what comes out of the encoder, and the positions a
//! file may advance to while partial lines wait.

use super::*;
use crate::sources::kv_str;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, InstrumentationScope, KeyValue};
use prost::Message;
use sonde_config::ByteSize;
use sonde_core::metrics::Registry;

struct Harness {
    f: Formats,
    st: FileState,
    enc: Encoder,
    c: Counters,
    attrs: Vec<u8>,
    /// Offset after the lines fed so far.
    pos: u64,
}

fn base() -> Resource {
    Resource {
        attributes: vec![kv_str("host.name", "node-1")],
        ..Default::default()
    }
}

fn harness(cfg: FileSourceConfig, path: &str) -> Harness {
    let f = Formats::new(&cfg, base()).unwrap();
    let mut st = FileState::default();
    st.set_path(&f, Path::new(path));
    let c = Counters::new(&Registry::default(), "t", f.reason());
    Harness {
        enc: Encoder::new(&base(), &InstrumentationScope::default(), 1024),
        f,
        st,
        c,
        attrs: encode_attribute("log.file.name", "0.log"),
        pos: 0,
    }
}

fn cfg(format: FileFormat) -> FileSourceConfig {
    FileSourceConfig {
        include: vec!["/var/log/pods/*/*/*.log".into()],
        format,
        ..Default::default()
    }
}

impl Harness {
    /// Feeds one line (its newline counted in the positions); returns the position allowed.
    fn line(&mut self, text: &str) -> u64 {
        let start = self.pos;
        self.pos += text.len() as u64 + 1;
        let mut out = Out {
            encoder: &mut self.enc,
            c: &self.c,
            observed: 7,
            attrs: &self.attrs,
            attr_pairs: &[],
        };
        self.f.record(&mut self.st, &mut out, text, start, self.pos)
    }

    fn flush(&mut self) {
        let mut out = Out {
            encoder: &mut self.enc,
            c: &self.c,
            observed: 7,
            attrs: &self.attrs,
            attr_pairs: &[],
        };
        self.f.flush(&mut self.st, &mut out);
    }

    fn request(&mut self) -> ExportLogsServiceRequest {
        match self.enc.finish() {
            Some((b, _)) => ExportLogsServiceRequest::decode(&b[..]).unwrap(),
            None => ExportLogsServiceRequest::default(),
        }
    }

    /// (body, time, log.iostream) of every record.
    fn records(&mut self) -> Vec<(String, u64, String)> {
        let req = self.request();
        req.resource_logs
            .iter()
            .flat_map(|rl| &rl.scope_logs)
            .flat_map(|sl| &sl.log_records)
            .map(|r| {
                (
                    string(r.body.as_ref().and_then(|b| b.value.as_ref())),
                    r.time_unix_nano,
                    attr(&r.attributes, "log.iostream"),
                )
            })
            .collect()
    }
}

fn string(v: Option<&any_value::Value>) -> String {
    match v {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        None => String::new(),
        other => format!("{other:?}"),
    }
}

fn attr(attrs: &[KeyValue], key: &str) -> String {
    attrs
        .iter()
        .find(|a| a.key == key)
        .map(|a| string(a.value.as_ref().and_then(|v| v.value.as_ref())))
        .unwrap_or_default()
}

const T0: &str = "2026-12-07T10:10:10.000000001Z";
const T0_NS: u64 = 1_796_638_210_000_000_001;

#[test]
fn cri_partial_lines_join_and_hold_the_position() {
    let mut h = harness(cfg(FileFormat::Cri), "/var/log/pods/ns_p_u/c/0.log");
    assert_eq!(h.line(&format!("{T0} stdout F whole")), h.pos);
    let before = h.pos;
    // A partial stdout line, a stderr line in between, the rest of stdout.
    assert_eq!(h.line(&format!("{T0} stdout P first ")), before);
    assert_eq!(
        h.line("2026-12-07T10:10:11Z stderr F oops"),
        before,
        "the stdout join still waits"
    );
    assert_eq!(h.line("2026-12-07T10:10:12Z stdout P second "), before);
    assert_eq!(h.line("2026-12-07T10:10:13Z stdout F third"), h.pos);
    assert_eq!(
        h.records(),
        [
            ("whole".into(), T0_NS, "stdout".into()),
            ("oops".into(), T0_NS + 999_999_999, "stderr".into()),
            ("first second third".into(), T0_NS, "stdout".into()),
        ]
    );
    assert_eq!(h.c.records.get(), 3);
    assert_eq!(h.c.parse_errors.get(), 0);
}

#[test]
fn cri_bad_lines_are_kept_as_text_and_counted() {
    let mut h = harness(cfg(FileFormat::Cri), "/var/log/app.log");
    h.line(&format!("{T0} stdout P waiting "));
    assert_eq!(h.line("not a cri line"), h.pos, "the join is emitted first");
    assert_eq!(
        h.records(),
        [
            ("waiting ".into(), T0_NS, "stdout".into()),
            ("not a cri line".into(), 0, "".into()),
        ]
    );
    assert_eq!(h.c.parse_errors.get(), 1);
}

#[test]
fn an_over_long_join_is_split_or_cut_and_counted() {
    let mut c = cfg(FileFormat::Cri);
    c.max_line_length = ByteSize(16);
    let mut h = harness(c.clone(), "/l/0.log");
    h.line(&format!("{T0} stdout P 0123456789"));
    h.line(&format!("{T0} stdout P abcdefghij"));
    h.line(&format!("{T0} stdout F XYZ"));
    let bodies: Vec<String> = h.records().into_iter().map(|r| r.0).collect();
    assert_eq!(bodies, ["0123456789abcdef", "ghijXYZ"]);
    assert_eq!(h.c.long_split.get(), 1);

    c.on_long_line = LongLine::Truncate;
    let mut h = harness(c, "/l/0.log");
    h.line(&format!("{T0} stdout P 0123456789"));
    h.line(&format!("{T0} stdout P abcdefghij"));
    assert_eq!(h.line(&format!("{T0} stdout F XYZ")), h.pos);
    h.line(&format!("{T0} stdout F next"));
    let bodies: Vec<String> = h.records().into_iter().map(|r| r.0).collect();
    assert_eq!(bodies, ["0123456789abcdef", "next"]);
    assert_eq!(h.c.long_truncated.get(), 1);
}

#[test]
fn a_join_never_cuts_a_character() {
    let mut c = cfg(FileFormat::Cri);
    c.max_line_length = ByteSize(16);
    let mut h = harness(c, "/l/0.log");
    h.line(&format!("{T0} stdout P 0123456789abcde"));
    h.line(&format!("{T0} stdout F éé"));
    let bodies: Vec<String> = h.records().into_iter().map(|r| r.0).collect();
    assert_eq!(bodies, ["0123456789abcde", "éé"]);
}

#[test]
fn a_finished_file_emits_what_waits() {
    let mut h = harness(cfg(FileFormat::Cri), "/l/0.log");
    h.line(&format!("{T0} stderr P cut short"));
    assert_eq!(h.st.pending_from(), Some(0));
    h.flush();
    assert_eq!(h.st.pending_from(), None);
    assert_eq!(h.records(), [("cut short".into(), T0_NS, "stderr".into())]);
}

#[test]
fn docker_partial_lines_join_without_the_newline() {
    let mut h = harness(cfg(FileFormat::Docker), "/var/log/pods/ns_p_u/c/0.log");
    let t = "2026-12-07T10:10:10.000000001Z";
    assert_eq!(
        h.line(&format!(
            r#"{{"log":"part one, ","stream":"stdout","time":"{t}"}}"#
        )),
        0
    );
    h.line(&format!(
        r#"{{"log":"err\n","stream":"stderr","time":"{t}"}}"#
    ));
    assert_eq!(
        h.line(&format!(
            r#"{{"log":"part \"two\"\n","stream":"stdout","time":"{t}"}}"#
        )),
        h.pos
    );
    h.line(&format!(r#"{{"log":"\n","stream":"stdout","time":"{t}"}}"#));
    h.line("{broken");
    assert_eq!(
        h.records(),
        [
            ("err".into(), T0_NS, "stderr".into()),
            ("part one, part \"two\"".into(), T0_NS, "stdout".into()),
            ("{broken".into(), 0, "".into()),
        ]
    );
    assert_eq!(h.c.parse_errors.get(), 1);
}

#[test]
fn pods_get_their_own_resources() {
    let c = cfg(FileFormat::Cri);
    let f = Formats::new(&c, base()).unwrap();
    let counters = Counters::new(&Registry::default(), "t", "cri");
    let mut enc = Encoder::new(&base(), &InstrumentationScope::default(), 1024);
    let paths = [
        "/var/log/pods/default_web-1_u1/app/0.log",
        "/var/log/pods/default_web-2_u2/app/1.log",
        "/var/log/pods/default_web-1_u1/app/0.log.20261207-101010",
        "/var/log/not-a-pod.log",
    ];
    for (i, p) in paths.iter().enumerate() {
        let mut st = FileState::default();
        st.set_path(&f, Path::new(p));
        let mut out = Out {
            encoder: &mut enc,
            c: &counters,
            observed: 1,
            attrs: &[],
            attr_pairs: &[],
        };
        f.record(&mut st, &mut out, &format!("{T0} stdout F line {i}"), 0, 1);
    }
    let (bytes, items) = enc.finish().unwrap();
    assert_eq!(items, 4);
    assert_eq!(
        sonde_core::wire::validate(sonde_core::Signal::Logs, &bytes).unwrap(),
        4
    );
    let req = ExportLogsServiceRequest::decode(&bytes[..]).unwrap();
    let groups: Vec<(String, String, Vec<String>)> = req
        .resource_logs
        .iter()
        .map(|rl| {
            let attrs = &rl.resource.as_ref().unwrap().attributes;
            let bodies = rl.scope_logs[0]
                .log_records
                .iter()
                .map(|r| string(r.body.as_ref().and_then(|b| b.value.as_ref())))
                .collect();
            (
                attr(attrs, "k8s.pod.name"),
                attr(attrs, "k8s.container.restart_count"),
                bodies,
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("".into(), "".into(), vec!["line 3".to_string()]),
            (
                "web-1".into(),
                "0".into(),
                vec!["line 0".into(), "line 2".into()]
            ),
            ("web-2".into(), "1".into(), vec!["line 1".into()]),
        ]
    );
    // Every resource keeps the source's own attributes first.
    for rl in &req.resource_logs {
        assert_eq!(
            rl.resource.as_ref().unwrap().attributes[0],
            kv_str("host.name", "node-1")
        );
    }
    // Turned off, no pod resource.
    let mut c = cfg(FileFormat::Cri);
    c.k8s_metadata = Some(false);
    let f = Formats::new(&c, base()).unwrap();
    let mut st = FileState::default();
    st.set_path(&f, Path::new(paths[0]));
    assert!(st.resource.is_none());
}

#[test]
fn logfmt_and_regex_records_keep_the_file_attributes_and_count_failures() {
    let mut h = harness(cfg(FileFormat::Logfmt), "/l/app.log");
    h.line(r#"level=info msg="hi there" user=7"#);
    h.line("no pairs at all");
    let req = h.request();
    let r = &req.resource_logs[0].scope_logs[0].log_records;
    assert_eq!(
        string(r[0].body.as_ref().unwrap().value.as_ref()),
        "hi there"
    );
    assert_eq!(attr(&r[0].attributes, "user"), "7");
    assert_eq!(r[0].observed_time_unix_nano, 7);
    assert_eq!(
        string(r[1].body.as_ref().unwrap().value.as_ref()),
        "no pairs at all"
    );
    assert_eq!(h.c.parse_errors.get(), 1);

    let mut c = cfg(FileFormat::Regex);
    c.regex.pattern = r"^(?P<severity>\w+): (?P<message>.*)$".into();
    let mut h = harness(c, "/l/app.log");
    h.line("WARN: careful");
    h.line("unmatched");
    let recs = h.records();
    assert_eq!(recs[0].0, "careful");
    assert_eq!(recs[1].0, "unmatched");
    assert_eq!(h.c.parse_errors.get(), 1);
}

proptest::proptest! {
    /// Whatever the lines, nothing panics, the position never passes the line fed, never goes
    /// back, and every piece's text comes out once the file is finished (spaces aside: a line
    /// that is only spaces is still a record, an empty one is not).
    #[test]
    fn any_cri_lines_keep_positions_sound(
        lines in proptest::collection::vec(
            (proptest::bool::ANY, proptest::bool::ANY, "[a-zé ]{0,12}", proptest::bool::ANY),
            0..20,
        )
    ) {
        let mut c = cfg(FileFormat::Cri);
        c.max_line_length = ByteSize(16);
        let mut h = harness(c, "/l/0.log");
        let mut last = 0;
        let mut text = String::new();
        for (stderr, partial, t, garbage) in &lines {
            let line = if *garbage {
                t.clone()
            } else {
                let stream = if *stderr { "stderr" } else { "stdout" };
                let tag = if *partial { "P" } else { "F" };
                format!("{T0} {stream} {tag} {t}")
            };
            if !*garbage || !t.is_empty() {
                text.push_str(t);
            }
            let at = h.line(&line);
            proptest::prop_assert!(at <= h.pos && at >= last, "{at} after {last}, fed {}", h.pos);
            last = at;
        }
        h.flush();
        proptest::prop_assert_eq!(h.st.pending_from(), None);
        let out: String = h.records().into_iter().map(|r| r.0).collect::<Vec<_>>().concat();
        // Streams are joined apart, so records of one may come before an earlier piece of the
        // other: the characters are compared, not their order.
        let strip = |s: &str| {
            let mut v: Vec<char> = s.chars().filter(|c| *c != ' ').collect();
            v.sort_unstable();
            v
        };
        proptest::prop_assert_eq!(strip(&out), strip(&text));
    }
}
