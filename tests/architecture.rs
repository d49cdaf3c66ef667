//! The crate's module structure, checked: dependencies point one way, from the edge down to the
//! domain leaf, the media core never reads the clock or touches I/O, and migrations are
//! numbered once each.
//!
//! Each top-level module of `src/` has a layer below; a module may use (`crate::x`) only
//! modules of lower layers. A cycle cannot satisfy that, so a new cycle fails here, and so does
//! a new module until it is given a layer (docs/ARCHITECTURE.md draws the same picture).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lower layers first.
const LAYERS: &[&[&str]] = &[
    // The leaf: vocabulary and settings, importing nothing of ours.
    &["domain", "config"],
    // Below the services: SQL, tokens, the sans-IO media core, logs, certificates.
    &[
        "storage",
        "auth",
        "sfu",
        "telemetry",
        "tls",
        "fd_limit",
        "admission",
    ],
    // Services that own one thing each.
    &[
        "audit",
        "documents",
        "records",
        "media",
        "sessions",
        "notifications",
    ],
    // Services built on those: a consultation request carries documents.
    &["summary", "metrics", "webhooks", "referrals"],
    // The live room, and the JSON shapes of stored things.
    &["rooms", "wire", "netcheck"],
    // The edge.
    &["signaling"],
    // Fuzzing's entry points drive parsers of every layer up to signaling.
    &["http", "fuzz"],
    &["server"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments (doc links name other modules freely).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::<module>` a file uses, grouped ones (`crate::{rooms::X, domain}`) included.
fn uses(text: &str) -> BTreeSet<String> {
    let code = code(text);
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            found.extend(group_heads(group));
            continue;
        }
        let name = ident(rest);
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

/// The leading identifier of `text`.
fn ident(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The first name of each path in a `{...}` group (`text` starts after its `{`), up to the
/// brace that closes it; nested groups belong to the paths they follow.
fn group_heads(text: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut at_start = true;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_start = true,
            c if c.is_whitespace() => {}
            _ if at_start && depth == 0 => {
                at_start = false;
                let name = ident(&text[i..]);
                if !name.is_empty() && name != "self" {
                    heads.push(name);
                }
            }
            _ => {}
        }
    }
    heads
}

/// (module, file) for every file of the library, binaries excluded.
fn library_files() -> Vec<(String, PathBuf)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .into_iter()
        .filter_map(|path| {
            let rel = path.strip_prefix(&src).ok()?.to_owned();
            let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
            let module = first.trim_end_matches(".rs").to_owned();
            // `cli` is the binary's own (main.rs declares it), not the library's.
            (!matches!(module.as_str(), "lib" | "main" | "bin" | "cli")).then_some((module, path))
        })
        .collect()
}

#[test]
fn dependencies_point_one_way() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, path) in library_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let entry = graph.entry(module.clone()).or_default();
        entry.extend(uses(&text).into_iter().filter(|m| *m != module));
    }
    let mut wrong = Vec::new();
    for (module, deps) in &graph {
        let Some(own) = layer_of(module) else {
            wrong.push(format!(
                "{module}: not in LAYERS (tests/architecture.rs): give it a layer"
            ));
            continue;
        };
        for dep in deps {
            match layer_of(dep) {
                Some(l) if l < own => {}
                Some(_) => wrong.push(format!(
                    "{module} uses {dep}, which is not below it (a cycle, or a dependency pointing up)"
                )),
                None => wrong.push(format!("{module} uses {dep}, which is not in LAYERS")),
            }
        }
    }
    assert!(wrong.is_empty(), "module structure:\n{}", wrong.join("\n"));
    // Every module of LAYERS exists, so the table stays true.
    for module in LAYERS.iter().flat_map(|l| l.iter()) {
        assert!(
            graph.contains_key(*module),
            "LAYERS names {module}, which src/ lacks"
        );
    }
}

#[test]
fn the_media_core_reads_no_clock_and_does_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sfu");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for path in files {
        // Tests drive the core on a virtual clock they start themselves.
        if path.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = code(&text);
        // Unit tests at the bottom of a file may start a clock.
        let code = code.split("#[cfg(test)]").next().unwrap_or("");
        for banned in [
            "Instant::now",
            "SystemTime::now",
            "tokio",
            "axum",
            "std::net::UdpSocket",
            "sqlx",
            "std::fs",
        ] {
            assert!(
                !code.contains(banned),
                "{} uses {banned}: the SFU core is sans-IO and is given the time",
                path.display()
            );
        }
    }
}

#[test]
fn the_check_finds_what_it_looks_for() {
    let text = "use crate::rooms::Notice; // crate::http in a comment\nlet x = crate::domain::clock::now_unix();";
    let found: Vec<_> = uses(text).into_iter().collect();
    assert_eq!(found, ["domain", "rooms"]);
    let grouped = "use crate::{\n    audit::{Action, AuditEvent},\n    storage::Db, self,\n};";
    let found: Vec<_> = uses(grouped).into_iter().collect();
    assert_eq!(found, ["audit", "storage"]);
}

/// Migrations are numbered 0001, 0002, … without a gap or a repeat: two branches that each add
/// "the next" migration must not both land with one number (sqlx orders by the number, and a
/// database that applied one of them would refuse the other's file under it).
#[test]
fn migrations_are_numbered_once_each_in_order() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut numbers: Vec<u32> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .map(|name| {
            name.split('_')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("migrations/{name}: no leading number"))
        })
        .collect();
    numbers.sort_unstable();
    let expected: Vec<u32> = (1..=numbers.len() as u32).collect();
    assert_eq!(
        numbers, expected,
        "migrations/: numbers repeated or missing"
    );
}

/// The wire format is not the storage rows: no row serialises itself (the edge converts rows
/// to its own view types, `src/wire.rs` and `signaling/protocol.rs`), so a column change is
/// never a protocol change.
#[test]
fn storage_rows_do_not_serialise_themselves() {
    let storage = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/storage");
    let mut files = Vec::new();
    rust_files(&storage, &mut files);
    assert!(!files.is_empty());
    for path in files {
        let text = code(&std::fs::read_to_string(&path).unwrap());
        assert!(
            !text.contains("Serialize"),
            "{}: a storage type implements Serialize; give the wire its own view type",
            path.display()
        );
    }
}

/// What docs/ARCHITECTURE.md's module table says some layers must not do, checked where a
/// word in the code shows it: signaling asks the room what a role may do and never decides it
/// (no `may_*` of the permission table); the rooms touch no socket and read no SDP (an answer
/// goes to `sfu::Answer::parse`); records and referrals neither write the audit trail nor
/// tell the rooms (the HTTP edge does both; referrals build the entries their steps owe, and
/// the edge appends them).
#[test]
fn layers_keep_to_what_they_must_not_do() {
    let rules: &[(&str, &[&str], &str)] = &[
        ("signaling", &[".may_"], "decides what a role may do"),
        (
            "rooms",
            &[
                "tokio::net",
                "UdpSocket",
                "TcpStream",
                "str0m::change",
                "SdpOffer",
                "SdpAnswer",
            ],
            "touches a socket or reads SDP",
        ),
        (
            "records",
            &["crate::audit", "crate::rooms"],
            "writes the audit trail or tells a room",
        ),
        // A request's steps build the entries they owe (queued in their transactions,
        // `referrals/audit.rs`); appending them is the edge's.
        (
            "referrals",
            &["AuditLog", "crate::rooms"],
            "appends to the audit trail or tells a room",
        ),
    ];
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (module, words, what) in rules {
        let mut files = Vec::new();
        let dir = src.join(module);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
        let single = src.join(format!("{module}.rs"));
        if single.is_file() {
            files.push(single);
        }
        assert!(!files.is_empty(), "no files for {module}");
        for path in files {
            let text = code(&std::fs::read_to_string(&path).unwrap());
            for word in *words {
                assert!(
                    !text.contains(word),
                    "{}: `{word}`: {module} {what} (docs/ARCHITECTURE.md)",
                    path.display()
                );
            }
        }
    }
}
