"""Python bindings (ctypes) for jumpwire, the network-stream layer of a
hardware-in-the-loop lab.

Every call blocks, bounded by a timeout in seconds (``None`` waits forever,
``0`` polls), and releases the GIL while it waits. Failures raise
:class:`Error` with the library's status and message; a timeout raises
:class:`Timeout` (also a :class:`TimeoutError`).

>>> import jumpwire
>>> with jumpwire.connect("echo:") as s:
...     s.send(b"ping")
...     s.recv(16)
b'ping'
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import threading
from pathlib import Path
from typing import Callable, Optional

__all__ = [
    "Error",
    "Timeout",
    "Stream",
    "Network",
    "Listener",
    "WsServer",
    "Router",
    "connect",
    "listen",
    "forward",
    "ws_serve",
    "router_serve",
    "router_token",
    "router_connect",
    "router_export",
    "version",
    "library_path",
]

# jw_status codes (include/jumpwire.h).
OK, EOF, TIMEOUT = 0, 1, 2
ERR_INVALID_ARGUMENT, ERR_IO, ERR_CONNECTION, ERR_CLOSED = -1, -2, -3, -4
ERR_UNSUPPORTED, ERR_PROTOCOL, ERR_UNAUTHENTICATED, ERR_DISABLED = -5, -6, -7, -8
ERR_TOO_LARGE, ERR_INTERNAL = -9, -99

_SONAMES = ("libjumpwire.so.0.1", "libjumpwire.so")


def _find_library() -> str:
    env = os.environ.get("JUMPWIRE_LIBRARY")
    if env:
        return env
    own = Path(__file__).with_name("lib")
    for name in _SONAMES:
        if (own / name).exists():
            return str(own / name)
    found = ctypes.util.find_library("jumpwire")
    return found or _SONAMES[0]


library_path = _find_library()
try:
    _lib = ctypes.CDLL(library_path)
except OSError as e:  # pragma: no cover - depends on the machine
    raise ImportError(
        f"jumpwire: cannot load the C library {library_path!r} ({e}); install it "
        "(scripts/install.sh PREFIX) or set JUMPWIRE_LIBRARY to libjumpwire.so"
    ) from e

_p = ctypes.c_void_p
_pp = ctypes.POINTER(ctypes.c_void_p)
_s = ctypes.c_char_p
_i = ctypes.c_int
_z = ctypes.c_size_t

HANDLER = ctypes.CFUNCTYPE(None, _p, _p)


def _sig(name, args, res=_i):
    f = getattr(_lib, name)
    f.argtypes = args
    f.restype = res
    return f


_last_error = _sig("jw_last_error", [], _s)
_status_str = _sig("jw_status_str", [_i], _s)
_version = _sig("jw_version", [], _s)
_network_new = _sig("jw_network_new", [_s, _pp])
_network_router = _sig("jw_network_router", [_s, _s, _pp])
_network_connect = _sig("jw_network_connect", [_p, _i, _pp])
_network_address = _sig("jw_network_address", [_p, _s, _z])
_network_free = _sig("jw_network_free", [_p], None)
_connect = _sig("jw_connect", [_s, _i, _pp])
_send = _sig("jw_stream_send", [_p, _p, _z, _i])
_receive = _sig("jw_stream_receive", [_p, _p, _z, ctypes.POINTER(_z), _i])
_send_eof = _sig("jw_stream_send_eof", [_p])
_flush = _sig("jw_stream_flush", [_p, _i])
_close = _sig("jw_stream_close", [_p], None)
_forward = _sig("jw_forward", [_p, _p])
_listen = _sig("jw_listen", [_s, _p, _pp])
_listener_address = _sig("jw_listener_address", [_p, _s, _z])
_listener_close = _sig("jw_listener_close", [_p], None)
_ws_serve = _sig("jw_ws_serve", [_s, HANDLER, _p, _pp])
_ws_address = _sig("jw_ws_server_address", [_p, _s, _z])
_ws_broadcast = _sig("jw_ws_broadcast", [_p, _p, _z])
_ws_close = _sig("jw_ws_server_close", [_p], None)
_ws_path = _sig("jw_ws_path", [_p, _s, _z])
_router_serve = _sig("jw_router_serve", [_s, _pp])
_router_address = _sig("jw_router_address", [_p, _s, _z])
_router_certificate = _sig("jw_router_certificate", [_p], _s)
_router_close = _sig("jw_router_close", [_p], None)
_router_token = _sig("jw_router_token", [_s, _s, _i, _s, _z])
_router_connect = _sig("jw_router_connect", [_s, _s, _i, _pp])
_router_export = _sig("jw_router_export", [_s, _s, _p, _i])


class _StreamStats(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in ("bytes_sent", "bytes_received", "messages_sent", "messages_received")]


class _ServerStats(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in ("accepted", "active", "refused", "bytes_received", "bytes_sent")]


_stream_stats = _sig("jw_stream_stats", [_p, ctypes.POINTER(_StreamStats)])
_listener_stats = _sig("jw_listener_stats", [_p, ctypes.POINTER(_ServerStats)])
_ws_stats = _sig("jw_ws_server_stats", [_p, ctypes.POINTER(_ServerStats)])
_router_stats = _sig("jw_router_stats", [_p, ctypes.POINTER(_ServerStats)])


def _stats(call, handle, struct) -> dict:
    out = struct()
    _check(call(handle, ctypes.byref(out)))
    return {name: getattr(out, name) for name, _ in struct._fields_}


class Error(Exception):
    """A failed call: ``status`` is the jw_status code, ``message`` the
    library's message (``jw_last_error``)."""

    def __init__(self, status: int, message: str):
        self.status = status
        self.message = message
        name = _status_str(status).decode()
        super().__init__(f"{name} ({status}): {message}" if message else f"{name} ({status})")


class Timeout(Error, TimeoutError):
    """The timeout passed before the call could complete; nothing was sent or
    consumed, and the call may be repeated."""


def _check(status: int) -> int:
    if status == OK or status == EOF:
        return status
    if status == TIMEOUT:
        raise Timeout(status, "")
    raise Error(status, _last_error().decode(errors="replace"))


def _ms(timeout: Optional[float]) -> int:
    """Seconds (None = forever) as the C API's timeout_ms."""
    if timeout is None:
        return -1
    if timeout <= 0:
        return 0
    return min(int(math.ceil(timeout * 1000)), 2**31 - 1)


def _enc(s: str) -> bytes:
    return s.encode()


def _string(f, *args) -> str:
    cap = 256
    while True:
        buf = ctypes.create_string_buffer(cap)
        st = f(*args, buf, cap)
        if st == ERR_TOO_LARGE and cap < 1 << 20:
            cap *= 4
            continue
        _check(st)
        return buf.value.decode()


class Stream:
    """A bidirectional byte stream (``jw_stream``). One thread may send while
    another receives; ``close`` wakes calls blocked on other threads (they
    raise :class:`Error` with status ``ERR_CLOSED``)."""

    def __init__(self, handle: int, owned: bool = True):
        self._h = handle
        self._owned = owned
        self._lock = threading.Lock()

    def _handle(self) -> int:
        h = self._h
        if not h:
            raise Error(ERR_CLOSED, "the stream is closed")
        return h

    def send(self, data: bytes, timeout: Optional[float] = None) -> None:
        """Sends all of ``data`` (one message on message transports)."""
        data = bytes(data)
        _check(_send(self._handle(), data, len(data), _ms(timeout)))

    def sendall(self, data: bytes, timeout: Optional[float] = None) -> None:
        """The same as :meth:`send` (every send delivers all the bytes)."""
        self.send(data, timeout)

    def recv(self, bufsize: int = 65536, timeout: Optional[float] = None) -> bytes:
        """The next bytes available (at most ``bufsize``); ``b""`` once the
        peer has finished and everything before was received."""
        buf = ctypes.create_string_buffer(max(1, bufsize))
        n = _z(0)
        st = _check(_receive(self._handle(), buf, len(buf), ctypes.byref(n), _ms(timeout)))
        if st == EOF:
            return b""
        return buf.raw[: n.value]

    def send_eof(self) -> None:
        """Half-closes: the peer sees the end after what was sent."""
        _check(_send_eof(self._handle()))

    def flush(self, timeout: Optional[float] = None) -> None:
        """Waits until what earlier sends accepted has left the library (a
        send whose timeout passed after part of its data went out finishes
        in the background). ``TimeoutError`` while it is still on its way;
        :class:`Error` (``ERR_CONNECTION``, ``ERR_IO``) if it never will.
        :meth:`close` cannot tell: call this first where it matters."""
        _check(_flush(self._handle(), _ms(timeout)))

    def stats(self) -> dict:
        """What the stream has carried so far (``jw_stream_stats``):
        ``bytes_sent``, ``bytes_received``, ``messages_sent``,
        ``messages_received``."""
        return _stats(_stream_stats, self._handle(), _StreamStats)

    def ws_path(self) -> str:
        """The request path of a websocket server connection."""
        return _string(_ws_path, self._handle())

    def close(self) -> None:
        """Closes the stream (gracefully); a second close does nothing."""
        with self._lock:
            h, self._h = self._h, None
        if h and self._owned:
            _close(h)

    @property
    def closed(self) -> bool:
        return not self._h

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def _out_stream(call, *args) -> Stream:
    out = _p()
    _check(call(*args, ctypes.byref(out)))
    return Stream(out.value)


def connect(url: str, timeout: Optional[float] = None) -> Stream:
    """A stream to any network URL (``tcp://HOST:PORT``, ``unix:/PATH``,
    ``ws://...``, ``echo:``, ...)."""
    return _out_stream(_connect, _enc(url), _ms(timeout))


class Network:
    """A parsed network URL (no I/O until :meth:`connect`)."""

    def __init__(self, url: str, *, _handle: Optional[int] = None):
        if _handle is None:
            out = _p()
            _check(_network_new(_enc(url), ctypes.byref(out)))
            _handle = out.value
        self._h = _handle

    @classmethod
    def router(cls, router_url: str, token: str) -> "Network":
        """A network whose streams go through a router with ``token``."""
        out = _p()
        _check(_network_router(_enc(router_url), _enc(token), ctypes.byref(out)))
        return cls("", _handle=out.value)

    def connect(self, timeout: Optional[float] = None) -> Stream:
        return _out_stream(_network_connect, self._h, _ms(timeout))

    @property
    def address(self) -> str:
        return _string(_network_address, self._h)

    def close(self) -> None:
        h, self._h = self._h, None
        if h:
            _network_free(h)

    def __enter__(self) -> "Network":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()


class _Closing:
    """A server-like handle closed by ``close``, ``with`` or garbage collection."""

    _closer = None

    def __init__(self, handle: int):
        self._h = handle

    def close(self) -> None:
        h, self._h = self._h, None
        if h:
            type(self)._closer(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class Listener(_Closing):
    """Forwards every connection to its listen URL onto a new stream of the
    target (``jw_listen``)."""

    _closer = staticmethod(_listener_close)

    @property
    def address(self) -> str:
        return _string(_listener_address, self._h)

    def stats(self) -> dict:
        """``accepted``, ``active``, ``refused`` connections and the bytes
        relayed (``bytes_received`` from clients, ``bytes_sent`` to them),
        as ``jw_listener_stats`` counts them."""
        return _stats(_listener_stats, self._h, _ServerStats)


def listen(listen_url: str, target_url: str) -> Listener:
    """Forwards ``listen_url`` (``tcp://127.0.0.1:0``, ``unix:/PATH``,
    ``ws://127.0.0.1:0``) onto new streams of ``target_url``."""
    with Network(target_url) as target:
        out = _p()
        _check(_listen(_enc(listen_url), target._h, ctypes.byref(out)))
    return Listener(out.value)


def forward(a: Stream, b: Stream) -> None:
    """Moves bytes both ways between ``a`` and ``b`` until both directions
    have ended; raises :class:`Error` if either side failed."""
    _check(_forward(a._handle(), b._handle()))


class WsServer(_Closing):
    """A websocket server (``jw_ws_serve``): the handler runs on each
    connection's own thread with a :class:`Stream` the server owns."""

    _closer = staticmethod(_ws_close)

    def __init__(self, handle: int, callback):
        super().__init__(handle)
        self._callback = callback  # kept alive as long as the server

    @property
    def address(self) -> str:
        return _string(_ws_address, self._h)

    def broadcast(self, data: bytes) -> None:
        """One binary message to every open connection."""
        data = bytes(data)
        _check(_ws_broadcast(self._h, data, len(data)))

    def stats(self) -> dict:
        """``accepted``, ``active``, ``refused`` connections and the message
        bytes received from clients and sent to them (``jw_ws_server_stats``)."""
        return _stats(_ws_stats, self._h, _ServerStats)


def ws_serve(listen_url: str, handler: Callable[[Stream], None]) -> WsServer:
    """Serves websocket clients on ``listen_url`` (``ws://127.0.0.1:0``);
    ``handler(conn)`` runs for each on its own thread. An exception in the
    handler ends that connection only (it is printed by Python's
    ``threading.excepthook`` rules: here, to stderr)."""

    def run(conn, _user):
        try:
            handler(Stream(conn, owned=False))
        except Exception as e:  # must not unwind into C
            import sys

            print(f"jumpwire: websocket handler raised {e!r}", file=sys.stderr)

    callback = HANDLER(run)
    out = _p()
    _check(_ws_serve(_enc(listen_url), callback, None, ctypes.byref(out)))
    return WsServer(out.value, callback)


class Router(_Closing):
    """An embedded Jumpstarter router (``jw_router_serve``)."""

    _closer = staticmethod(_router_close)

    @property
    def address(self) -> str:
        return _string(_router_address, self._h)

    @property
    def certificate(self) -> Optional[str]:
        pem = _router_certificate(self._h)
        return pem.decode() if pem else None

    def stats(self) -> dict:
        """Calls ``accepted`` and ``active`` (open), ``refused`` ones, and the
        payload bytes received from callers and relayed to their peers
        (``jw_router_stats``)."""
        return _stats(_router_stats, self._h, _ServerStats)


def router_serve(listen_url: str) -> Router:
    """Starts a router on ``grpc://HOST:PORT?key=SECRET`` (or ``grpcs://``)."""
    out = _p()
    _check(_router_serve(_enc(listen_url), ctypes.byref(out)))
    return Router(out.value)


def router_token(key: str, stream_id: str, ttl: int = 3600) -> str:
    """A stream token as the Jumpstarter controller mints it."""
    return _string(_router_token, _enc(key), _enc(stream_id), int(ttl))


def router_connect(router_url: str, token: str, timeout: Optional[float] = None) -> Stream:
    """A stream through the router at ``router_url`` with ``token``."""
    return _out_stream(_router_connect, _enc(router_url), _enc(token), _ms(timeout))


def router_export(router_url: str, token: str, target_url: str, timeout: Optional[float] = None) -> None:
    """The exporter side of one routed stream onto ``target_url`` (blocks
    until the stream ends)."""
    with Network(target_url) as target:
        _check(_router_export(_enc(router_url), _enc(token), target._h, _ms(timeout)))


def version() -> str:
    """The C library's version."""
    return _version().decode()
