"""Smoke check of the session-protocol fixtures against upstream Jumpstarter
0.9.0's own client (run by hand; not part of the test suite):

  session   session_peer.py (an upstream exporter session on a Unix socket);
            upstream's client as code inside `jmp shell` runs it
            (`jumpstarter.utils.env.env()` with JUMPSTARTER_HOST set) finds
            the drivers by name, calls `address()`, and round-trips bytes
            through `stream()` on tcp, unix, echo, dut.console and udp, and
            through upstream's TcpPortforwardAdapter.
  lease     controller.py (the test controller), a jumpwire router (the C
            library through bindings/python, serving TLS with the
            controller's certificate), exporter_peer.py (upstream's own
            Exporter, registered with the controller), and upstream's client
            (ClientConfigV1Alpha1.lease(lease_name=...).connect()) dialling
            the lease: `address()` and a stream round trip on tcp through
            controller, router and exporter. With --python-router, the
            upstream-style router of router_peer.py replaces jumpwire's.

Run from the repository root, after `cargo build` (for the lease check):
  .venv/bin/python tests/python/session_smoke.py [session|lease|all] [--python-router]
The library is target/debug/libjumpwire.so unless JUMPWIRE_LIBRARY names
another. Prints one line per check and "N passed, 0 failed" at the end;
exits non-zero on the first failure.
"""

import argparse
import base64
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
STEP = 20  # seconds: the bound of every wait below
# Driver client classes upstream's client may load (`jmp shell` passes the
# client config's drivers.allow this way); without it every driver is a stub.
ALLOW = "jumpstarter_driver_network.*,jumpstarter_driver_composite.*"

passed = 0


def ok(what):
    global passed
    passed += 1
    print("ok", what, flush=True)


class Peer:
    """A fixture process: stdin kept open (it runs until stdin closes),
    stdout read line by line on a thread."""

    def __init__(self, *args, env=None, stops_on_eof=True):
        self.stops_on_eof = stops_on_eof
        self.p = subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def line(self, timeout=STEP):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output from {self.p.args[1]} within {timeout} s") from None
        if line is None:
            raise AssertionError(f"{self.p.args[1]} ended (exit {self.p.wait(timeout=STEP)})")
        return line

    def until(self, want, timeout=STEP):
        """Lines up to the first one starting with `want` (which is returned)."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.line(max(0.1, deadline - time.monotonic()))
            if line.startswith(want):
                return line

    def send(self, text):
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()

    def stop(self):
        try:
            self.p.stdin.close()
            if not self.stops_on_eof:
                self.p.kill()
            self.p.wait(timeout=STEP)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            self.p.kill()
            self.p.wait(timeout=STEP)


def echo_round_trip(stream, data=b"ping through jumpstarter"):
    stream.send(data)
    got = b""
    while len(got) < len(data):
        got += stream.receive()
    assert got == data, got


def check_client(client, addrs, what):
    """The driver tree of session_peer/exporter_peer, through upstream's client."""
    from jumpstarter_driver_network.adapters import TcpPortforwardAdapter
    from jumpstarter_driver_network.client import NetworkClient

    assert set(client.children) == {"tcp", "udp", "unix", "echo", "dut"}, client.children
    assert isinstance(client.tcp, NetworkClient)
    assert set(client.dut.children) == {"console"}
    ok(f"{what}: GetReport gives the tree, children by jumpstarter.dev/name as NetworkClients")
    assert client.tcp.address() == "tcp://" + addrs["tcp"], client.tcp.address()
    assert client.udp.address() == "udp://" + addrs["udp"], client.udp.address()
    ok(f"{what}: address() of tcp and udp")
    for name, driver in [("tcp", client.tcp), ("unix", client.unix), ("echo", client.echo),
                         ("dut.console", client.dut.console)]:
        with driver.stream() as s:
            echo_round_trip(s)
        ok(f"{what}: stream() round trip on {name}")
    with client.udp.stream() as s:
        s.send(b"datagram")
        assert s.receive() == b"datagram"
    ok(f"{what}: stream() datagram round trip on udp")
    with TcpPortforwardAdapter(client=client.tcp) as (host, port):
        with socket.create_connection((host, port), timeout=STEP) as c:
            c.settimeout(STEP)
            c.sendall(b"forwarded")
            c.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := c.recv(4096):
                got += chunk
            assert got == b"forwarded", got
    ok(f"{what}: TcpPortforwardAdapter round trip with half-close on tcp")


def read_addrs(peer):
    addrs = {}
    while (line := peer.line()) != "READY":
        kind, value = line.split(" ", 1)
        addrs[kind] = value
    return addrs


def session_check():
    from jumpstarter.utils.env import env

    peer = Peer(os.path.join(HERE, "session_peer.py"))
    try:
        path = peer.line()
        addrs = read_addrs(peer)
        os.environ["JUMPSTARTER_HOST"] = path
        os.environ["JMP_DRIVERS_ALLOW"] = ALLOW
        try:
            with env() as client:
                check_client(client, addrs, "session")
        finally:
            del os.environ["JUMPSTARTER_HOST"], os.environ["JMP_DRIVERS_ALLOW"]
    finally:
        peer.stop()


def jumpwire_router(cert, key, router_key):
    os.environ.setdefault("JUMPWIRE_LIBRARY", os.path.join(ROOT, "target", "debug", "libjumpwire.so"))
    sys.path.insert(0, os.path.join(ROOT, "bindings", "python", "src"))
    import jumpwire

    router = jumpwire.router_serve(f"grpcs://127.0.0.1:0?key={router_key}&cert={cert}&key_file={key}")
    return router, router.address.removeprefix("grpcs://")


def lease_check(python_router):
    from jumpstarter.config.client import ClientConfigV1Alpha1, ClientConfigV1Alpha1Drivers
    from jumpstarter.config.common import ObjectMeta
    from jumpstarter.config.tls import TLSConfigV1Alpha1

    with tempfile.TemporaryDirectory(prefix="jw-smoke-") as tmp:
        out = subprocess.run(
            [sys.executable, os.path.join(HERE, "controller.py"), "cert", tmp],
            check=True, capture_output=True, text=True, timeout=STEP,
        ).stdout.split()
        cert, key = out[1], out[3]
        router_key = "smoke-router-key"
        peers = []
        router = None
        try:
            if python_router:
                # router_peer.py serves until killed.
                rp = Peer(os.path.join(HERE, "router_peer.py"), "router", cert, key, stops_on_eof=False)
                peers.append(rp)
                endpoint = "127.0.0.1:" + rp.until("PORT").split()[1]
                what = "lease (upstream-style router)"
            else:
                router, endpoint = jumpwire_router(cert, key, router_key)
                what = "lease (jumpwire router)"
            ctl = Peer(
                os.path.join(HERE, "controller.py"), "serve",
                "--router", endpoint, "--router-key", router_key, "--cert", cert, "--key", key,
                "--client", "alice=client-token", "--exporter", "bench=exporter-token",
                "--lease", "lease1=alice:bench",
            )
            peers.append(ctl)
            controller = "127.0.0.1:" + ctl.until("PORT").split()[1]
            exp = Peer(
                os.path.join(HERE, "exporter_peer.py"), "--endpoint", controller,
                "--token", "exporter-token", "--name", "bench", "--ca", cert,
            )
            peers.append(exp)
            addrs = read_addrs(exp)
            ctl.until("REGISTERED bench")
            ctl.until("LISTEN lease1")
            ok(f"{what}: upstream Exporter registered and listening on its lease")

            with open(cert, "rb") as f:
                tls = TLSConfigV1Alpha1(ca=base64.b64encode(f.read()).decode())
            config = ClientConfigV1Alpha1(
                metadata=ObjectMeta(namespace="default", name="alice"),
                endpoint=controller,
                token="client-token",
                tls=tls,
                drivers=ClientConfigV1Alpha1Drivers(allow=ALLOW.split(",")),
            )
            with config.lease(lease_name="lease1") as lease:
                with lease.connect() as client:
                    assert client.tcp.address() == "tcp://" + addrs["tcp"]
                    ok(f"{what}: upstream client dialled the lease; address() through the router")
                    with client.tcp.stream() as s:
                        echo_round_trip(s)
                    ok(f"{what}: stream() round trip on tcp through controller, router and exporter")
            ctl.until("DIAL lease1")
        finally:
            for p in reversed(peers):
                p.stop()
            if router is not None:
                router.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("which", nargs="?", default="all", choices=["session", "lease", "all"])
    p.add_argument("--python-router", action="store_true")
    a = p.parse_args()
    if a.which in ("session", "all"):
        session_check()
    if a.which in ("lease", "all"):
        lease_check(a.python_router)
    print(f"{passed} passed, 0 failed")
