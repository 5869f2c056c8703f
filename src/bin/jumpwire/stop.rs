//! Stopping on `SIGINT` (Ctrl-C) or `SIGTERM`: the signals are blocked in
//! every thread (blocked first thing, so every thread started later inherits
//! the mask) and one thread waits for them with `sigwait`, handing each to
//! the command on a channel. No signal handler runs: the command closes what
//! it serves on its own thread, and exits 0.

use crate::Failure;
use crossbeam_channel::Receiver;
use jumpwire::cli_support::{block_stop_signals, wait_stop_signal};

/// A stop signal that came.
#[derive(Debug, Clone, Copy)]
pub struct Signal(i32);

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            libc::SIGINT => f.write_str("SIGINT"),
            libc::SIGTERM => f.write_str("SIGTERM"),
            n => write!(f, "signal {n}"),
        }
    }
}

/// Blocks the stop signals and starts the thread that waits for them. Call
/// it before any other thread starts (a thread started earlier would take
/// the signal and die of it).
pub fn signals() -> Result<Receiver<Signal>, Failure> {
    block_stop_signals().map_err(|e| Failure::Runtime(format!("blocking signals: {e}")))?;
    let (tx, rx) = crossbeam_channel::bounded(4);
    std::thread::Builder::new()
        .name("jw-signals".into())
        .spawn(move || {
            while let Ok(sig) = wait_stop_signal() {
                if tx.send(Signal(sig)).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| Failure::Runtime(format!("starting the signal thread: {e}")))?;
    Ok(rx)
}
