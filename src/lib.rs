//! jumpwire: the network-stream layer of a hardware-in-the-loop lab, as a
//! library with a C ABI and a blocking Rust API.
//!
//! A harness opens a [`Stream`] to a device over TCP, UDP, a Unix socket, vsock,
//! a D-Bus bus or the in-memory echo driver, all named by one URL (see [`url`]);
//! moves bytes both ways with timeouts; and forwards local ports onto such
//! streams ([`forward`]). Every call blocks, bounded by a timeout. Socket streams
//! do their I/O on the caller's thread; transports with threads of their own
//! hand data over on `crossbeam-channel` queues.
//!
//! ```
//! use jumpwire::network::Network;
//! use jumpwire::forward::Listener;
//! use std::time::Duration;
//!
//! // Forward a local TCP port onto the echo driver, then talk through it.
//! let listener = Listener::bind("tcp://127.0.0.1:0", &Network::new("echo:")?)?;
//! let s = jumpwire::connect(listener.address(), Some(Duration::from_secs(5)))?;
//! s.send(b"ping", None)?;
//! let mut buf = [0u8; 4];
//! let n = s.receive(&mut buf, Some(Duration::from_secs(5)))?.unwrap();
//! assert_eq!(&buf[..n], b"ping");
//! # Ok::<(), jumpwire::Error>(())
//! ```
//!
//! The C API (`include/jumpwire.h`) is a thin layer over this crate; see the
//! `ffi` module.

#![warn(
    missing_docs,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks
)]

mod acceptor;
pub mod error;
pub mod ffi;
pub mod forward;
#[doc(hidden)]
pub mod fuzzing;
mod logging;
pub mod network;
mod relay;
pub mod router;
pub mod session;
mod socket;
pub mod stream;
mod sys;
mod tls;
pub mod url;
mod util;
pub mod websocket;

/// What the `jumpwire` command (`src/bin/jumpwire/`, a crate target of its
/// own that sees only public items) needs from the crate's private parts:
/// stopping on `SIGINT`/`SIGTERM` by waiting for them on one thread. Not
/// part of the API.
#[doc(hidden)]
pub mod cli_support {
    pub use crate::sys::{block_stop_signals, wait_stop_signal};
}

pub use error::{Error, Result};
pub use network::{Network, connect};
pub use stream::Stream;
