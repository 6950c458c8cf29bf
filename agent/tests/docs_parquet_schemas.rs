//! `docs/parquet-schemas.md` lists the Parquet tables exactly as `sonde schema <signal>` prints
//! them: this test runs the built binary for each signal and compares its output with the part of
//! the page between the `BEGIN sonde schema` and `END sonde schema` markers.
//!
//! With `SONDE_UPDATE_DOCS=1` it rewrites that part instead (what `tests/gen_parquet_schemas.sh`
//! does); the prose around it is never touched. It only reads the binary's output and the page.

use std::path::PathBuf;
use std::process::Command;

const BEGIN: &str = "<!-- BEGIN sonde schema -->\n";
const END: &str = "<!-- END sonde schema -->\n";
const SIGNALS: [&str; 3] = ["traces", "metrics", "logs"];

fn page_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/parquet-schemas.md")
}

/// What belongs between the markers: one section per signal with `sonde schema`'s output.
fn generated() -> String {
    let mut out = String::new();
    for signal in SIGNALS {
        let run = Command::new(env!("CARGO_BIN_EXE_sonde"))
            .args(["schema", signal])
            .output()
            .expect("run `sonde schema`");
        assert!(
            run.status.success(),
            "`sonde schema {signal}` failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let text = String::from_utf8(run.stdout).expect("`sonde schema` prints UTF-8");
        out.push_str(&format!(
            "\n### `sonde schema {signal}`\n\n```text\n{text}```\n\n"
        ));
    }
    out
}

/// The page split around its generated part: (before, generated, after).
fn split(page: &str) -> (&str, &str, &str) {
    let begin = page
        .find(BEGIN)
        .expect("docs/parquet-schemas.md has no `<!-- BEGIN sonde schema -->` line")
        + BEGIN.len();
    let end = page[begin..]
        .find(END)
        .expect("docs/parquet-schemas.md has no `<!-- END sonde schema -->` line after BEGIN")
        + begin;
    (&page[..begin], &page[begin..end], &page[end..])
}

#[test]
fn the_parquet_schemas_page_is_what_sonde_schema_prints() {
    let path = page_path();
    let page = std::fs::read_to_string(&path).expect("read docs/parquet-schemas.md");
    let (before, current, after) = split(&page);
    let want = generated();
    if std::env::var_os("SONDE_UPDATE_DOCS").is_some_and(|v| v == "1") {
        std::fs::write(&path, format!("{before}{want}{after}")).expect("write the page");
        return;
    }
    if current != want {
        let (line, got, expected) = current
            .lines()
            .zip(want.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| (i + 1, a.to_string(), b.to_string()))
            .unwrap_or_else(|| {
                let (have, need) = (current.lines().count(), want.lines().count());
                let line = have.min(need) + 1;
                if have < need {
                    (
                        line,
                        "(the page's part ends here)".into(),
                        "(more lines)".into(),
                    )
                } else {
                    (line, "(more lines)".into(), "(the output ends here)".into())
                }
            });
        panic!(
            "docs/parquet-schemas.md is not what `sonde schema` prints (line {line} of the \
             generated part):\n  page: {got}\n  sonde schema: {expected}\n\
             Regenerate it with `bash tests/gen_parquet_schemas.sh`."
        );
    }
}
