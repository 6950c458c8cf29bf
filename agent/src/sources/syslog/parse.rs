//! Parsing one syslog message — RFC 5424, or RFC 3164 ("BSD") with the deviations real senders
//! make — into borrowed fields. Nothing here allocates for a valid UTF-8 message except the
//! unescaping of a structured-data value that holds an escape.
//!
//! The choice between the formats is made right after `<PRI>`: a version number followed by a
//! space (`<34>1 …`) means RFC 5424, which must then be well formed; anything else is read as
//! RFC 3164, which is read leniently: the timestamp may lack its year (the year that puts it
//! nearest before now is taken), may be RFC 3339 instead (rsyslog's forwarding format) or may be
//! missing, the hostname may be missing (a local `logger`), and the tag may carry a `[pid]`. A
//! message without a valid `<PRI>` or a malformed RFC 5424 message is [`Format::Unparsed`]: the
//! caller keeps its whole text as the body and says why.
//!
//! Timestamps without a zone (BSD) are read as UTC.

use std::borrow::Cow;

/// Which grammar the message was read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Rfc5424,
    Rfc3164,
    /// Neither; the reason.
    Unparsed(&'static str),
}

/// One message's fields, borrowed from its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub format: Format,
    /// Facility (0–23) and severity (0–7) from `<PRI>`.
    pub facility: Option<u8>,
    pub severity: Option<u8>,
    /// RFC 5424 `VERSION`.
    pub version: Option<u16>,
    /// Unix nanoseconds.
    pub time: Option<u64>,
    pub hostname: Option<&'a str>,
    pub appname: Option<&'a str>,
    pub procid: Option<&'a str>,
    pub msgid: Option<&'a str>,
    /// RFC 5424 structured data as written (checked), empty when nil; walk it with
    /// [`structured_data`].
    pub structured_data: &'a str,
    pub body: &'a str,
}

impl<'a> Message<'a> {
    fn unparsed(text: &'a str, why: &'static str) -> Self {
        Message {
            format: Format::Unparsed(why),
            facility: None,
            severity: None,
            version: None,
            time: None,
            hostname: None,
            appname: None,
            procid: None,
            msgid: None,
            structured_data: "",
            body: text,
        }
    }
}

/// The trailing line ends and NULs some senders leave on a message.
pub fn trim_end(text: &str) -> &str {
    text.trim_end_matches(['\n', '\r', '\0'])
}

/// Parses `text` (one message, framing removed). `now` (Unix seconds) picks the year of a BSD
/// timestamp that has none.
pub fn parse(text: &str, now: i64) -> Message<'_> {
    let text = trim_end(text);
    let Some((pri, rest)) = pri(text) else {
        return Message::unparsed(text, "no <PRI> at the start");
    };
    let (facility, severity) = (Some(pri >> 3), Some(pri & 7));
    let m = match version(rest) {
        Some((v, rest)) => rfc5424(rest).map(|m| Message {
            version: Some(v),
            ..m
        }),
        None => Ok(rfc3164(rest, now)),
    };
    match m {
        Ok(m) => Message {
            facility,
            severity,
            ..m
        },
        Err(why) => Message::unparsed(text, why),
    }
}

/// `<PRI>`: one to three digits, at most 191.
fn pri(s: &str) -> Option<(u8, &str)> {
    let rest = s.strip_prefix('<')?;
    let end = rest.find('>')?;
    let digits = rest.get(..end)?;
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: u16 = digits.parse().ok()?;
    let v = u8::try_from(v).ok().filter(|v| *v <= 191)?;
    Some((v, rest.get(end + 1..)?))
}

/// RFC 5424 `VERSION SP`: a non-zero digit and at most two more.
fn version(s: &str) -> Option<(u16, &str)> {
    let end = s.find(' ')?;
    let digits = &s[..end];
    let first = digits.bytes().next()?;
    if digits.len() > 3 || first == b'0' || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, &s[end + 1..]))
}

/// Splits off the next space-separated field; `-` is nil.
fn field<'a>(s: &'a str, what: &'static str) -> Result<(Option<&'a str>, &'a str), &'static str> {
    let (f, rest) = s.split_once(' ').ok_or(what)?;
    if f.is_empty() {
        return Err(what);
    }
    Ok(((f != "-").then_some(f), rest))
}

/// `TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP STRUCTURED-DATA [SP MSG]`.
fn rfc5424(s: &str) -> Result<Message<'_>, &'static str> {
    let (ts, s) = field(s, "RFC 5424 header cut short after the version")?;
    let time = match ts {
        None => None,
        Some(t) => Some(rfc3339(t).ok_or("invalid RFC 5424 timestamp")?),
    };
    let (hostname, s) = field(s, "RFC 5424 header cut short after the timestamp")?;
    let (appname, s) = field(s, "RFC 5424 header cut short after the hostname")?;
    let (procid, s) = field(s, "RFC 5424 header cut short after the app name")?;
    let (msgid, s) = field(s, "RFC 5424 header cut short after the process id")?;
    let (sd, rest) = if let Some(r) = s.strip_prefix('-') {
        ("", r)
    } else if s.starts_with('[') {
        let n = walk_structured_data(s, &mut |_, _| {})?;
        s.split_at(n)
    } else {
        return Err("RFC 5424 structured data must be `-` or start with `[`");
    };
    let body = match rest.strip_prefix(' ') {
        Some(m) => m.strip_prefix('\u{feff}').unwrap_or(m),
        None if rest.is_empty() => "",
        None => return Err("RFC 5424 structured data must be followed by a space"),
    };
    Ok(Message {
        format: Format::Rfc5424,
        facility: None,
        severity: None,
        version: None,
        time,
        hostname,
        appname,
        procid,
        msgid,
        structured_data: sd,
        body,
    })
}

/// One structured-data parameter (or, with `None`, an element without parameters).
pub type SdParam<'a> = Option<(&'a str, Cow<'a, str>)>;

/// Calls `f(id, param)` for every parameter of checked structured data, in order; an element
/// with no parameter is reported once with `None`.
pub fn structured_data<'a>(sd: &'a str, mut f: impl FnMut(&'a str, SdParam<'a>)) {
    // Checked when the message was parsed; a failure here cannot happen and reports nothing.
    let _ = walk_structured_data(sd, &mut f);
}

/// Walks `[id name="value" …][…]` at the start of `s`; returns the bytes it takes.
fn walk_structured_data<'a>(
    s: &'a str,
    f: &mut dyn FnMut(&'a str, SdParam<'a>),
) -> Result<usize, &'static str> {
    const BAD: &str = "malformed RFC 5424 structured data";
    let b = s.as_bytes();
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        i += 1;
        let id_end = i + s[i..].find([' ', ']']).ok_or(BAD)?;
        let id = &s[i..id_end];
        if id.is_empty() || id.contains(['=', '"']) {
            return Err(BAD);
        }
        i = id_end;
        let mut params = 0;
        while b.get(i) == Some(&b' ') {
            i += 1;
            let eq = i + s[i..].find('=').ok_or(BAD)?;
            let name = &s[i..eq];
            if name.is_empty() || name.contains([' ', ']', '"']) || b.get(eq + 1) != Some(&b'"') {
                return Err(BAD);
            }
            let start = eq + 2;
            let (value, end) = quoted(s, start).ok_or(BAD)?;
            f(id, Some((name, value)));
            params += 1;
            i = end + 1;
        }
        if b.get(i) != Some(&b']') {
            return Err(BAD);
        }
        if params == 0 {
            f(id, None);
        }
        i += 1;
    }
    Ok(i)
}

/// The value of a quoted parameter starting at `start` (after the opening quote), with `\"`,
/// `\\` and `\]` unescaped, and the index of the closing quote.
fn quoted(s: &str, start: usize) -> Option<(Cow<'_, str>, usize)> {
    let b = s.as_bytes();
    let mut i = start;
    let mut escaped = false;
    while let Some(&c) = b.get(i) {
        match c {
            b'\\' => {
                escaped = true;
                i += 2;
                continue;
            }
            b'"' => break,
            _ => i += 1,
        }
    }
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let raw = s.get(start..i)?;
    if !escaped {
        return Some((Cow::Borrowed(raw), i));
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('"' | '\\' | ']')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    Some((Cow::Owned(out), i))
}

/// RFC 3164 read leniently: `[TIMESTAMP SP [HOSTNAME SP]] [TAG[\[PID\]]: ]MSG`.
fn rfc3164(s: &str, now: i64) -> Message<'_> {
    let mut m = Message {
        format: Format::Rfc3164,
        ..Message::unparsed(s, "")
    };
    let mut rest = s;
    if let Some((time, after)) = bsd_timestamp(s, now).or_else(|| iso_timestamp(s)) {
        m.time = time;
        rest = after;
        // The hostname, unless the next word is already the tag (a local sender leaves the
        // hostname out).
        if let Some((word, after)) = rest.split_once(' ') {
            let is_tag = word.ends_with(':') || word.contains('[');
            if !word.is_empty() && !is_tag {
                m.hostname = Some(word);
                rest = after;
            }
        }
    }
    let (appname, procid, body) = tag(rest);
    m.appname = appname;
    m.procid = procid;
    m.body = body;
    m
}

/// `TAG[PID]: ` or `TAG: ` at the start of `s`: the tag, the pid and what follows.
fn tag(s: &str) -> (Option<&str>, Option<&str>, &str) {
    let none = (None, None, s);
    let Some(end) = s.find([':', '[', ' ']) else {
        return none;
    };
    let name = &s[..end];
    if name.is_empty() || name.len() > 128 {
        return none;
    }
    let (pid, after) = match s.as_bytes()[end] {
        b'[' => {
            let Some(close) = s[end..].find(']') else {
                return none;
            };
            let pid = &s[end + 1..end + close];
            match s[end + close + 1..].strip_prefix(':') {
                Some(after) if !pid.is_empty() && pid.len() <= 128 => (Some(pid), after),
                _ => return none,
            }
        }
        b':' => (None, &s[end + 1..]),
        _ => return none,
    };
    // The colon must end a word: `http://x` is a message, not a tag.
    if !(after.is_empty() || after.starts_with(' ')) {
        return none;
    }
    (Some(name), pid, after.strip_prefix(' ').unwrap_or(after))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A BSD timestamp `Mmm dd hh:mm:ss` (day space- or zero-padded), optionally with fractional
/// seconds and with a year (`Mmm dd yyyy hh:mm:ss`, as some network devices write): the time
/// (`None` when it names no real instant) and the text after its space.
fn bsd_timestamp(s: &str, now: i64) -> Option<(Option<u64>, &str)> {
    let month = MONTHS.iter().position(|m| s.starts_with(m))? as u32 + 1;
    let s = s.get(3..)?.strip_prefix(' ')?;
    let s = s.strip_prefix(' ').unwrap_or(s);
    let (day, s) = s.split_once(' ')?;
    let day: u32 = digits(day, 1, 2)?;
    let (year, s) = match s.split_once(' ') {
        Some((y, rest)) if y.len() == 4 && !y.contains(':') => {
            (Some(digits::<i64>(y, 4, 4)?), rest)
        }
        _ => (None, s),
    };
    let (clock, rest) = s.split_once(' ').unwrap_or((s, ""));
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let (h, m, sec) = hms_of(hms)?;
    let nanos = fraction(frac)?;
    let seconds_in = |y: i64| -> i64 {
        days_from_civil(y, month, day) * 86_400 + i64::from(h * 3600 + m * 60 + sec)
    };
    let t = match year {
        Some(y) => seconds_in(y),
        None => {
            // The year that puts the time at most a day ahead of now (clock skew), else the
            // year before: a December message read in January is from last year.
            let this = civil_from_days(now.div_euclid(86_400)).0;
            let t = seconds_in(this);
            if t > now + 86_400 {
                seconds_in(this - 1)
            } else {
                t
            }
        }
    };
    Some((unix_nanos(t, nanos), rest))
}

/// An RFC 3339 timestamp in the place of a BSD one (`<13>2026-12-07T10:00:00+01:00 host …`).
fn iso_timestamp(s: &str) -> Option<(Option<u64>, &str)> {
    let (t, rest) = s.split_once(' ').unwrap_or((s, ""));
    Some((Some(rfc3339(t)?), rest))
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` as Unix nanoseconds (`None` before 1970 or malformed).
pub fn rfc3339(t: &str) -> Option<u64> {
    let date = t.get(..10)?;
    let (sep, rest) = (t.as_bytes().get(10)?, t.get(11..)?);
    if !matches!(sep, b'T' | b't') || date.as_bytes().get(4) != Some(&b'-') {
        return None;
    }
    let year: u32 = digits(date.get(..4)?, 4, 4)?;
    let month: u32 = digits(date.get(5..7)?, 2, 2)?;
    let day: u32 = digits(date.get(8..10)?, 2, 2)?;
    if date.as_bytes().get(7) != Some(&b'-') || !(1..=12).contains(&month) {
        return None;
    }
    let zone_at = rest.find(['Z', 'z', '+', '-'])?;
    let (clock, zone) = rest.split_at(zone_at);
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let (h, m, s) = hms_of(hms)?;
    let offset = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (oh, om) = zone.get(1..)?.split_once(':')?;
            let (oh, om): (i64, i64) = (digits(oh, 2, 2)?, digits(om, 2, 2)?);
            sign * (oh * 3600 + om * 60)
        }
    };
    let secs = days_from_civil(i64::from(year), month, day) * 86_400
        + i64::from(h * 3600 + m * 60 + s)
        - offset;
    unix_nanos(secs, fraction(frac)?)
}

fn hms_of(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s.split(':');
    let h = digits(it.next()?, 2, 2)?;
    let m = digits(it.next()?, 2, 2)?;
    // Leap second 60 is accepted (and lands on the next second).
    let sec = digits(it.next()?, 2, 2)?;
    (it.next().is_none() && h < 24 && m < 60 && sec <= 60).then_some((h, m, sec))
}

/// Fractional seconds (up to nanoseconds; more digits are cut) as nanoseconds.
fn fraction(f: &str) -> Option<u32> {
    if f.is_empty() {
        return Some(0);
    }
    if !f.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let d = &f[..f.len().min(9)];
    let v: u32 = d.parse().ok()?;
    Some(v * 10u32.pow(9 - d.len() as u32))
}

fn digits<T: std::str::FromStr>(s: &str, min: usize, max: usize) -> Option<T> {
    if s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn unix_nanos(secs: i64, nanos: u32) -> Option<u64> {
    let secs = u64::try_from(secs).ok()?;
    secs.checked_mul(1_000_000_000)?
        .checked_add(u64::from(nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests;
