//! `${VAR}` and `${VAR:-default}` interpolation from the environment, done on the raw text before
//! TOML parsing (so a variable can hold a number or a list, as in Vector and the Collector).
//!
//! `$$` writes a literal `$`. Substitution never spans lines, so line numbers in later errors still
//! point into the file as written. A variable that is unset (and has no default) is an error that
//! names the variable and its position.

use crate::error::ConfigError;

/// Replaces every `${…}` in `text` using `lookup`. Collects every problem rather than stopping at
/// the first.
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<ConfigError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    for (line_no, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        let mut col = 0usize; // byte offset within the line of `rest`
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                col += i + 2;
                rest = tail;
                continue;
            }
            let Some(body) = after.strip_prefix('{') else {
                out.push('$');
                col += i + 1;
                rest = after;
                continue;
            };
            let here = (line_no + 1, line[..col + i].chars().count() + 1);
            let Some(end) = body.find('}') else {
                errors.push(ConfigError::at(
                    here,
                    "",
                    "unterminated `${` (write `$${` for a literal `${`)",
                ));
                out.push_str(&rest[i..]);
                rest = "";
                break;
            };
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            let valid_name = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid_name {
                errors.push(ConfigError::at(
                    here,
                    "",
                    format!("invalid variable reference `${{{expr}}}`"),
                ));
            } else {
                match (lookup(name).filter(|v| !(default.is_some() && v.is_empty())), default) {
                    (Some(v), _) => out.push_str(&v),
                    (None, Some(d)) => out.push_str(d),
                    (None, None) => errors.push(ConfigError::at(
                        here,
                        "",
                        format!(
                            "environment variable `{name}` is not set (use `${{{name}:-default}}` for a default)"
                        ),
                    )),
                }
            }
            let consumed = i + 2 + end + 1;
            col += consumed;
            rest = &rest[consumed..];
        }
        out.push_str(rest);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("4317".into()),
            "EMPTY" => Some(String::new()),
            "TOKEN" => Some("s3cr3t".into()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_set_variables_and_defaults() {
        let t =
            "a = ${PORT}\nb = \"${MISSING:-x y}\"\nc = \"${EMPTY:-fallback}\"\nd = \"${EMPTY}\"\n";
        assert_eq!(
            interpolate(t, env).unwrap(),
            "a = 4317\nb = \"x y\"\nc = \"fallback\"\nd = \"\"\n"
        );
    }

    #[test]
    fn dollar_dollar_is_a_literal_dollar() {
        assert_eq!(
            interpolate("x = \"$${PORT} $5 $$\"", env).unwrap(),
            "x = \"${PORT} $5 $\""
        );
    }

    #[test]
    fn unset_variable_is_an_error_with_position() {
        let errs = interpolate("a = 1\nb = \"${NOPE}\"\nc = ${ALSO_NOPE}", env).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!((errs[0].line, errs[0].column), (Some(2), Some(6)));
        assert!(errs[0].message.contains("`NOPE`"), "{}", errs[0].message);
        assert_eq!((errs[1].line, errs[1].column), (Some(3), Some(5)));
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(interpolate("a = \"${}\"", env).is_err());
        assert!(interpolate("a = \"${1X}\"", env).is_err());
        assert!(interpolate("a = \"${OPEN", env).is_err());
    }
}
