//! Generates the C header from `src/ffi/` with cbindgen into `OUT_DIR`.
//! cbindgen parses `src/ffi/mod.rs` and its submodules only, so the rest of
//! the crate (its `pub const`s, its types) never reaches a C program's
//! namespace. `tests/suite/header.rs` compares the result with the committed
//! `include/jumpwire.h` (set `JW_UPDATE_HEADER=1` to rewrite that file) and
//! checks that it declares only `jw_`/`JW_` names.
//!
//! Also generates the router's protobuf types and gRPC client/server from
//! `proto/jumpstarter/v1/router.proto`, with the pure-Rust `protox` compiler
//! (no `protoc` needed), into `OUT_DIR/jumpstarter.v1.rs`; and the session
//! protocol's (`ExporterService`, `ControllerService`, `ClientService`, from
//! `proto/jumpstarter/v1/jumpstarter.proto` and
//! `proto/jumpstarter/client/v1/client.proto`) into `OUT_DIR/session/`, one
//! file per package, for `src/session/proto.rs`.

use std::env;
use std::path::PathBuf;

fn main() {
    router_proto();
    session_proto();
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("jumpwire.h");
    let mut config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let v = |k: &str| env::var(k).unwrap().parse::<u32>().unwrap();
    let (major, minor, patch) = (
        v("CARGO_PKG_VERSION_MAJOR"),
        v("CARGO_PKG_VERSION_MINOR"),
        v("CARGO_PKG_VERSION_PATCH"),
    );
    config.after_includes = Some(format!(
        "\n#define JW_VERSION \"{major}.{minor}.{patch}\"\n\
         #define JW_VERSION_MAJOR {major}\n\
         #define JW_VERSION_MINOR {minor}\n\
         #define JW_VERSION_PATCH {patch}\n\
         /* (MAJOR << 16) | (MINOR << 8) | PATCH, like LIBCURL_VERSION_NUM. */\n\
         #define JW_VERSION_NUM 0x{:06x}\n\
         #define JW_AT_LEAST_VERSION(x, y, z) (JW_VERSION_NUM >= (((x) << 16) | ((y) << 8) | (z)))",
        (major << 16) | (minor << 8) | patch
    ));
    let bindings = cbindgen::Builder::new()
        .with_src(dir.join("src/ffi/mod.rs"))
        .with_config(config)
        .generate()
        .expect("generating the C header");
    bindings.write_to_file(&out);
}

fn router_proto() {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["jumpstarter/v1/router.proto"], ["proto"]).expect("router.proto");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Payloads as `Bytes`: a frame moves between hops without a copy.
        .bytes(".")
        .compile_fds(fds)
        .expect("generating the router's gRPC code");
}

/// The session protocol's services and messages. Compiled apart from
/// `router.proto` (which shares their package) so that the router's module
/// keeps exactly its own types; the session code uses the router's
/// `RouterService` types for driver streams.
fn session_proto() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("session");
    std::fs::create_dir_all(&out).expect("creating OUT_DIR/session");
    let fds = protox::compile(
        [
            "jumpstarter/v1/jumpstarter.proto",
            "jumpstarter/client/v1/client.proto",
        ],
        ["proto"],
    )
    .expect("jumpstarter.proto, client.proto");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .out_dir(out)
        .compile_fds(fds)
        .expect("generating the session protocol's gRPC code");
}
