//! `jw_network`: a parsed endpoint that streams can be opened to.

use super::boundary::{
    Boxed, Handle, arc_out, boundary, box_free, box_out, box_ref, check_out, ok, str_in, str_out,
    timeout,
};
use super::error::jw_status;
use super::stream::jw_stream;
use crate::network::Network;
use std::ffi::{c_char, c_int};

/// A configured endpoint (parsed from a URL; no I/O until connect). Made by
/// `jw_network_new` or `jw_network_router`, released with `jw_network_free`.
///
/// Threads: a network is immutable, so every call with it
/// (`jw_network_connect`, `jw_network_address`, and `jw_listen` or
/// `jw_router_export` with it as the target) may run on any thread, several
/// at once. `jw_network_free` must not overlap any of them: a
/// `jw_network *` points at the network's memory, so a call that runs during
/// or after the free is a use-after-free. What was made from it does not
/// need it: streams, and listeners (which keep a copy of their target), may
/// outlive it.
pub struct jw_network {
    _private: [u8; 0],
}

impl Handle for jw_network {
    type Rust = Network;
    type Ownership = Boxed;
    const NAME: &'static str = "network";
}

// Several threads use one network at once (as `&Network`): it must be `Sync`.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Network>();
};

/// Parses `url` (`tcp://HOST:PORT`, `udp://HOST:PORT`, `unix:/PATH`,
/// `unix:@NAME`, `vsock://CID:PORT`, `echo:`, `dbus:system`, `dbus:session`,
/// `dbus:ADDRESS`, `ws://HOST[:PORT]/PATH`, `wss://…`, a Jumpstarter driver
/// `jumpstarter:unix:/PATH?driver=NAME`, `jumpstarter:?driver=NAME` (the
/// session `JUMPSTARTER_HOST` names) or
/// `jumpstarter:lease?driver=NAME[&lease=LEASE][&client=ALIAS|&config=FILE]`
/// (a lease's session through its lab's controller and router, with an
/// upstream client configuration: the file, else upstream's `JMP_*`
/// variables, read at each connect; the lease from the URL or
/// `JMP_LEASE`); README.md, "Endpoints are URLs", lists each one's options)
/// into a new network written to `*out`. Does no I/O (files and variables
/// are read at connect). `JW_ERR_INVALID_ARGUMENT` with a message naming the
/// wrong part for a malformed URL or an unknown scheme or option. A
/// `grpc://` or `grpcs://` network made here has no stream token, so its
/// connects fail with `JW_ERR_UNSUPPORTED`: use `jw_network_router`.
#[unsafe(no_mangle)]
pub extern "C" fn jw_network_new(url: *const c_char, out: *mut *mut jw_network) -> jw_status {
    boundary(|| {
        check_out(out)?;
        let n = Network::new(str_in(url, "url")?)?;
        ok(box_out(out, n))
    })
}

/// Makes a network whose streams go through the router at `router_url`
/// (`grpc://HOST:PORT`, `grpcs://HOST:PORT[?ca=FILE][&insecure=1]`) with the
/// stream token `token` (copied), and writes it to `*out`. Each
/// `jw_network_connect` is then a `jw_router_connect`, and `jw_listen` of a
/// local port onto it forwards each accepted connection through the router
/// (upstream `j network forward-tcp` over a router): each connection dials the
/// router with the token and is paired with the next exporter that dials it.
/// Does no I/O. `JW_ERR_INVALID_ARGUMENT` for a URL that is not a router URL,
/// or an empty token or one with characters a header cannot carry. The token
/// never appears in error messages or logs.
#[unsafe(no_mangle)]
pub extern "C" fn jw_network_router(
    router_url: *const c_char,
    token: *const c_char,
    out: *mut *mut jw_network,
) -> jw_status {
    boundary(|| {
        check_out(out)?;
        let url = str_in(router_url, "router_url")?;
        let token = str_in(token, "token")?;
        ok(box_out(out, Network::router(url, token)?))
    })
}

/// Opens a new stream to the network, waiting at most `timeout_ms` for the
/// connection (name resolution included), and writes it to `*out`. Release the
/// stream with `jw_stream_close`. `JW_ERR_CONNECTION` if refused or
/// unreachable, `JW_TIMEOUT` if the time ran out.
#[unsafe(no_mangle)]
pub extern "C" fn jw_network_connect(
    n: *const jw_network,
    timeout_ms: c_int,
    out: *mut *mut jw_stream,
) -> jw_status {
    boundary(|| {
        let n = box_ref(n)?;
        check_out(out)?;
        let s = n.connect(timeout(timeout_ms)?)?;
        ok(arc_out(out, s))
    })
}

/// Writes the network's address, as upstream `address()` reports it
/// (`tcp://127.0.0.1:5201`, `tcp://[::1]:8080`, `udp://…`, `unix:/PATH`,
/// `vsock://CID:PORT`, the websocket URL, a `dbus:` network's bus address,
/// a `jumpstarter:` network's driver's address as the session reports it),
/// into `buf` (`cap` bytes, NUL included). `JW_ERR_DISABLED` if the URL (or
/// the exporter's configuration) said `enable_address=false`,
/// `JW_ERR_UNSUPPORTED` for networks without an address (echo, a router, a
/// session's echo or Unix driver), `JW_ERR_TOO_LARGE` if `cap` is too small
/// (nothing is written past `cap`). A `jumpstarter:` network asks its
/// session (a `DriverCall`, at most 10 s).
#[unsafe(no_mangle)]
pub extern "C" fn jw_network_address(
    n: *const jw_network,
    buf: *mut c_char,
    cap: usize,
) -> jw_status {
    boundary(|| {
        let n = box_ref(n)?;
        str_out(buf, cap, &n.address()?)
    })
}

/// Frees a network. Streams and listeners made from it are not affected. No
/// other call with `n` may be running, or made afterwards (see `jw_network`).
/// NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn jw_network_free(n: *mut jw_network) {
    super::boundary::boundary_void(|| drop(box_free(n)));
}

/// Parses `url` and opens a stream to it (`jw_network_new` +
/// `jw_network_connect` + `jw_network_free`).
#[unsafe(no_mangle)]
pub extern "C" fn jw_connect(
    url: *const c_char,
    timeout_ms: c_int,
    out: *mut *mut jw_stream,
) -> jw_status {
    boundary(|| {
        check_out(out)?;
        let url = str_in(url, "url")?;
        let timeout = timeout(timeout_ms)?;
        ok(arc_out(out, crate::network::connect(url, timeout)?))
    })
}
