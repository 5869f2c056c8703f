//! The integration tests that need no process of their own, in one test
//! binary: one link of the library and its dependencies instead of one per
//! file. Each file is a module holding one idea; the harness names a test
//! `FILE::NAME` (`cargo test --test suite router_tls::`).
//!
//! Separate binaries (`tests/*.rs`), each for a process of its own:
//! - `leaks`, `router_leaks`, `router_tls_leaks`, `session_leaks`,
//!   `session_lease_leaks`, `session_server_leaks`, `websocket_leaks`,
//!   `router_export`, `forward_abuse`, `router_abuse`, `ws_abuse`: they
//!   compare the whole process's thread and descriptor counts before and
//!   after, which any other test running beside them would change
//!   (`forward_abuse` and `router_abuse` also install the process's `log`
//!   logger to read the library's log).
//! - `stream_semantics`: one test proves that a partial send went to the
//!   flusher by finding a `jw-flush` thread among the process's threads,
//!   which another test's flusher would satisfy here.
//!
//! Tests here run a child process of their own where they need a changed
//! environment or limit (`dbus::session_and_system_buses_come_from_the_environment`
//! runs this binary again, see [`common::test_name`]).

#[path = "../common/mod.rs"]
mod common;
#[path = "../c/toolchain.rs"]
mod toolchain;

mod abi;
mod architecture;
mod c_examples;
mod cli;
mod dbus;
mod drivers;
mod faults;
mod header;
mod install;
mod integrity;
mod interop_router;
mod interop_ws;
mod router;
mod router_idle;
mod router_tls;
mod session_client;
mod session_exporter;
mod session_lease;
mod session_server;
mod static_libs;
mod timeouts;
mod websocket;
mod ws_hardening;
