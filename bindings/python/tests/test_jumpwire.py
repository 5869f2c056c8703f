"""Tests of the Python bindings against the real library (JUMPWIRE_LIBRARY
points at the build under test; scripts/test.sh sets it)."""

import hashlib
import socket
import threading
import time

import pytest

import jumpwire


def settled(stats, want, within=5.0):
    """``stats()`` once it equals ``want``, or its last value after
    ``within`` seconds."""
    deadline = time.monotonic() + within
    while (got := stats()) != want and time.monotonic() < deadline:
        time.sleep(0.01)
    return got


def test_version_matches_the_package():
    assert jumpwire.version() == "0.1.0"
    assert jumpwire.library_path


def test_echo_round_trip_and_end_of_stream():
    with jumpwire.connect("echo:", timeout=5) as s:
        s.send(b"hello", timeout=5)
        assert s.recv(16, timeout=5) == b"hello"
        s.send_eof()
        assert s.recv(16, timeout=5) == b""
        with pytest.raises(jumpwire.Error) as e:
            s.send(b"late")
        assert e.value.status == jumpwire.ERR_CLOSED
    assert s.closed


def test_a_timeout_is_a_timeout_error_and_loses_nothing():
    with jumpwire.connect("echo:") as s:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            s.recv(16, timeout=0.05)
        assert time.monotonic() - t0 >= 0.04
        s.send(b"after")
        assert s.recv(16, timeout=5) == b"after"


def test_flush_tells_whether_an_accepted_send_went():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    data = bytes(range(256)) * (256 * 1024)  # 64 MiB: more than the buffers hold
    with jumpwire.connect(f"tcp://127.0.0.1:{port}", timeout=5) as s:
        peer, _ = srv.accept()
        # Nobody reads yet: part goes out, the rest is written in the background.
        s.send(data, timeout=0.3)
        with pytest.raises(TimeoutError):
            s.flush(timeout=0.1)
        got = hashlib.sha256()
        count = 0

        def drain():
            nonlocal count
            while count < len(data):
                chunk = peer.recv(1 << 20)
                if not chunk:
                    break
                got.update(chunk)
                count += len(chunk)

        reader = threading.Thread(target=drain)
        reader.start()
        s.flush(timeout=30)
        reader.join(30)
        assert count == len(data)
        assert got.digest() == hashlib.sha256(data).digest()
    peer.close()
    srv.close()


def test_errors_carry_the_status_and_the_message():
    with pytest.raises(jumpwire.Error) as e:
        jumpwire.connect("tcp://127.0.0.1:99999", timeout=1)
    assert e.value.status == jumpwire.ERR_INVALID_ARGUMENT
    assert "port" in e.value.message
    assert "invalid argument (-1)" in str(e.value)
    # A refused connection.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(jumpwire.Error) as e:
        jumpwire.connect(f"tcp://127.0.0.1:{port}", timeout=2)
    assert e.value.status == jumpwire.ERR_CONNECTION
    assert f"127.0.0.1:{port}" in e.value.message


def test_listen_forwards_a_local_port_onto_a_tcp_server():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def echo_once():
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    t = threading.Thread(target=echo_once)
    t.start()
    target = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    with jumpwire.listen("tcp://127.0.0.1:0", target) as listener:
        assert listener.address.startswith("tcp://127.0.0.1:")
        with jumpwire.connect(listener.address, timeout=5) as s:
            s.send(b"through the forward", timeout=5)
            got = b""
            while len(got) < 19:
                got += s.recv(64, timeout=5)
            assert got == b"through the forward"
            s.send_eof()
            assert s.recv(64, timeout=5) == b""
            assert s.stats()["bytes_sent"] == 19 and s.stats()["bytes_received"] == 19
        # The listener counts the connection and what it relayed, once the
        # relay has passed the end on (the count may lag the client).
        want = {"accepted": 1, "active": 0, "refused": 0, "bytes_received": 19, "bytes_sent": 19}
        assert settled(listener.stats, want) == want
    t.join(5)
    server.close()


def test_one_thread_sends_while_another_receives_on_one_stream():
    size = 8 << 20
    payload = bytes(range(256)) * (size // 256)
    with jumpwire.connect("echo:") as s:
        received = []

        def reader():
            got = 0
            h = hashlib.sha256()
            while got < size:
                data = s.recv(65536, timeout=10)
                assert data
                h.update(data)
                got += len(data)
            received.append(h.hexdigest())

        t = threading.Thread(target=reader)
        t.start()
        for i in range(0, size, 65536):
            s.send(payload[i : i + 65536], timeout=10)
        t.join(30)
        assert received == [hashlib.sha256(payload).hexdigest()]


def test_close_wakes_a_receiver_on_another_thread():
    s = jumpwire.connect("echo:")
    errors = []

    def reader():
        try:
            s.recv(16)
        except jumpwire.Error as e:
            errors.append(e.status)

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.05)
    s.close()
    t.join(5)
    assert not t.is_alive()
    assert errors == [jumpwire.ERR_CLOSED]


def test_websocket_server_with_a_python_handler():
    paths = []

    def handler(conn):
        paths.append(conn.ws_path())
        while data := conn.recv(4096, timeout=5):
            conn.send(data.upper(), timeout=5)

    with jumpwire.ws_serve("ws://127.0.0.1:0", handler) as server:
        url = server.address + "room?x=1"
        with jumpwire.connect(url, timeout=5) as c:
            c.send(b"hello ws", timeout=5)
            assert c.recv(64, timeout=5) == b"HELLO WS"
            server.broadcast(b"to all")
            assert c.recv(64, timeout=5) == b"to all"
            # A count may lag the bytes the client already has.
            want = {"accepted": 1, "active": 1, "refused": 0, "bytes_received": 8, "bytes_sent": 14}
            assert settled(server.stats, want) == want
    assert paths == ["/room?x=1"]


def test_router_pairs_two_streams_and_the_exporter_reaches_a_target():
    with jumpwire.router_serve("grpc://127.0.0.1:0?key=py-key") as router:
        assert router.address.startswith("grpc://127.0.0.1:")
        assert router.certificate is None
        token = jumpwire.router_token("py-key", "py-stream", ttl=60)
        done = []
        t = threading.Thread(
            target=lambda: done.append(jumpwire.router_export(router.address, token, "echo:", timeout=5))
        )
        t.start()
        with jumpwire.router_connect(router.address, token, timeout=5) as s:
            s.send(b"through the router", timeout=5)
            got = b""
            while len(got) < 18:
                got += s.recv(64, timeout=5)
            assert got == b"through the router"
            s.send_eof()
            assert s.recv(64, timeout=5) == b""
        t.join(10)
        assert done == [None]
        # Two calls admitted; 18 bytes each way (the echo's answer), all
        # ended.
        want = {"accepted": 2, "active": 0, "refused": 0, "bytes_received": 36, "bytes_sent": 36}
        assert settled(router.stats, want) == want


def test_a_wrong_token_is_unauthenticated():
    with jumpwire.router_serve("grpc://127.0.0.1:0?key=right") as router:
        token = jumpwire.router_token("wrong", "s", ttl=60)
        with jumpwire.router_connect(router.address, token, timeout=5) as s:
            with pytest.raises(jumpwire.Error) as e:
                s.recv(16, timeout=5)
            assert e.value.status == jumpwire.ERR_UNAUTHENTICATED


def _server(script):
    """A one-connection TCP server running script(conn); its URL and thread."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    result = []

    def run():
        conn, _ = srv.accept()
        with conn:
            result.append(script(conn))
        srv.close()

    t = threading.Thread(target=run)
    t.start()
    return f"tcp://127.0.0.1:{srv.getsockname()[1]}", t, result


def _read_all(conn):
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data


def test_network_objects_and_forward():
    with jumpwire.Network("echo:") as n:
        with n.connect(timeout=1) as s:
            s.send(b"net")
            assert s.recv(8, timeout=5) == b"net"

    def talker(conn):
        conn.sendall(b"from a")
        conn.shutdown(socket.SHUT_WR)
        return _read_all(conn)

    url_a, ta, got_a = _server(talker)
    url_b, tb, got_b = _server(_read_all)
    a = jumpwire.connect(url_a, timeout=5)
    b = jumpwire.connect(url_b, timeout=5)
    jumpwire.forward(a, b)  # until both directions have ended
    a.close()
    b.close()
    ta.join(5)
    tb.join(5)
    assert got_b == [b"from a"]
    assert got_a == [b""]
