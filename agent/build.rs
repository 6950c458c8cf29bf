//! Link settings for the `sonde` binary.
//!
//! **Packed relative relocations** (`-z pack-relative-relocs`, DT_RELR). A position-independent
//! Rust binary carries tens of thousands of relative relocations (vtables, panic locations,
//! static string tables); stored as RELA they are 24 bytes each (1.2 MiB here), and the dynamic
//! loader reads every one at start-up, so they all stay resident for the life of the process.
//! RELR stores the same relocations as a bitmap of a few KiB, which cuts the idle agent's
//! resident set by about 1.3 MiB (BENCHMARKS.md, idle footprint).
//!
//! The loader must understand DT_RELR: glibc 2.36 or later, and the linker records that
//! requirement in the binary. So the flag is passed only when building for the machine that
//! builds (not cross-compiling), on glibc, and that glibc is 2.36 or later — a binary built here
//! already needs the build host's glibc. `SONDE_RELR=0` turns it off, e.g. to build on a new
//! system for an older one.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SONDE_RELR");
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let wanted = env("SONDE_RELR") != "0"
        && env("CARGO_CFG_TARGET_OS") == "linux"
        && env("CARGO_CFG_TARGET_ENV") == "gnu"
        && env("TARGET") == env("HOST")
        && host_glibc().is_some_and(|v| v >= (2, 36));
    if wanted {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// The build host's glibc version, from `getconf GNU_LIBC_VERSION` ("glibc 2.36").
fn host_glibc() -> Option<(u32, u32)> {
    let out = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let version = text.trim().strip_prefix("glibc ")?;
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.trim().parse().ok()?;
    Some((major, minor))
}
