//! The committed `include/jumpwire.h` must match what build.rs generates from
//! the code. Run with `JW_UPDATE_HEADER=1` to rewrite it after changing the C API,
//! this test alone (`JW_UPDATE_HEADER=1 cargo test --test suite header::`): other
//! tests of the suite compile C programs against the header meanwhile.
//! Every name it declares starts with `jw_` or `JW_` (the include guard
//! aside): the header shares each C program's one namespace.

use std::path::Path;

#[test]
fn committed_header_matches_the_code() {
    let generated =
        std::fs::read_to_string(concat!(env!("OUT_DIR"), "/jumpwire.h")).expect("generated header");
    let committed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/jumpwire.h");
    if std::env::var_os("JW_UPDATE_HEADER").is_some() {
        std::fs::write(&committed_path, &generated).expect("writing include/jumpwire.h");
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/jumpwire.h is stale: run `JW_UPDATE_HEADER=1 cargo test --test suite header::` and commit it"
    );
}

#[test]
fn version_macros_match_the_package() {
    let header =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/jumpwire.h"))
            .unwrap();
    let major: u32 = env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap();
    let minor: u32 = env!("CARGO_PKG_VERSION_MINOR").parse().unwrap();
    let patch: u32 = env!("CARGO_PKG_VERSION_PATCH").parse().unwrap();
    assert!(header.contains(&format!(
        "#define JW_VERSION \"{}\"",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(header.contains(&format!("#define JW_VERSION_MAJOR {major}\n")));
    assert!(header.contains(&format!("#define JW_VERSION_MINOR {minor}\n")));
    assert!(header.contains(&format!("#define JW_VERSION_PATCH {patch}\n")));
    // The combined number: MINOR shifted once, by 8 (rustls-ffi shifted it twice).
    let expected = (major << 16) | (minor << 8) | patch;
    assert!(
        header.contains(&format!("#define JW_VERSION_NUM 0x{expected:06x}\n")),
        "JW_VERSION_NUM"
    );
}

/// Every name `header` declares at file scope, in order: macros, struct and
/// enum tags, typedef names, enum values, functions and variables (not
/// parameters or struct fields, which do not enter a C program's namespace).
fn declared_names(header: &str) -> Vec<String> {
    // Comments out.
    let mut text = String::new();
    let mut rest = header;
    while let Some(i) = rest.find("/*") {
        text.push_str(&rest[..i]);
        rest = rest[i..].find("*/").map_or("", |j| &rest[i + j + 2..]);
    }
    text.push_str(rest);
    let mut names = Vec::new();
    let mut code = String::new();
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or("");
        match line.trim_start().strip_prefix('#') {
            Some(directive) => {
                if let Some(def) = directive.trim_start().strip_prefix("define") {
                    names.extend(identifiers(def).into_iter().take(1));
                }
            }
            None => {
                code.push_str(line);
                code.push('\n');
            }
        }
    }
    let code = code.replace("extern \"C\" {", " ");
    // File-scope declarations: split at `;` outside braces (a `}` with no
    // `{` closes the `extern "C"` block).
    let mut decls = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in code.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => start = i + 1,
            '}' => depth -= 1,
            ';' if depth == 0 => {
                decls.push(&code[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    for decl in decls {
        if let (Some(open), Some(close)) = (decl.find('{'), decl.rfind('}')) {
            // `[typedef] enum|struct|union [TAG] { BODY } [NAME]`
            let (head, body, tail) = (&decl[..open], &decl[open + 1..close], &decl[close + 1..]);
            let head_ids = identifiers(head);
            names.extend(
                head_ids
                    .into_iter()
                    .skip_while(|w| !matches!(w.as_str(), "enum" | "struct" | "union"))
                    .skip(1),
            );
            if head.contains("enum") {
                for variant in body.split(',') {
                    names.extend(identifiers(variant).into_iter().take(1));
                }
            }
            names.extend(identifiers(tail).into_iter().last());
        } else if let Some(star) = decl.find("(*") {
            // A function pointer type or variable: `... (*NAME)(...)`.
            names.extend(identifiers(&decl[star..]).into_iter().take(1));
        } else if let Some(open) = decl.find('(') {
            // A function: the name before its parameters.
            names.extend(identifiers(&decl[..open]).into_iter().last());
        } else {
            // `typedef struct TAG NAME`, `typedef T NAME`, `extern T NAME`.
            let ids = identifiers(decl);
            if let Some(i) = ids
                .iter()
                .position(|w| matches!(w.as_str(), "struct" | "enum" | "union"))
            {
                names.extend(ids.get(i + 1).cloned());
            }
            if ids.len() > 1 {
                names.extend(ids.last().cloned());
            }
        }
    }
    names
}

/// The C identifiers (and keywords) of `s`, in order.
fn identifiers(s: &str) -> Vec<String> {
    s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_header_declares_only_jw_names() {
    let header =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/jumpwire.h"))
            .unwrap();
    let names = declared_names(&header);
    assert!(
        [
            "JW_VERSION",
            "jw_status",
            "JW_ERR_INTERNAL",
            "jw_stream",
            "jw_log_fn",
            "jw_stream_stats_t",
            "jw_ws_server_close"
        ]
        .iter()
        .all(|n| names.iter().any(|m| m == n)),
        "the name scan missed declarations: {names:?}"
    );
    let foreign: Vec<&String> = names
        .iter()
        .filter(|n| !n.starts_with("jw_") && !n.starts_with("JW_") && *n != "JUMPWIRE_H")
        .collect();
    assert!(
        foreign.is_empty(),
        "include/jumpwire.h declares names without the jw_/JW_ prefix, which land in \
         every C program's namespace: {foreign:?} (keep them out of src/ffi, or export \
         them as documented JW_ constants)"
    );
}

#[test]
fn the_name_scan_finds_every_kind_of_declaration() {
    let h = "/* #define IN_COMMENT 1 */\n#ifndef GUARD_H\n#define GUARD_H\n#include <stdint.h>\n\
             #define MAX_THING (1 << 4)\n#define CALL(x) (x)\n\
             typedef enum { RED = 0, GREEN = 1, } colour;\nenum tagged { A, B };\n\
             typedef struct opaque opaque;\nstruct plain { uint64_t field; int other; };\n\
             typedef struct { uint64_t hidden_field; } stats_t;\n\
             typedef void (*callback)(int level, void *user);\ntypedef uint32_t alias;\n\
             #ifdef __cplusplus\nextern \"C\" {\n#endif // __cplusplus\n\
             extern const int global_value;\n\
             const char *lookup(const opaque *o,\n                   size_t cap);\n\
             void release(opaque *o);\n\
             #ifdef __cplusplus\n}  // extern \"C\"\n#endif\n#endif /* GUARD_H */\n";
    assert_eq!(
        declared_names(h),
        [
            "GUARD_H",
            "MAX_THING",
            "CALL",
            "RED",
            "GREEN",
            "colour",
            "tagged",
            "A",
            "B",
            "opaque",
            "opaque",
            "plain",
            "stats_t",
            "callback",
            "alias",
            "global_value",
            "lookup",
            "release"
        ]
    );
}
