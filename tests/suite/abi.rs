//! The C ABI is versioned. `abi/jumpwire.symbols` records, for the version in
//! its first line, every declaration of `include/jumpwire.h` (functions,
//! types and enum values, comments and layout stripped), as projects with a
//! stable ABI keep a checked-in symbol list.
//!
//! - The header must match the list: a change fails this test until the list
//!   is regenerated with `JW_UPDATE_ABI=1 cargo test --test suite abi::`.
//! - Regenerating refuses a change to or a removal of an existing declaration
//!   while `Cargo.toml`'s version is still the one the list records: bump the
//!   version first (while the major version is 0, the minor one; see
//!   `CHANGELOG.md`). Adding declarations needs no bump, nor does adding
//!   `const` to what a pointer parameter points at (the same symbol and
//!   calling convention, and every caller still compiles: a `T *` converts to
//!   a `const T *`).
//! - The shared library exports exactly the listed functions.

use std::collections::BTreeSet;
use std::process::Command;

use crate::toolchain;

const LIST: &str = "abi/jumpwire.symbols";

/// The declarations of a C header, one normalised line each, in order.
fn declarations(header: &str) -> Vec<String> {
    // Comments out.
    let mut text = String::new();
    let mut rest = header;
    while let Some(i) = rest.find("/*") {
        text.push_str(&rest[..i]);
        rest = rest[i..].find("*/").map_or("", |j| &rest[i + j + 2..]);
    }
    text.push_str(rest);
    // Preprocessor lines and line comments out.
    let text: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ")
        .replace("extern \"C\" {", " ");
    text.split(';')
        .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
        .map(|d| d.trim_start_matches('}').trim().to_string())
        .filter(|d| !d.is_empty())
        .collect()
}

/// The function name of a declaration, if it declares one.
fn function_name(decl: &str) -> Option<&str> {
    if decl.starts_with("typedef") {
        return None;
    }
    let open = decl.find('(')?;
    decl[..open]
        .rsplit([' ', '*'])
        .next()
        .filter(|n| n.starts_with("jw_"))
}

/// The tokens of a declaration: words and punctuation apart.
fn tokens(decl: &str) -> Vec<String> {
    let mut spaced = String::new();
    for c in decl.chars() {
        if "*(),[]".contains(c) {
            spaced.push(' ');
            spaced.push(c);
            spaced.push(' ');
        } else {
            spaced.push(c);
        }
    }
    spaced.split_whitespace().map(str::to_string).collect()
}

/// True when `new` is `old` with `const` added in places and nothing else
/// changed.
fn only_adds_const(old: &str, new: &str) -> bool {
    let (old, new) = (tokens(old), tokens(new));
    let mut o = old.iter().peekable();
    let mut added = false;
    for t in &new {
        if o.peek() == Some(&t) {
            o.next();
        } else if t == "const" {
            added = true;
        } else {
            return false;
        }
    }
    o.next().is_none() && added
}

fn read_list() -> (String, Vec<String>) {
    let text = std::fs::read_to_string(toolchain::repo().join(LIST))
        .unwrap_or_else(|e| panic!("{LIST}: {e}"));
    let mut lines = text.lines();
    let version = lines
        .next()
        .and_then(|l| l.strip_prefix("# jumpwire "))
        .unwrap_or_else(|| panic!("{LIST}: the first line must be '# jumpwire VERSION'"))
        .to_string();
    let decls = lines
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    (version, decls)
}

#[test]
fn the_header_matches_the_abi_list() {
    let header = std::fs::read_to_string(toolchain::repo().join("include/jumpwire.h")).unwrap();
    let now = declarations(&header);
    let (listed_version, listed) = read_list();
    let version = env!("CARGO_PKG_VERSION");
    if now == listed && version == listed_version {
        return;
    }
    let now_set: BTreeSet<&String> = now.iter().collect();
    let gone: Vec<&String> = listed
        .iter()
        .filter(|d| !now_set.contains(d) && !now.iter().any(|n| only_adds_const(d, n)))
        .collect();
    let listed_set: BTreeSet<&String> = listed.iter().collect();
    let added: Vec<&String> = now.iter().filter(|d| !listed_set.contains(d)).collect();
    if !gone.is_empty() && version == listed_version {
        panic!(
            "the C ABI changed without a version bump: these declarations of {listed_version} \
             changed or went away:\n  {}\nBump the version in Cargo.toml (and say so in \
             CHANGELOG.md), then regenerate {LIST} with JW_UPDATE_ABI=1 cargo test --test suite abi::",
            gone.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }
    if std::env::var_os("JW_UPDATE_ABI").is_some() {
        let mut out = format!(
            "# jumpwire {version}\n# The C ABI: every declaration of include/jumpwire.h, normalised \
             (tests/suite/abi.rs; regenerate with JW_UPDATE_ABI=1 cargo test --test suite abi::).\n"
        );
        for d in &now {
            out.push_str(d);
            out.push('\n');
        }
        std::fs::write(toolchain::repo().join(LIST), out).unwrap();
        return;
    }
    panic!(
        "{LIST} is out of date (version {listed_version}, package {version}).\nadded:\n  {}\nchanged or \
         removed:\n  {}\nRegenerate it with JW_UPDATE_ABI=1 cargo test --test suite abi::",
        added
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        gone.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

#[test]
fn the_shared_library_exports_exactly_the_listed_functions() {
    let (_, listed) = read_list();
    let want: BTreeSet<&str> = listed.iter().filter_map(|d| function_name(d)).collect();
    assert!(want.len() > 20, "too few functions in {LIST}: {want:?}");
    let lib = toolchain::library("libjumpwire.so");
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&lib)
        .output()
        .expect("running nm (binutils)");
    assert!(out.status.success(), "nm {}", lib.display());
    let nm = String::from_utf8_lossy(&out.stdout);
    let exported: BTreeSet<&str> = nm
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (kind, name) = (f.nth(1)?, f.next()?);
            (kind == "T").then_some(name)
        })
        .collect();
    assert_eq!(
        exported,
        want,
        "{} exports other functions than {LIST} lists",
        lib.display()
    );
}

#[test]
fn adding_const_to_a_pointee_is_compatible_and_nothing_else_is() {
    let old = "jw_status jw_ws_path(jw_stream *s, char *buf, size_t cap)";
    assert!(only_adds_const(
        old,
        "jw_status jw_ws_path(const jw_stream *s, char *buf, size_t cap)"
    ));
    assert!(!only_adds_const(old, old), "no change is not an addition");
    assert!(!only_adds_const(
        "jw_status jw_f(const jw_stream *s)",
        "jw_status jw_f(jw_stream *s)"
    ));
    assert!(!only_adds_const(
        old,
        "jw_status jw_ws_path(jw_stream *s, char *buf, int cap)"
    ));
    assert!(!only_adds_const(
        old,
        "jw_status jw_ws_path(const jw_stream *s, char *buf)"
    ));
}

#[test]
fn declarations_are_normalised_without_comments_or_layout() {
    let h = "/* top */\n#ifndef X\n#define X 1\ntypedef struct jw_a jw_a;\n/** doc\n * more */\njw_status jw_a_do(const jw_a *a,\n                  int b);\n// line\nvoid jw_a_free(jw_a *a);\n#endif\n";
    assert_eq!(
        declarations(h),
        [
            "typedef struct jw_a jw_a",
            "jw_status jw_a_do(const jw_a *a, int b)",
            "void jw_a_free(jw_a *a)"
        ]
    );
    assert_eq!(
        function_name("jw_status jw_a_do(const jw_a *a, int b)"),
        Some("jw_a_do")
    );
    assert_eq!(
        function_name("const char *jw_version(void)"),
        Some("jw_version")
    );
    assert_eq!(
        function_name("typedef void (*jw_ws_handler)(jw_stream *conn, void *user)"),
        None
    );
}
