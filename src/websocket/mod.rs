//! Websockets: client streams (`ws://`, `wss://`), the server handshake over
//! any [`Stream`] ([`accept`]), and a [`Server`].
//!
//! The handshake uses `tungstenite`'s key helpers and `httparse`; frames are
//! read and written with tungstenite's frame header codec, directly on the
//! underlying byte stream (not through tungstenite's `WebSocket`), so that a
//! websocket stream keeps every property of [`Stream`]:
//! - a send builds one whole frame (header and masked payload) and hands it to
//!   the underlying stream's all-or-nothing `send`: frames never interleave,
//!   and a send that times out sent nothing;
//! - a receive parses frames on the caller's thread from the bytes the
//!   underlying stream delivers, keeping a partly received frame across calls
//!   (a timeout consumes nothing that is lost), and answers pings and close
//!   frames as it meets them;
//! - one thread may send while another receives (the underlying stream allows
//!   it; a pong goes out between two frames of the sender).
//!
//! No thread sits on the data path, so a round trip costs what it costs on the
//! socket plus the framing. Pings are answered while someone receives (as in
//! every blocking websocket library); a stream nobody reads from does not
//! answer pings.
//!
//! The pieces, as tungstenite splits them:
//! - `frame`: the frame codec on tungstenite's `FrameHeader`, `OpCode` and
//!   `CloseCode`, with our checks, limits and masking;
//! - `conn`: a connection ([`Limits`], the sending and receiving sides, the
//!   [`Stream`]'s transport, [`request_path`]);
//! - `counters`: a server's refusals and protocol violations, counted
//!   ([`RefusalStats`]);
//! - `handshake`: the client's ([`connect`](crate::connect) to `ws://` and
//!   `wss://`) and the server's ([`accept`]);
//! - `server`: [`Server`], a handler per connection and broadcasts;
//! - `bridge`: a `ws://` listener's connection to a stream of another
//!   network; `tls`: the TLS client streams of `wss://`.
//!
//! [`Stream`]: crate::Stream

pub(crate) mod bridge;
mod conn;
mod counters;
mod frame;
mod handshake;
mod server;
mod tls;

pub use conn::{DEFAULT_MAX_MESSAGE, Limits, request_path};
pub(crate) use conn::{Ws, wrap};
pub(crate) use counters::Counters;
pub use counters::RefusalStats;
pub(crate) use frame::Role;
pub use handshake::accept;
pub(crate) use handshake::{Policy, accept_shared, accept_with, connect};
pub(crate) use server::bind as bind_listener;
pub use server::{Handler, Server, ServerConfig};
