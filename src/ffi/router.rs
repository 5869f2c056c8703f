//! `jw_router`: the embedded router, stream tokens, router client streams and
//! the exporter side of a routed stream.

use super::boundary::{
    Handle, Registry, SlotHandle, Slotted, arc_out, boundary, boundary_void, box_ref, check_out,
    ok, slot_get, slot_out, slot_take, str_in, str_out, timeout, write_out,
};
use super::error::jw_status;
use super::network::jw_network;
use super::stream::{jw_server_stats_t, jw_stream};
use crate::error::Error;
use crate::router::{self, Router};
use std::ffi::{CString, c_char, c_int};
use std::time::Duration;

/// An embedded Jumpstarter router: pairs the two callers of each stream token
/// and relays their frames. Made by `jw_router_serve`, released with
/// `jw_router_close`.
///
/// Threads: every call (`jw_router_address`, `jw_router_certificate`,
/// `jw_router_refused`, `jw_router_stats`) may run on any thread, at the same time as the others
/// and as `jw_router_close`; a call that overlaps the close finishes safely.
/// The handle names the router rather than pointing at its memory: once
/// `jw_router_close` has begun, every call with it returns `JW_ERR_CLOSED`
/// (`jw_router_certificate` NULL) and a second close is a no-op; a value that
/// was never a router handle is `JW_ERR_INVALID_ARGUMENT`. The one thing
/// that does not outlive the close is the string `jw_router_certificate`
/// returned: stop reading it before `jw_router_close` is called.
pub struct jw_router {
    _private: [u8; 0],
}

/// What a `jw_router` handle names: the router, and its certificate as the
/// C string `jw_router_certificate` hands out. The string lives as long as
/// this does: until `jw_router_close` and the end of any call still running
/// with the handle then (each holds its own reference).
pub(crate) struct CRouter {
    router: Router,
    certificate: Option<CString>,
}

impl CRouter {
    fn new(router: Router) -> CRouter {
        // PEM text never holds a NUL byte.
        let certificate = router.certificate().and_then(|c| CString::new(c).ok());
        CRouter {
            router,
            certificate,
        }
    }
}

impl Handle for jw_router {
    type Rust = CRouter;
    type Ownership = Slotted;
    const NAME: &'static str = "router";
}

impl SlotHandle for jw_router {
    fn registry() -> &'static Registry<CRouter> {
        static ROUTERS: Registry<CRouter> = Registry::new();
        &ROUTERS
    }
}

/// Starts a router on `listen_url`, `grpc://HOST:PORT?key=SECRET` or, over
/// TLS, `grpcs://HOST:PORT?key=SECRET[&cert=FILE&key_file=FILE]` (port 0
/// picks a free port; `key` signs the stream tokens it admits), and writes it
/// to `*out`. It runs on the library's own threads until `jw_router_close`.
/// A `grpcs://` router without `cert` and `key_file` (PEM certificate chain
/// and private key) makes a self-signed certificate for `localhost`,
/// `127.0.0.1`, `::1` and `HOST`; `jw_router_certificate` gives it to
/// clients. Each TLS handshake must finish within 10 s (at most 256 at once;
/// a connection past that is closed). `JW_ERR_IO` if the
/// address cannot be bound; `JW_ERR_INVALID_ARGUMENT` for certificate files
/// that cannot be read or do not match.
#[unsafe(no_mangle)]
pub extern "C" fn jw_router_serve(
    listen_url: *const c_char,
    out: *mut *mut jw_router,
) -> jw_status {
    boundary(|| {
        check_out(out)?;
        let url = str_in(listen_url, "listen_url")?;
        ok(slot_out(out, CRouter::new(Router::serve(url)?)))
    })
}

/// Writes the router's address with the real port (`grpc://127.0.0.1:PORT`,
/// `grpc://[::1]:PORT`, `grpcs://…` over TLS; never the key) into `buf`
/// (`cap` bytes, NUL included). Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn jw_router_address(
    r: *const jw_router,
    buf: *mut c_char,
    cap: usize,
) -> jw_status {
    boundary(|| str_out(buf, cap, slot_get(r)?.router.address()))
}

/// The certificate chain a `grpcs://` router presents, as PEM text, for
/// clients to trust with `grpcs://HOST:PORT?ca=FILE`; NULL for a `grpc://`
/// router, or for a NULL or closed `r` (then `jw_last_error` says so). The
/// string is owned by the router and stays valid until `jw_router_close` is
/// called. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn jw_router_certificate(r: *const jw_router) -> *const c_char {
    let mut pem = std::ptr::null();
    boundary(|| {
        if let Some(c) = &slot_get(r)?.certificate {
            pem = c.as_ptr();
        }
        Ok(jw_status::JW_OK)
    });
    pem
}

/// Writes to `*out` how many connections the router has refused or closed
/// unserved so far: ones that opened no call with a valid token within 5 s,
/// the oldest waiting one when 256 were waiting, and ones accepted while the
/// process was out of descriptors. Each is logged too. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn jw_router_refused(r: *const jw_router, out: *mut u64) -> jw_status {
    boundary(|| {
        check_out(out)?;
        write_out(out, slot_get(r)?.router.refused())?;
        Ok(jw_status::JW_OK)
    })
}

/// Writes the router's counts to `*out`: calls admitted (a valid token) and
/// open now (waiting for their peer or paired), refusals (as
/// `jw_router_refused`), and the payload bytes received from callers
/// (`bytes_received`) and relayed to their peers (`bytes_sent`), counted as
/// they move. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn jw_router_stats(r: *const jw_router, out: *mut jw_server_stats_t) -> jw_status {
    boundary(|| {
        check_out(out)?;
        write_out(out, jw_server_stats_t::from(slot_get(r)?.router.stats()))?;
        Ok(jw_status::JW_OK)
    })
}

/// Stops the router (waiting callers and running pairs end with a connection
/// error), releases its port and frees it. May run while other threads are
/// inside calls on the same router; later calls with `r` return
/// `JW_ERR_CLOSED`. NULL or an already closed `r` is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn jw_router_close(r: *mut jw_router) {
    boundary_void(|| {
        if let Some(r) = slot_take(r) {
            r.router.close();
        }
    })
}

/// Mints a stream token for `stream_id`, valid for `ttl_s` seconds, signed
/// with `key`, as the Jumpstarter controller mints them (HS256 JWT, `sub` =
/// `stream_id`), and writes it into `buf` (`cap` bytes, NUL included;
/// `JW_ERR_TOO_LARGE` if it does not fit). Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn jw_router_token(
    key: *const c_char,
    stream_id: *const c_char,
    ttl_s: c_int,
    buf: *mut c_char,
    cap: usize,
) -> jw_status {
    boundary(|| {
        let key = str_in(key, "key")?;
        let id = str_in(stream_id, "stream_id")?;
        let ttl = u64::try_from(ttl_s)
            .ok()
            .filter(|t| *t > 0)
            .ok_or_else(|| Error::invalid(format!("ttl_s is {ttl_s}: it must be positive")))?;
        str_out(
            buf,
            cap,
            &router::token::mint(key, id, Duration::from_secs(ttl))?,
        )
    })
}

/// Opens a stream through the router at `router_url` with the stream token
/// `token`, and writes it to `*out` (release with `jw_stream_close`).
/// `router_url` is `grpc://HOST:PORT`, or over TLS
/// `grpcs://HOST:PORT[?ca=FILE][&insecure=1]`: the router's certificate is
/// verified against the system roots, or against the PEM file `ca`, or not
/// at all with `insecure=1`. Returns once the connection (and TLS handshake)
/// is up and the call has started, waiting at most `timeout_ms` for that; the
/// peer may come later. A router that refuses the token answers at the first
/// `jw_stream_receive` or `jw_stream_send` with `JW_ERR_UNAUTHENTICATED`.
/// `JW_ERR_CONNECTION` if the router cannot be reached or its certificate is
/// refused; `JW_ERR_INVALID_ARGUMENT` if `ca` cannot be read.
#[unsafe(no_mangle)]
pub extern "C" fn jw_router_connect(
    router_url: *const c_char,
    token: *const c_char,
    timeout_ms: c_int,
    out: *mut *mut jw_stream,
) -> jw_status {
    boundary(|| {
        check_out(out)?;
        let url = str_in(router_url, "router_url")?;
        let token = str_in(token, "token")?;
        let t = timeout(timeout_ms)?;
        ok(arc_out(out, router::connect(url, token, t)?))
    })
}

/// The exporter side of a routed stream: opens a stream through the router
/// at `router_url` (as for `jw_router_connect`, `grpc://` or `grpcs://`) with
/// `token`, opens a stream of `target` (borrowed), and forwards both
/// ways, half-close propagated, until both directions have ended (`JW_OK`) or
/// either side fails. `timeout_ms` bounds each step before forwarding: the
/// TCP (and TLS) connect to the router, its HTTP/2 handshake, the connect to
/// the target and the wait for the client to dial the same token (then
/// `JW_TIMEOUT`); forwarding has no time limit. A target that refuses or
/// resets ends the export with `JW_ERR_CONNECTION`, and the client's stream
/// fails with `JW_ERR_CONNECTION` too (never a clean end). Blocks the calling
/// thread throughout; `target` must not be freed before this returns.
/// Thread-safe: several exports may run at once, with the same `target`
/// too.
#[unsafe(no_mangle)]
pub extern "C" fn jw_router_export(
    router_url: *const c_char,
    token: *const c_char,
    target: *const jw_network,
    timeout_ms: c_int,
) -> jw_status {
    boundary(|| {
        let url = str_in(router_url, "router_url")?;
        let token = str_in(token, "token")?;
        let target = box_ref(target)?;
        let t = timeout(timeout_ms)?;
        ok(router::export(url, token, target, t))
    })
}
