//! Object names: the `path` template rendered for one finished file, the UTC calendar fields of
//! the time the file was opened, and the host name.
//!
//! A name is a pure function of what the staging log records (signal, open time, host) and of
//! the file's identity (a hash of that log's bytes), so rebuilding a file after a crash gives the
//! name the first attempt would have used: a retried or replayed upload overwrites the same
//! object instead of adding a duplicate.

use sonde_core::Signal;

/// UTC calendar fields of a Unix time in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
}

impl Civil {
    pub fn of_unix_nanos(ns: i64) -> Civil {
        let secs = ns.div_euclid(1_000_000_000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        // Howard Hinnant's days-to-civil algorithm.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: (sod / 3600) as u32,
            minute: ((sod % 3600) / 60) as u32,
        }
    }

    /// The hour this time falls in, as a comparable number (files roll when it changes).
    pub fn hour_key(self) -> (i64, u32, u32, u32) {
        (self.year, self.month, self.day, self.hour)
    }
}

/// What a rendered name is made of.
pub struct NameParts<'a> {
    pub signal: Signal,
    pub opened_unix_nanos: i64,
    pub host: &'a str,
    pub exporter: &'a str,
    pub id: &'a str,
}

/// Renders a (valid, checked at config load) template.
pub fn render(template: &str, p: &NameParts<'_>) -> String {
    let c = Civil::of_unix_nanos(p.opened_unix_nanos);
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        match &after[..close] {
            "signal" => out.push_str(p.signal.as_str()),
            "date" => out.push_str(&format!("{:04}-{:02}-{:02}", c.year, c.month, c.day)),
            "hour" => out.push_str(&format!("{:02}", c.hour)),
            "year" => out.push_str(&format!("{:04}", c.year)),
            "month" => out.push_str(&format!("{:02}", c.month)),
            "day" => out.push_str(&format!("{:02}", c.day)),
            "minute" => out.push_str(&format!("{:02}", c.minute)),
            "host" => out.push_str(p.host),
            "exporter" => out.push_str(&sanitize(p.exporter)),
            "id" => out.push_str(p.id),
            other => {
                out.push('{');
                out.push_str(other);
                out.push('}');
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Keeps `[A-Za-z0-9._-]`, replaces anything else with `_` (an object-name-safe segment).
pub fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.chars().all(|c| c == '.') {
        "unknown".to_string()
    } else {
        out
    }
}

/// This machine's host name (`/proc/sys/kernel/hostname`, then `$HOSTNAME`), sanitized.
pub fn local_host() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    sanitize(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_fields_match_known_dates() {
        // 2024-02-29T13:45:10Z
        let c = Civil::of_unix_nanos(1_709_214_310 * 1_000_000_000);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute),
            (2024, 2, 29, 13, 45)
        );
        let c = Civil::of_unix_nanos(0);
        assert_eq!((c.year, c.month, c.day, c.hour), (1970, 1, 1, 0));
        // 1999-12-31T23:59:59Z
        let c = Civil::of_unix_nanos(946_684_799 * 1_000_000_000);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute),
            (1999, 12, 31, 23, 59)
        );
    }

    #[test]
    fn default_template_gives_hive_partitions() {
        let name = render(
            sonde_config::DEFAULT_PATH,
            &NameParts {
                signal: Signal::Traces,
                opened_unix_nanos: 1_709_214_310 * 1_000_000_000,
                host: "web-1",
                exporter: "lake",
                id: "abc",
            },
        );
        assert_eq!(name, "traces/date=2024-02-29/hour=13/web-1-abc.parquet");
    }

    #[test]
    fn host_names_are_made_path_safe() {
        assert_eq!(sanitize("a/b c"), "a_b_c");
        assert_eq!(sanitize(".."), "unknown");
        assert_eq!(
            sanitize("ip-10-0-0-1.ec2.internal"),
            "ip-10-0-0-1.ec2.internal"
        );
    }
}
