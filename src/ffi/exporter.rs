//! The C side of exporting: a session served through a lab
//! (`jw_exporter_*`, [`LabExporter`]) and the stoppable router export
//! (`jw_router_export_start`/`_close`, [`Exporting`]).

use super::boundary::{
    Handle, Registry, SlotHandle, Slotted, boundary, boundary_void, box_ref, check_out, ok,
    slot_get, slot_out, slot_take, str_in,
};
use super::error::jw_status;
use super::network::jw_network;
use super::session::jw_session;
use crate::network::Network;
use crate::router::Exporting;
use crate::session::LabExporter;
use std::ffi::c_char;
use std::path::Path;
use std::sync::Arc;

/// A session served through a lab's controller (`jw_exporter_start`).
/// Thread rules: `jw_exporter_close` once, from any thread but a jumpwire
/// callback (it waits for the goodbye and joins the exporter's threads).
pub struct jw_exporter {
    _private: [u8; 0],
}

impl Handle for jw_exporter {
    type Rust = LabExporter;
    type Ownership = Slotted;
    const NAME: &'static str = "exporter";
}

impl SlotHandle for jw_exporter {
    fn registry() -> &'static Registry<LabExporter> {
        static EXPORTERS: Registry<LabExporter> = Registry::new();
        &EXPORTERS
    }
}

/// A router export serving one pairing after another
/// (`jw_router_export_start`). Thread rules: `jw_router_export_running`
/// from any thread at any time; `jw_router_export_close` once, from any
/// thread.
pub struct jw_router_exporter {
    _private: [u8; 0],
}

impl Handle for jw_router_exporter {
    type Rust = Exporting;
    type Ownership = Slotted;
    const NAME: &'static str = "router export";
}

impl SlotHandle for jw_router_exporter {
    fn registry() -> &'static Registry<Exporting> {
        static EXPORTS: Registry<Exporting> = Registry::new();
        &EXPORTS
    }
}

/// Serves `session` through a Jumpstarter lab, as upstream's exporter
/// serves its drivers: reads the exporter configuration `config_path`
/// (upstream's `ExporterConfigV1Alpha1` YAML, `kind: ExporterConfig`:
/// `metadata.namespace`, `metadata.name`, `endpoint`, `token`, `tls.ca`,
/// `tls.insecure`; its `export` tree and `grpcOptions` are not read, the
/// session gives the drivers), or with `config_path` NULL the variables
/// `JMP_NAMESPACE`, `JMP_NAME`, `JMP_ENDPOINT`, `JMP_TOKEN`, `JMP_TLS` (the
/// environment also fills what a file leaves out; `JMP_GRPC_INSECURE=1`
/// skips verifying the lab's certificate). Registers the session's
/// drivers with the controller (`Register`, then status `AVAILABLE`) and
/// returns once registered (within 30 s); then, on a thread of its own,
/// follows the lease status: while leased it listens for the lease's
/// clients (status `LEASE_READY`) and serves the session to each of them
/// over a router stream (the router and token the controller names); a
/// lease's end ends its clients' connections and reports `AVAILABLE`; a
/// lost controller is reached again. `session` stays the caller's: it must
/// not be closed before `jw_exporter_close`. Errors: `JW_ERR_INVALID_ARGUMENT`
/// (NULL session or `out`, a configuration unreadable or missing a field),
/// `JW_ERR_UNAUTHENTICATED` (the controller refused the token),
/// `JW_ERR_CONNECTION` / `JW_TIMEOUT` (controller unreachable).
#[unsafe(no_mangle)]
pub extern "C" fn jw_exporter_start(
    config_path: *const c_char,
    session: *const jw_session,
    out: *mut *mut jw_exporter,
) -> jw_status {
    boundary(|| {
        check_out(out)?;
        let path = if config_path.is_null() {
            None
        } else {
            Some(str_in(config_path, "config_path")?)
        };
        let session = slot_get(session)?;
        ok(slot_out(
            out,
            LabExporter::start(path.map(Path::new), session)?,
        ))
    })
}

/// Stops the exporter `e` and frees it: the lease's clients' connections
/// end, the controller is told `OFFLINE` and the exporter unregisters
/// (`Exporter shutdown`; at most 10 s), and every thread of the exporter
/// is joined. NULL or a closed handle does nothing. Call it before
/// `jw_session_close` of its session.
#[unsafe(no_mangle)]
pub extern "C" fn jw_exporter_close(e: *mut jw_exporter) {
    boundary_void(|| {
        if let Some(e) = slot_take(e) {
            e.close();
        }
    })
}

/// Exports `target` through the router at `router_url` with `token`, as
/// `jw_router_export` does, one pairing after another (the next waits for
/// the next client), on a thread of its own, until
/// `jw_router_export_close`. A pairing that fails is followed by the next;
/// a token the router refuses, or a target that is unsupported or disabled,
/// ends the loop (`jw_router_export_running` then says 0). The network is
/// copied: the caller may free `target` after. Errors:
/// `JW_ERR_INVALID_ARGUMENT` (NULL argument, not a `grpc://`/`grpcs://`
/// URL, empty token).
#[unsafe(no_mangle)]
pub extern "C" fn jw_router_export_start(
    router_url: *const c_char,
    token: *const c_char,
    target: *const jw_network,
    out: *mut *mut jw_router_exporter,
) -> jw_status {
    boundary(|| {
        check_out(out)?;
        let url = str_in(router_url, "router_url")?;
        let token = str_in(token, "token")?;
        let target: &Network = box_ref(target)?;
        let exporting = Exporting::start(url, token, Arc::new(target.clone()))?;
        ok(slot_out(out, exporting))
    })
}

/// 1 while the export `x` serves pairings, 0 once its loop has ended (a
/// refused token, an unsupported target) or for NULL or a closed handle.
#[unsafe(no_mangle)]
pub extern "C" fn jw_router_export_running(x: *const jw_router_exporter) -> i32 {
    let mut running = 0;
    boundary_void(|| {
        if let Ok(x) = slot_get(x) {
            running = i32::from(x.running());
        }
    });
    running
}

/// Stops the export `x` and frees it: a pairing waited for or in progress
/// ends at once (its client's stream fails), and the export's thread is
/// joined. NULL or a closed handle does nothing.
#[unsafe(no_mangle)]
pub extern "C" fn jw_router_export_close(x: *mut jw_router_exporter) {
    boundary_void(|| {
        if let Some(x) = slot_take(x) {
            x.close();
        }
    })
}
