//! The dependency tree keeps one major version of the HTTP and TLS stack.
//!
//! The AWS SDK crates' `rustls` feature pulls the end-of-life hyper 0.14 /
//! rustls 0.21 client next to the hyper 1 / rustls 0.23 one everything else
//! uses; their `default-https-client` feature does not. This reads
//! `Cargo.lock` (what `cargo tree -d` reads, offline and instant) so a feature
//! flag changed back, or a new dependency on an old stack, fails CI.

use std::collections::BTreeMap;
use std::path::Path;

/// Crates that must appear in at most one semver-major version.
///
/// Not yet `reqwest`: ours, the CDP SDK's and OTLP's are 0.12, while alloy
/// 2.5's built-in HTTP transport (`connect_http`) brings 0.13, and cdp-sdk
/// 0.10 (the newest) has no 0.13 release. Folding them needs alloy's
/// providers on a transport over our client (`connect_client`).
const SINGLE_MAJOR: &[&str] = &[
    "rustls",
    "tokio-rustls",
    "hyper",
    "hyper-rustls",
    "h2",
    "http",
    "http-body",
];

/// `(name, version)` of every package in a `Cargo.lock`.
fn locked_packages(lock: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut name = None;
    for line in lock.lines() {
        let line = line.trim();
        if line == "[[package]]" {
            name = None;
        } else if let Some(v) = line.strip_prefix("name = ") {
            name = Some(v.trim_matches('"').to_owned());
        } else if let Some(v) = line.strip_prefix("version = ")
            && let Some(n) = name.take()
        {
            out.push((n, v.trim_matches('"').to_owned()));
        }
    }
    out
}

/// Semver "major" as Cargo reads it: the first non-zero component.
fn major(version: &str) -> String {
    let parts: Vec<&str> = version.split('.').collect();
    match parts.as_slice() {
        ["0", "0", patch, ..] => format!("0.0.{patch}"),
        ["0", minor, ..] => format!("0.{minor}"),
        [major, ..] => (*major).to_owned(),
        [] => String::new(),
    }
}

/// Crates from `names` locked at more than one major, with their versions.
fn multi_major(lock: &str, names: &[&str]) -> BTreeMap<String, Vec<String>> {
    let mut seen: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (name, version) in locked_packages(lock) {
        if names.contains(&name.as_str()) {
            seen.entry(name)
                .or_default()
                .insert(major(&version), version);
        }
    }
    seen.into_iter()
        .filter(|(_, majors)| majors.len() > 1)
        .map(|(name, majors)| (name, majors.into_values().collect()))
        .collect()
}

#[test]
fn one_major_of_the_http_and_tls_stack() {
    let lock_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    let lock = std::fs::read_to_string(&lock_file).expect("Cargo.lock at the workspace root");
    assert!(
        locked_packages(&lock).len() > 100,
        "Cargo.lock parsed to almost nothing: the check would pass vacuously"
    );
    let dupes = multi_major(&lock, SINGLE_MAJOR);
    assert!(
        dupes.is_empty(),
        "more than one major version locked (see `cargo tree -d`): {dupes:?}"
    );
}

#[test]
fn the_check_sees_a_second_major() {
    let lock = r#"
[[package]]
name = "rustls"
version = "0.21.12"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "rustls"
version = "0.23.46"

[[package]]
name = "hyper"
version = "1.12.0"

[[package]]
name = "hyper"
version = "1.4.0"
"#;
    let dupes = multi_major(lock, SINGLE_MAJOR);
    assert_eq!(
        dupes,
        BTreeMap::from([(
            "rustls".to_owned(),
            vec!["0.21.12".to_owned(), "0.23.46".to_owned()]
        )])
    );
    assert_eq!(major("0.0.3"), "0.0.3");
    assert_eq!(major("1.2.3"), "1");
}
