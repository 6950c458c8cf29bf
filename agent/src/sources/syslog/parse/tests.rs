use super::*;

/// 2026-12-07T12:00:00Z.
const NOW: i64 = 1_796_644_800;

fn secs(t: &str) -> u64 {
    rfc3339(t).unwrap() / 1_000_000_000
}

fn params(sd: &str) -> Vec<(String, Option<(String, String)>)> {
    let mut out = vec![];
    structured_data(sd, |id, p| {
        out.push((
            id.to_string(),
            p.map(|(n, v)| (n.to_string(), v.into_owned())),
        ))
    });
    out
}

#[test]
fn the_clock_helpers_agree_with_known_dates() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    assert_eq!(civil_from_days(NOW / 86_400), (2026, 12, 7));
    assert_eq!(secs("2026-12-07T12:00:00Z"), NOW as u64);
    assert_eq!(secs("2026-12-07T13:30:00+01:30"), NOW as u64);
    assert_eq!(
        rfc3339("2003-10-11T22:14:15.003Z").unwrap() % 1_000_000_000,
        3_000_000
    );
    assert_eq!(rfc3339("1969-12-31T23:59:59Z"), None);
    assert_eq!(rfc3339("2003-13-11T22:14:15Z"), None);
    assert_eq!(rfc3339("2003-10-11 22:14:15Z"), None);
}

#[test]
fn rfc5424_example_1_without_structured_data() {
    // RFC 5424 §6.5, example 1 (with the BOM before the message).
    let m = parse(
        "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \u{feff}'su root' failed for lonvick on /dev/pts/8",
        NOW,
    );
    assert_eq!(m.format, Format::Rfc5424);
    assert_eq!(
        (m.facility, m.severity, m.version),
        (Some(4), Some(2), Some(1))
    );
    assert_eq!(m.time, rfc3339("2003-10-11T22:14:15.003Z"));
    assert_eq!(m.hostname, Some("mymachine.example.com"));
    assert_eq!(m.appname, Some("su"));
    assert_eq!(m.procid, None);
    assert_eq!(m.msgid, Some("ID47"));
    assert_eq!(m.structured_data, "");
    assert_eq!(m.body, "'su root' failed for lonvick on /dev/pts/8");
}

#[test]
fn rfc5424_example_2_with_a_zone_offset_and_microseconds() {
    let m = parse(
        "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
        NOW,
    );
    assert_eq!((m.facility, m.severity), (Some(20), Some(5)));
    assert_eq!(
        m.time,
        Some(secs("2003-08-24T12:14:15Z") * 1_000_000_000 + 3_000)
    );
    assert_eq!(
        (m.hostname, m.appname, m.procid, m.msgid),
        (Some("192.0.2.1"), Some("myproc"), Some("8710"), None)
    );
    assert_eq!(m.body, "%% It's time to make the do-nuts.");
}

#[test]
fn rfc5424_examples_3_and_4_with_structured_data() {
    let m = parse(
        r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] BOMAn application event log entry..."#,
        NOW,
    );
    assert_eq!(m.format, Format::Rfc5424);
    assert_eq!(m.body, "BOMAn application event log entry...");
    let p = params(m.structured_data);
    assert_eq!(p.len(), 3);
    assert_eq!(
        p[0],
        ("exampleSDID@32473".into(), Some(("iut".into(), "3".into())))
    );
    assert_eq!(p[2].1, Some(("eventID".into(), "1011".into())));

    let m = parse(
        r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]"#,
        NOW,
    );
    assert_eq!(m.body, "");
    let p = params(m.structured_data);
    assert_eq!(p.len(), 4);
    assert_eq!(
        p[3],
        (
            "examplePriority@32473".into(),
            Some(("class".into(), "high".into()))
        )
    );
}

#[test]
fn structured_data_values_are_unescaped_and_empty_elements_reported() {
    let m = parse(r#"<13>1 - - - - - [a x="q\"uo\]te\\d \n"][b] hi"#, NOW);
    assert_eq!(m.format, Format::Rfc5424);
    assert_eq!(m.time, None);
    assert_eq!(
        params(m.structured_data),
        vec![
            ("a".into(), Some(("x".into(), r#"q"uo]te\d \n"#.into()))),
            ("b".into(), None)
        ]
    );
    assert_eq!(m.body, "hi");
}

#[test]
fn malformed_rfc5424_is_unparsed_and_keeps_its_text() {
    for (text, why) in [
        ("<13>1 2003-10-11T22:14:15Z host app", "cut short"),
        ("<13>1 yesterday host app - - - msg", "timestamp"),
        (
            "<13>1 - host app - - [unterminated x=\"1\" msg",
            "structured data",
        ),
        ("<13>1 - host app - - [a x=1] msg", "structured data"),
        ("<13>1 - host app - - nope msg", "structured data"),
        ("<13>1 - host app - - [a]msg", "followed by a space"),
    ] {
        let m = parse(text, NOW);
        match m.format {
            Format::Unparsed(r) => assert!(r.contains(why), "{text}: {r}"),
            f => panic!("{text}: parsed as {f:?}"),
        }
        assert_eq!(m.body, text);
        assert_eq!(m.severity, None);
    }
}

#[test]
fn text_without_a_pri_is_unparsed() {
    for text in ["hello", "<>x", "<192>x", "<1234>x", "<a>x", "<13"] {
        let m = parse(text, NOW);
        assert_eq!(
            m.format,
            Format::Unparsed("no <PRI> at the start"),
            "{text}"
        );
        assert_eq!(m.body, text);
    }
    // Line ends are not part of the message.
    assert_eq!(parse("plain\r\n\0", NOW).body, "plain");
}

#[test]
fn rfc3164_with_host_tag_and_pid() {
    let m = parse(
        "<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed",
        NOW,
    );
    assert_eq!(m.format, Format::Rfc3164);
    assert_eq!((m.facility, m.severity), (Some(4), Some(2)));
    // No year: the latest Oct 11 not after now.
    assert_eq!(m.time, Some(secs("2026-10-11T22:14:15Z") * 1_000_000_000));
    assert_eq!(
        (m.hostname, m.appname, m.procid),
        (Some("mymachine"), Some("su"), Some("123"))
    );
    assert_eq!(m.body, "'su root' failed");
}

#[test]
fn rfc3164_without_a_year_in_the_future_is_last_year() {
    let m = parse("<13>Dec 31 23:00:00 host app: late", NOW);
    assert_eq!(m.time, Some(secs("2025-12-31T23:00:00Z") * 1_000_000_000));
    // Tomorrow is clock skew, not last year.
    let m = parse("<13>Dec  8 01:00:00 host app: soon", NOW);
    assert_eq!(m.time, Some(secs("2026-12-08T01:00:00Z") * 1_000_000_000));
}

#[test]
fn rfc3164_space_padded_day_and_a_local_sender_without_hostname() {
    // `logger --rfc3164 -u socket` leaves the hostname out.
    let m = parse("<13>Dec  7 10:00:00 alice: hello world", NOW);
    assert_eq!(m.time, Some(secs("2026-12-07T10:00:00Z") * 1_000_000_000));
    assert_eq!(
        (m.hostname, m.appname, m.procid),
        (None, Some("alice"), None)
    );
    assert_eq!(m.body, "hello world");
    let m = parse("<13>Dec  7 10:00:00 cron[42]: job", NOW);
    assert_eq!(
        (m.hostname, m.appname, m.procid, m.body),
        (None, Some("cron"), Some("42"), "job")
    );
}

#[test]
fn rfc3164_variants_with_year_fraction_iso_time_or_no_time() {
    let m = parse(
        "<13>Dec  7 2025 10:00:00.250 router1 %LINK-3-UPDOWN: down",
        NOW,
    );
    assert_eq!(
        m.time,
        Some(secs("2025-12-07T10:00:00Z") * 1_000_000_000 + 250_000_000)
    );
    assert_eq!(
        (m.hostname, m.appname, m.body),
        (Some("router1"), Some("%LINK-3-UPDOWN"), "down")
    );
    // rsyslog's forwarding format: an RFC 3339 time in the BSD header.
    let m = parse("<30>2026-12-07T11:00:00.5+01:00 web nginx[7]: GET /", NOW);
    assert_eq!(
        m.time,
        Some(secs("2026-12-07T10:00:00Z") * 1_000_000_000 + 500_000_000)
    );
    assert_eq!(
        (m.hostname, m.appname, m.procid, m.body),
        (Some("web"), Some("nginx"), Some("7"), "GET /")
    );
    // No timestamp at all: no hostname either, a tag is still found.
    let m = parse("<13>app: no time", NOW);
    assert_eq!(m.format, Format::Rfc3164);
    assert_eq!(
        (m.time, m.hostname, m.appname, m.body),
        (None, None, Some("app"), "no time")
    );
}

#[test]
fn rfc3164_text_that_is_no_tag_stays_in_the_body() {
    let m = parse("<13>Dec  7 10:00:00 host just some words", NOW);
    assert_eq!(
        (m.hostname, m.appname, m.body),
        (Some("host"), None, "just some words")
    );
    let m = parse("<13>see http://example.com", NOW);
    assert_eq!((m.appname, m.body), (None, "see http://example.com"));
    let m = parse("<13>Dec  7 10:00:00 host url:http://x", NOW);
    assert_eq!((m.appname, m.body), (None, "url:http://x"));
    let m = parse("<13>Dec  7 10:00:00 host app[unclosed: x", NOW);
    assert_eq!(
        (m.hostname, m.appname, m.body),
        (Some("host"), None, "app[unclosed: x")
    );
    let m = parse("<13>", NOW);
    assert_eq!((m.format, m.body), (Format::Rfc3164, ""));
}

#[test]
fn parsing_never_panics_on_arbitrary_text() {
    let samples = [
        "<1>1 ",
        "<1>1",
        "<1>1 - - - - - [",
        "<1>1 - - - - - [a",
        "<1>1 - - - - - [a b=\"\\",
        "<1>Dec",
        "<1>Dec ",
        "<1>Dec 7",
        "<1>Dec 7 1",
        "<1>Dec 77 10:00:00 h a: b",
        "<1>x[",
        "<1>x[1]",
        "<1>é[é]: é",
        "<1>2026-12-07T",
        "<1>2026-12-07T10:00:00+1",
        "<191>ü",
    ];
    for s in samples {
        let m = parse(s, NOW);
        assert!(s.contains(m.body), "{s}");
        let _ = params(m.structured_data);
    }
}

proptest::proptest! {
    #[test]
    fn parsing_never_panics_and_the_body_is_part_of_the_text(text in "<[0-9]{1,3}>[ -~\u{a0}-\u{3000}]{0,80}") {
        let m = parse(&text, NOW);
        proptest::prop_assert!(text.contains(m.body));
        let _ = params(m.structured_data);
    }
}
