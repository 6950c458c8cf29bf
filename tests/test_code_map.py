"""The contributors' map and the shape of the code stay true.

- ARCHITECTURE.md names every production module of the four crates (a link to its file), and
  every file it links to exists.
- No production Rust file is over 800 lines, no production function over 120 lines (from its
  `fn` line to its closing brace, as rustfmt lays them out).

Test code (``tests.rs``, ``tests_*.rs``, ``*_tests.rs``, ``tests/`` folders, the Parquet
converters' ``oracle/`` and fixtures, and a trailing ``#[cfg(test)] mod tests { … }``) is left out.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRATES = ("core", "config", "exporters", "agent")
MAX_FILE_LINES = 800
MAX_FN_LINES = 120
FN = re.compile(
    r'^(\s*)(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+"C"\s+)?fn\s+(\w+)'
)


def is_test_file(path: Path) -> bool:
    name = path.name
    inner = path.relative_to(ROOT).parts[2:-1]  # folders below <crate>/src
    return (
        name == "tests.rs"
        or name.startswith("tests_")
        or name.endswith("_tests.rs")
        or name == "testdata.rs"
        or "tests" in inner
        or "oracle" in inner
    )


def production_files():
    for crate in CRATES:
        for path in sorted((ROOT / crate / "src").rglob("*.rs")):
            if not is_test_file(path):
                yield path


def production_lines(path: Path) -> list[str]:
    """The file's lines up to an inline test module (`#[cfg(test)]` then `mod x {`)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.startswith("#[cfg(test)]") and lines[i + 1].startswith("mod ") and lines[i + 1].rstrip().endswith("{"):
            return lines[:i]
    return lines


def test_architecture_names_every_module():
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(([^)#\s]+)\)", text))
    missing = [str(p.relative_to(ROOT)) for p in production_files() if str(p.relative_to(ROOT)) not in linked]
    assert not missing, "ARCHITECTURE.md does not name these modules:\n" + "\n".join(missing)
    dangling = sorted(t for t in linked if "://" not in t and not (ROOT / t).exists())
    assert not dangling, "ARCHITECTURE.md links to files that do not exist:\n" + "\n".join(dangling)


def test_no_overfull_file_or_function():
    problems = []
    for path in production_files():
        rel = path.relative_to(ROOT)
        lines = production_lines(path)
        if len(lines) > MAX_FILE_LINES:
            problems.append(f"{rel}: {len(lines)} lines (at most {MAX_FILE_LINES})")
        for i, line in enumerate(lines):
            m = FN.match(line)
            if not m or line.rstrip().endswith(";"):
                continue
            end = next((j for j in range(i + 1, len(lines)) if lines[j] == m.group(1) + "}"), None)
            if end is not None and end - i + 1 > MAX_FN_LINES:
                problems.append(f"{rel}:{i + 1}: fn {m.group(8)} is {end - i + 1} lines (at most {MAX_FN_LINES})")
    assert not problems, "\n".join(problems)
