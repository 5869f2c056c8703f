//! Listen targets: [`ListenEndpoint`] and the options of each listener.

use super::query::{OptKind, OptWriter, parse_options, protocol_ok};
use super::syntax::{HostFmt, parse_authority, parse_port, split_net, split_scheme};
use super::{Ctx, UnixPath, missing_scheme, parse_unix};
use crate::error::Result;
use std::path::PathBuf;

/// A parsed listen URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenEndpoint {
    /// `tcp://HOST:PORT[?max_connections=N]` (port 0 picks a free port).
    Tcp {
        /// Address to bind, without brackets for IPv6.
        host: String,
        /// Port to bind; 0 picks a free one.
        port: u16,
        /// Limits set in the query.
        options: TcpListenOptions,
    },
    /// `unix:/PATH`, `unix:///PATH`, `unix:@NAME`.
    Unix(UnixPath),
    /// `ws://HOST:PORT[/PATH][?OPTIONS]`: a websocket server (or bridge).
    Websocket {
        /// Address to bind, without brackets for IPv6.
        host: String,
        /// Port to bind; 0 picks a free one.
        port: u16,
        /// Limits set in the query.
        options: WebsocketListenOptions,
    },
    /// `grpc://HOST:PORT?key=SECRET`, `grpcs://HOST:PORT?key=SECRET[&cert=FILE&key_file=FILE]`.
    Router(RouterListenConfig),
}

/// Limits of a forwarding listener on TCP, set in its listen URL's query:
/// `tcp://127.0.0.1:0?max_connections=100`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpListenOptions {
    /// `max_connections`: forwarded connections open at once (default 1024,
    /// at least 1). Each holds a thread, a target stream and about six
    /// descriptors; one more is refused: counted, logged and reset.
    pub max_connections: usize,
}

impl Default for TcpListenOptions {
    fn default() -> TcpListenOptions {
        TcpListenOptions {
            max_connections: 1024,
        }
    }
}

/// Limits and handshake policy of a websocket server (or bridge), set in its
/// listen URL's query:
/// `ws://127.0.0.1:0?max_message=1048576&max_frame=65536&max_connections=100&max_handshakes=16&handshake_timeout_ms=2000&queue=64&protocols=binary,base64&origins=https://lab.example`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebsocketListenOptions {
    /// `max_message`: largest message accepted from a client, in bytes
    /// (default 16 MiB); a larger one is refused with close code 1009.
    pub max_message: usize,
    /// `max_frame`: largest single frame accepted, in bytes (default 16 MiB).
    pub max_frame: usize,
    /// `max_connections`: connections served at once, handshake done
    /// (default 1024); more are answered with HTTP 503.
    pub max_connections: usize,
    /// `max_handshakes`: connections still in their handshake at once,
    /// counted apart from served ones (default 64). When they are all taken,
    /// a new connection ends the oldest of them, so that clients that never
    /// finish a handshake cannot lock real ones out.
    pub max_handshakes: usize,
    /// `handshake_timeout_ms`: time a client has for its handshake (default
    /// 10000).
    pub handshake_timeout_ms: u64,
    /// `queue`: broadcast messages queued per connection before the
    /// connection counts as too slow and is dropped (default 1024).
    pub queue: usize,
    /// `protocols`: the subprotocols answered, in order of preference
    /// (default `binary`, what noVNC offers: every message the server sends
    /// is binary). The first of the client's offers (`Sec-WebSocket-Protocol`)
    /// that is in this list is answered; if none is, none is answered.
    /// `protocols=` (empty) answers none.
    pub protocols: Vec<String>,
    /// `origins`: the `Origin` values allowed (e.g.
    /// `http://a.example,https://b.example:8443`); a request with another
    /// `Origin`, or none, is refused with HTTP 403. Absent: any origin.
    pub origins: Option<Vec<String>>,
}

impl Default for WebsocketListenOptions {
    fn default() -> WebsocketListenOptions {
        WebsocketListenOptions {
            max_message: 16 << 20,
            max_frame: 16 << 20,
            max_connections: 1024,
            max_handshakes: 64,
            handshake_timeout_ms: 10_000,
            queue: 1024,
            protocols: vec!["binary".to_string()],
            origins: None,
        }
    }
}

/// Router server configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct RouterListenConfig {
    /// Address to bind, without brackets for IPv6.
    pub host: String,
    /// Port to bind; 0 picks a free one.
    pub port: u16,
    /// `grpcs://`.
    pub tls: bool,
    /// `?key=SECRET`: the HMAC key that signs stream tokens (required).
    pub key: String,
    /// `?cert=FILE`: PEM certificate chain (TLS only).
    pub cert: Option<PathBuf>,
    /// `?key_file=FILE`: PEM private key (TLS only).
    pub key_file: Option<PathBuf>,
}

impl std::fmt::Debug for RouterListenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterListenConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("key", &"<secret>")
            .field("cert", &self.cert)
            .field("key_file", &self.key_file)
            .finish()
    }
}

/// The listen schemes, as error messages list them.
const LISTEN_SCHEMES: &str = "tcp, unix, ws, grpc, grpcs";

impl ListenEndpoint {
    /// Parses a listen URL. No I/O happens here.
    ///
    /// The scheme is matched case-insensitively. Every failure is an
    /// [`Error::InvalidArgument`] whose message starts with the URL passed
    /// through [`redact`], so the router key never appears in it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the scheme cannot listen or any part of
    /// the URL (host, port, path, option) is malformed.
    ///
    /// [`Error::InvalidArgument`]: crate::Error::InvalidArgument
    /// [`redact`]: super::redact
    pub fn parse(url: &str) -> Result<ListenEndpoint> {
        let Some((scheme, rest)) = split_scheme(url) else {
            return Err(missing_scheme(url, LISTEN_SCHEMES));
        };
        let cx = Ctx {
            url,
            scheme: &scheme,
        };
        match scheme.as_str() {
            "tcp" => parse_tcp_listen(&cx, rest),
            "unix" => parse_unix(&cx, rest).map(ListenEndpoint::Unix),
            "ws" => parse_ws_listen(&cx, rest),
            "grpc" | "grpcs" => parse_router_listen(&cx, rest).map(ListenEndpoint::Router),
            _ => Err(cx.err(format_args!(
                "{scheme:?} is not a listen scheme (expected {LISTEN_SCHEMES})"
            ))),
        }
    }
}

impl std::fmt::Display for ListenEndpoint {
    /// Writes the scheme and address. Never writes the router key (nor the
    /// router's certificate files).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenEndpoint::Tcp {
                host,
                port,
                options,
            } => {
                write!(f, "tcp://{}:{port}", HostFmt(host))?;
                if *options != TcpListenOptions::default() {
                    let n = options.max_connections.to_string();
                    OptWriter::new('?').write(f, "max_connections", &n)?;
                }
                Ok(())
            }
            ListenEndpoint::Unix(p) => write!(f, "{p}"),
            ListenEndpoint::Websocket {
                host,
                port,
                options,
            } => {
                write!(f, "ws://{}:{port}/", HostFmt(host))?;
                let d = WebsocketListenOptions::default();
                let mut w = OptWriter::new('?');
                let counts = [
                    (
                        "max_message",
                        options.max_message as u64,
                        d.max_message as u64,
                    ),
                    ("max_frame", options.max_frame as u64, d.max_frame as u64),
                    (
                        "max_connections",
                        options.max_connections as u64,
                        d.max_connections as u64,
                    ),
                    (
                        "handshake_timeout_ms",
                        options.handshake_timeout_ms,
                        d.handshake_timeout_ms,
                    ),
                    ("queue", options.queue as u64, d.queue as u64),
                    (
                        "max_handshakes",
                        options.max_handshakes as u64,
                        d.max_handshakes as u64,
                    ),
                ];
                for (name, value, default) in counts {
                    if value != default {
                        w.write(f, name, &value.to_string())?;
                    }
                }
                if options.protocols != d.protocols {
                    w.write(f, "protocols", &options.protocols.join(","))?;
                }
                if let Some(origins) = &options.origins {
                    w.write(f, "origins", &origins.join(","))?;
                }
                Ok(())
            }
            ListenEndpoint::Router(c) => {
                let scheme = if c.tls { "grpcs" } else { "grpc" };
                write!(f, "{scheme}://{}:{}", HostFmt(&c.host), c.port)
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Schemes
// ---------------------------------------------------------------------------

/// `tcp://HOST:PORT[?max_connections=N]`: port 0..=65535, no path or fragment.
fn parse_tcp_listen(cx: &Ctx<'_>, rest: &str) -> Result<ListenEndpoint> {
    const FORM: &str = "tcp://HOST:PORT";
    let parts = split_net(cx, rest, FORM)?;
    let (host, port) = parse_authority(cx, parts.authority)?;
    let port = parse_port(cx, port, FORM, 0)?;
    parts.no_path(cx, FORM)?;
    parts.no_fragment(cx)?;
    let opts = parse_options(
        cx,
        parts.query,
        &[("max_connections", OptKind::Count)],
        "tcp:// listen URL",
    )?;
    let mut options = TcpListenOptions::default();
    if let Some(n) = opts.count(cx, "max_connections")? {
        options.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
    }
    Ok(ListenEndpoint::Tcp {
        host,
        port,
        options,
    })
}

const WS_LISTEN_OPTIONS: &[(&str, OptKind)] = &[
    ("max_message", OptKind::Count),
    ("max_frame", OptKind::Count),
    ("max_connections", OptKind::Count),
    ("max_handshakes", OptKind::Count),
    ("handshake_timeout_ms", OptKind::Count),
    ("queue", OptKind::Count),
    ("protocols", OptKind::List),
    ("origins", OptKind::List),
];

/// An origin as browsers send it: `scheme://host[:port]`, or `null`.
fn origin_ok(o: &str) -> std::result::Result<(), &'static str> {
    let visible = o.bytes().all(|b| b.is_ascii_graphic());
    if visible
        && (o == "null"
            || o.split_once("://")
                .is_some_and(|(s, h)| !s.is_empty() && !h.is_empty()))
    {
        Ok(())
    } else {
        Err("is not an origin (expected SCHEME://HOST[:PORT] or null)")
    }
}

/// `ws://HOST:PORT[/PATH][?OPTIONS]`: port 0..=65535, no fragment. The server
/// answers upgrades on any path, so the path is accepted and not kept.
fn parse_ws_listen(cx: &Ctx<'_>, rest: &str) -> Result<ListenEndpoint> {
    const FORM: &str = "ws://HOST:PORT[/PATH][?OPTIONS]";
    let parts = split_net(cx, rest, FORM)?;
    let (host, port) = parse_authority(cx, parts.authority)?;
    let port = parse_port(cx, port, FORM, 0)?;
    parts.no_fragment(cx)?;
    let opts = parse_options(cx, parts.query, WS_LISTEN_OPTIONS, "ws:// listen URL")?;
    let d = WebsocketListenOptions::default();
    let size = |name: &str, default: usize| -> Result<usize> {
        Ok(opts.count(cx, name)?.map_or(default, |n| n as usize))
    };
    let options = WebsocketListenOptions {
        max_message: size("max_message", d.max_message)?,
        max_frame: size("max_frame", d.max_frame)?,
        max_connections: size("max_connections", d.max_connections)?,
        max_handshakes: size("max_handshakes", d.max_handshakes)?,
        handshake_timeout_ms: opts
            .count(cx, "handshake_timeout_ms")?
            .unwrap_or(d.handshake_timeout_ms),
        queue: size("queue", d.queue)?,
        protocols: opts
            .list(cx, "protocols", protocol_ok)?
            .unwrap_or(d.protocols),
        origins: opts.list(cx, "origins", origin_ok)?,
    };
    Ok(ListenEndpoint::Websocket {
        host,
        port,
        options,
    })
}

const ROUTER_LISTEN_OPTIONS: &[(&str, OptKind)] = &[
    ("key", OptKind::Secret),
    ("cert", OptKind::Path),
    ("key_file", OptKind::Path),
];

fn parse_router_listen(cx: &Ctx<'_>, rest: &str) -> Result<RouterListenConfig> {
    let tls = cx.scheme == "grpcs";
    let form = if tls {
        "grpcs://HOST:PORT?key=SECRET[&cert=FILE&key_file=FILE]"
    } else {
        "grpc://HOST:PORT?key=SECRET"
    };
    let parts = split_net(cx, rest, form)?;
    let (host, port) = parse_authority(cx, parts.authority)?;
    let port = parse_port(cx, port, form, 0)?;
    parts.no_path(cx, form)?;
    parts.no_fragment(cx)?;
    let what = format!("{}:// listen URL", cx.scheme);
    let opts = parse_options(cx, parts.query, ROUTER_LISTEN_OPTIONS, &what)?;
    if !tls {
        opts.tls_only(cx, &["cert", "key_file"], "grpcs")?;
    }
    let Some(key) = opts.non_empty(cx, "key", OptKind::Secret)? else {
        return Err(cx.err(format_args!("option key is required (expected {form})")));
    };
    let cert = opts.path(cx, "cert")?;
    let key_file = opts.path(cx, "key_file")?;
    match (&cert, &key_file) {
        (Some(_), None) => Err(cx.err("option cert needs key_file too (give both or neither)")),
        (None, Some(_)) => Err(cx.err("option key_file needs cert too (give both or neither)")),
        _ => Ok(RouterListenConfig {
            host,
            port,
            tls,
            key,
            cert,
            key_file,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url::tests::{message, unix_path};

    fn router_listen(
        host: &str,
        port: u16,
        tls: bool,
        key: &str,
        files: Option<(&str, &str)>,
    ) -> ListenEndpoint {
        ListenEndpoint::Router(RouterListenConfig {
            host: host.into(),
            port,
            tls,
            key: key.into(),
            cert: files.map(|(c, _)| PathBuf::from(c)),
            key_file: files.map(|(_, k)| PathBuf::from(k)),
        })
    }

    #[test]
    fn listen_urls_parse() {
        let cases: Vec<(&str, ListenEndpoint)> = vec![
            (
                "tcp://127.0.0.1:0",
                ListenEndpoint::Tcp {
                    host: "127.0.0.1".into(),
                    port: 0,
                    options: TcpListenOptions::default(),
                },
            ),
            (
                "tcp://127.0.0.1:0?max_connections=7",
                ListenEndpoint::Tcp {
                    host: "127.0.0.1".into(),
                    port: 0,
                    options: TcpListenOptions { max_connections: 7 },
                },
            ),
            (
                "TCP://[::]:8080",
                ListenEndpoint::Tcp {
                    host: "::".into(),
                    port: 8080,
                    options: TcpListenOptions::default(),
                },
            ),
            (
                "tcp://localhost:65535?",
                ListenEndpoint::Tcp {
                    host: "localhost".into(),
                    port: 65535,
                    options: TcpListenOptions::default(),
                },
            ),
            (
                "unix:/run/x.sock",
                ListenEndpoint::Unix(unix_path("/run/x.sock")),
            ),
            (
                "unix:///run/x.sock",
                ListenEndpoint::Unix(unix_path("/run/x.sock")),
            ),
            (
                "unix:@n",
                ListenEndpoint::Unix(UnixPath::Abstract("n".into())),
            ),
            ("unix:rel.sock", ListenEndpoint::Unix(unix_path("rel.sock"))),
            (
                "ws://127.0.0.1:0",
                ListenEndpoint::Websocket {
                    host: "127.0.0.1".into(),
                    port: 0,
                    options: WebsocketListenOptions::default(),
                },
            ),
            (
                "ws://127.0.0.1:0/",
                ListenEndpoint::Websocket {
                    host: "127.0.0.1".into(),
                    port: 0,
                    options: WebsocketListenOptions::default(),
                },
            ),
            (
                "WS://[::1]:9/some/path",
                ListenEndpoint::Websocket {
                    host: "::1".into(),
                    port: 9,
                    options: WebsocketListenOptions::default(),
                },
            ),
            (
                "ws://h:1/?",
                ListenEndpoint::Websocket {
                    host: "h".into(),
                    port: 1,
                    options: WebsocketListenOptions::default(),
                },
            ),
            (
                "ws://h:1/p?max_message=1000&max_frame=100&max_connections=5&handshake_timeout_ms=250&queue=7",
                ListenEndpoint::Websocket {
                    host: "h".into(),
                    port: 1,
                    options: WebsocketListenOptions {
                        max_message: 1000,
                        max_frame: 100,
                        max_connections: 5,
                        handshake_timeout_ms: 250,
                        queue: 7,
                        ..WebsocketListenOptions::default()
                    },
                },
            ),
            (
                "ws://h:1?max_handshakes=3&protocols=binary,%20base64&origins=http://a,https://b:8443",
                ListenEndpoint::Websocket {
                    host: "h".into(),
                    port: 1,
                    options: WebsocketListenOptions {
                        max_handshakes: 3,
                        protocols: vec!["binary".into(), "base64".into()],
                        origins: Some(vec!["http://a".into(), "https://b:8443".into()]),
                        ..WebsocketListenOptions::default()
                    },
                },
            ),
            (
                "ws://h:1?protocols=",
                ListenEndpoint::Websocket {
                    host: "h".into(),
                    port: 1,
                    options: WebsocketListenOptions {
                        protocols: Vec::new(),
                        ..WebsocketListenOptions::default()
                    },
                },
            ),
            (
                "grpc://127.0.0.1:0?key=S",
                router_listen("127.0.0.1", 0, false, "S", None),
            ),
            (
                "GRPC://h:1?key=a%3Db%2B%25",
                router_listen("h", 1, false, "a=b+%", None),
            ),
            (
                "grpc://h:1?key=a=b",
                router_listen("h", 1, false, "a=b", None),
            ),
            ("grpcs://h:1?key=S", router_listen("h", 1, true, "S", None)),
            (
                "grpcs://[::]:443?cert=/c.pem&key=a%26b&key_file=/k.pem",
                router_listen("::", 443, true, "a&b", Some(("/c.pem", "/k.pem"))),
            ),
        ];
        for (url, want) in cases {
            assert_eq!(ListenEndpoint::parse(url), Ok(want), "{url}");
        }
    }

    #[test]
    fn listen_errors_say_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            (
                "",
                "empty URL: missing scheme (expected tcp, unix, ws, grpc, grpcs)",
            ),
            (
                "/tmp/x",
                "/tmp/x: missing scheme (expected tcp, unix, ws, grpc, grpcs)",
            ),
            (
                "udp://h:1",
                "udp://h:1: \"udp\" is not a listen scheme (expected tcp, unix, ws, grpc, grpcs)",
            ),
            ("wss://h:1", "\"wss\" is not a listen scheme"),
            ("echo:", "\"echo\" is not a listen scheme"),
            ("vsock://1:2", "\"vsock\" is not a listen scheme"),
            ("dbus:system", "\"dbus\" is not a listen scheme"),
            ("frob://x", "\"frob\" is not a listen scheme"),
            // tcp
            ("tcp://h", "port is missing (expected tcp://HOST:PORT)"),
            ("tcp://:0", "host is missing"),
            ("tcp://h:65536", "port \"65536\" is out of range (0-65535)"),
            ("tcp://::1:0", "an IPv6 address must be in brackets"),
            ("tcp://h:1/x", "takes no path"),
            ("tcp://h:1#x", "takes no fragment"),
            (
                "tcp://h:1?nodelay=0",
                "unknown option \"nodelay\" (expected max_connections)",
            ),
            (
                "tcp://h:1?max_connections=0",
                "option max_connections: expected a whole number from 1",
            ),
            // unix
            ("unix:", "path is empty"),
            ("unix:/x?mode=0600", "takes no options"),
            // ws
            (
                "ws://h",
                "port is missing (expected ws://HOST:PORT[/PATH][?OPTIONS])",
            ),
            ("ws://h:x", "port \"x\" is not a decimal number"),
            (
                "ws://h:1?x=1",
                "unknown option \"x\" (expected max_message, max_frame, max_connections, max_handshakes, handshake_timeout_ms, queue, protocols, origins)",
            ),
            (
                "ws://h:1?protocols=bin%20ary",
                "option protocols: \"bin ary\" is not a subprotocol name",
            ),
            ("ws://h:1?protocols=a,,b", "option protocols: empty item"),
            (
                "ws://h:1?origins=example.com",
                "option origins: \"example.com\" is not an origin",
            ),
            (
                "ws://h:1?max_handshakes=0",
                "option max_handshakes: expected",
            ),
            (
                "ws://h:1?queue=0",
                "option queue: expected a whole number from 1 to 1073741824, got \"0\"",
            ),
            (
                "ws://h:1?max_message=-1",
                "option max_message: expected a whole number from 1 to 1073741824",
            ),
            (
                "ws://h:1?max_frame=1073741825",
                "option max_frame: expected a whole number",
            ),
            (
                "ws://h:1?max_connections=+5",
                "option max_connections: expected",
            ),
            (
                "ws://h:1?queue=1&queue=2",
                "option queue is given more than once",
            ),
            ("ws://h:1#ca=/x", "takes no fragment"),
            // router
            (
                "grpc://h:0",
                "grpc://h:0: option key is required (expected grpc://HOST:PORT?key=SECRET)",
            ),
            (
                "grpcs://h:0",
                "option key is required (expected grpcs://HOST:PORT?key=SECRET[&cert=FILE&key_file=FILE])",
            ),
            (
                "grpc://h:0?key=",
                "option key: value is empty (expected a non-empty secret)",
            ),
            (
                "grpc://h:0?key",
                "option key: missing \"=VALUE\" (expected a non-empty secret)",
            ),
            ("grpc://h", "port is missing"),
            (
                "grpc://h:0?key=S&cert=/c&key_file=/k",
                "option cert is only valid on grpcs://",
            ),
            (
                "grpc://h:0?key=S&key_file=/k",
                "option key_file is only valid on grpcs://",
            ),
            (
                "grpcs://h:0?key=S&cert=/c",
                "option cert needs key_file too (give both or neither)",
            ),
            (
                "grpcs://h:0?key=S&key_file=/k",
                "option key_file needs cert too (give both or neither)",
            ),
            (
                "grpcs://h:0?key=S&cert=&key_file=/k",
                "option cert: value is empty (expected a file path)",
            ),
            (
                "grpc://h:0?key=a&key=b",
                "option key is given more than once",
            ),
            ("grpc://h:0?key=S%zz", "option key: invalid percent escape"),
            (
                "grpc://h:0?key=S#x",
                "takes no fragment (write a '#' inside an option value as %23)",
            ),
            (
                "grpc://h:0?secret=S",
                "unknown option \"secret\" (expected key, cert, key_file)",
            ),
            ("grpc://h:0/p?key=S", "takes no path"),
        ];
        for (url, want) in cases {
            let got = message(ListenEndpoint::parse(url));
            assert!(got.contains(want), "{url:?}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn listen_display_is_canonical() {
        let cases: &[(&str, &str)] = &[
            ("tcp://127.0.0.1:0", "tcp://127.0.0.1:0"),
            ("tcp://[::]:0", "tcp://[::]:0"),
            ("unix:///run/x", "unix:/run/x"),
            ("unix:@n", "unix:@n"),
            ("ws://127.0.0.1:0", "ws://127.0.0.1:0/"),
            ("tcp://h:1?max_connections=1024", "tcp://h:1"),
            ("tcp://h:1?max_connections=9", "tcp://h:1?max_connections=9"),
            ("ws://h:1/x/y", "ws://h:1/"),
            (
                "ws://h:1?queue=5&max_message=1024",
                "ws://h:1/?max_message=1024&queue=5",
            ),
            ("grpc://127.0.0.1:0?key=S", "grpc://127.0.0.1:0"),
            (
                "grpcs://[::1]:1?key=S&cert=/c&key_file=/k",
                "grpcs://[::1]:1",
            ),
        ];
        for (url, want) in cases {
            assert_eq!(
                ListenEndpoint::parse(url).unwrap().to_string(),
                *want,
                "{url}"
            );
        }
    }

    #[test]
    fn listen_display_round_trips_without_key() {
        for url in [
            "tcp://127.0.0.1:0",
            "tcp://[::1]:80",
            "tcp://[::1]:80?max_connections=3",
            "unix:/x",
            "unix:@y",
            "ws://h:0/p",
            "ws://h:0?max_frame=9&handshake_timeout_ms=1",
            "ws://h:0?max_handshakes=2&protocols=&origins=null,http://a:1",
            "ws://h:0?protocols=base64,binary",
        ] {
            let parsed = ListenEndpoint::parse(url).unwrap();
            assert_eq!(
                ListenEndpoint::parse(&parsed.to_string()),
                Ok(parsed),
                "{url}"
            );
        }
    }
}
