//! The committed `include/jumpwire.h` must match what build.rs generates from
//! the code. Run with `JW_UPDATE_HEADER=1` to rewrite it after changing the C API,
//! this test alone (`JW_UPDATE_HEADER=1 cargo test --test suite header::`): other
//! tests of the suite compile C programs against the header meanwhile.

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
