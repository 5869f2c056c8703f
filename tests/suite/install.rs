//! `scripts/install.sh PREFIX` installs jumpwire the way libcurl or libzmq
//! are installed, and a C program then builds with pkg-config alone:
//! `cc app.c $(pkg-config --cflags --libs jumpwire)` against the versioned
//! shared library, and `pkg-config --static` against the static one.
//!
//! Ignored in a plain `cargo test` because it builds the release library
//! (minutes on a fresh machine); `scripts/test.sh` runs it with
//! `--include-ignored`.

use crate::toolchain;

use std::path::{Path, PathBuf};
use std::process::Command;
use toolchain::{NATIVE_STATIC_LIBS, WorkDir, repo};

fn sh(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed:\n{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned() + &stderr
}

/// Runs scripts/install.sh into `prefix` (with the command when `cli`);
/// returns what it printed.
fn install(prefix: &Path, kind: &str, cli: bool) -> String {
    sh(Command::new("bash")
        .arg(repo().join("scripts/install.sh"))
        .arg(prefix)
        .env("JW_LIBRARY_TYPE", kind)
        .env("JW_INSTALL_CLI", if cli { "1" } else { "0" })
        .current_dir(repo()))
}

fn pkg_config(prefix: &Path, args: &[&str]) -> Vec<String> {
    let out = sh(Command::new("pkg-config")
        .args(args)
        .arg("jumpwire")
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")));
    out.split_whitespace().map(str::to_string).collect()
}

/// The dynamic section of an ELF file, as `readelf -d` prints it.
fn dynamic(file: &Path) -> String {
    sh(Command::new("readelf").arg("-d").arg(file))
}

fn has_debug_info(file: &Path) -> bool {
    sh(Command::new("readelf").args(["-S", "-W"]).arg(file)).contains(".debug_info")
}

/// Compiles c-examples/echo_roundtrip.c with `flags` into `bin` and runs it
/// (no LD_LIBRARY_PATH unless `lib_dir` is given).
fn build_and_run(bin: &Path, flags: &[String], lib_dir: Option<&Path>) -> String {
    sh(Command::new("cc")
        .arg(repo().join("c-examples/echo_roundtrip.c"))
        .arg("-o")
        .arg(bin)
        .args(flags));
    let mut run = Command::new(bin);
    run.env_remove("LD_LIBRARY_PATH");
    if let Some(dir) = lib_dir {
        run.env("LD_LIBRARY_PATH", dir);
    }
    sh(&mut run)
}

fn version() -> (&'static str, String) {
    let v = env!("CARGO_PKG_VERSION");
    let (major, minor) = (
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
    );
    let sover = if major == "0" {
        format!("0.{minor}")
    } else {
        major.to_string()
    };
    (v, sover)
}

#[test]
#[ignore = "builds the release library; scripts/test.sh runs it with --include-ignored"]
fn install_then_build_with_pkg_config_shared_and_static() {
    let dir = WorkDir::new("install");
    let prefix: PathBuf = dir.path("prefix");
    let static_prefix = dir.path("prefix-static");
    install(&static_prefix, "staticlib", false);
    let printed = install(&prefix, "both", true);
    let (v, sover) = version();
    let lib = prefix.join("lib");

    // Files and links, like cargo-c's.
    let real = lib.join(format!("libjumpwire.so.{v}"));
    assert!(real.is_file(), "{printed}");
    assert_eq!(
        std::fs::read_link(lib.join(format!("libjumpwire.so.{sover}"))).unwrap(),
        Path::new(&format!("libjumpwire.so.{v}"))
    );
    assert_eq!(
        std::fs::read_link(lib.join("libjumpwire.so")).unwrap(),
        Path::new(&format!("libjumpwire.so.{sover}"))
    );
    assert!(prefix.join("include/jumpwire.h").is_file());
    assert_eq!(
        std::fs::read(prefix.join("include/jumpwire.h")).unwrap(),
        std::fs::read(repo().join("include/jumpwire.h")).unwrap()
    );
    assert!(
        dynamic(&real).contains(&format!("Library soname: [libjumpwire.so.{sover}]")),
        "no SONAME in {}",
        real.display()
    );

    // Installed without debug info; the shared library's is split out.
    assert!(!has_debug_info(&real));
    assert!(!has_debug_info(&lib.join("libjumpwire.a")));
    assert!(has_debug_info(
        &lib.join(format!(".debug/libjumpwire.so.{v}.debug"))
    ));
    let so_size = std::fs::metadata(&real).unwrap().len();
    let a_size = std::fs::metadata(lib.join("libjumpwire.a")).unwrap().len();
    println!("installed sizes: libjumpwire.so {so_size} bytes, libjumpwire.a {a_size} bytes");
    assert!(so_size < 16 << 20, "libjumpwire.so is {so_size} bytes");
    assert!(a_size < 64 << 20, "libjumpwire.a is {a_size} bytes");

    // pkg-config, shared: the program records the SONAME, not the file.
    let mut flags = pkg_config(&prefix, &["--cflags", "--libs"]);
    assert!(flags.contains(&format!("-I{}", prefix.join("include").display())));
    assert!(flags.contains(&"-ljumpwire".to_string()));
    assert_eq!(
        pkg_config(&prefix, &["--modversion"]),
        [v.to_string()],
        "jumpwire.pc's version"
    );
    let shared_bin = dir.path("app-shared");
    let out = build_and_run(&shared_bin, &flags, Some(&lib));
    assert!(out.contains("echo round trip: OK"), "{out}");
    assert!(dynamic(&shared_bin).contains(&format!("Shared library: [libjumpwire.so.{sover}]")));

    // pkg-config --static lists exactly the native libraries rustc names
    // (install.sh writes rustc's --print native-static-libs into Libs.private),
    // which must be the pinned list.
    let static_flags = pkg_config(&prefix, &["--static", "--libs"]);
    let tail: Vec<&str> = static_flags
        .iter()
        .skip_while(|f| *f != "-ljumpwire")
        .skip(1)
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail, NATIVE_STATIC_LIBS,
        "Libs.private of jumpwire.pc (what rustc prints) is not the pinned list: update \
         NATIVE_STATIC_LIBS in tests/c/toolchain.rs and the static build line in README.md"
    );

    // The command, stripped, runs from the prefix (it links the library
    // statically, as cargo builds a Rust program).
    let cli = prefix.join("bin/jumpwire");
    assert!(!has_debug_info(&cli));
    let out = sh(Command::new(&cli).arg("--version"));
    assert!(out.contains(v), "jumpwire --version: {out}");
    let cli_size = std::fs::metadata(&cli).unwrap().len();
    println!("installed jumpwire command: {cli_size} bytes");

    // A prefix with only the static library: pkg-config --static links it,
    // and the program needs no libjumpwire at run time.
    // (Installed first, without the command: its build and the library's
    // have different flags, so each rebuilds what the other built.)
    assert!(!static_prefix.join("bin/jumpwire").exists());
    assert!(!static_prefix.join("lib/libjumpwire.so").exists());
    flags = pkg_config(&static_prefix, &["--static", "--cflags", "--libs"]);
    let static_bin = dir.path("app-static");
    let out = build_and_run(&static_bin, &flags, None);
    assert!(out.contains("echo round trip: OK"), "{out}");
    assert!(!dynamic(&static_bin).contains("libjumpwire"));
}
