"""Upstream Jumpstarter 0.9.0's own client against a session named by
JUMPSTARTER_HOST, the way code inside `jmp shell` runs
(`jumpstarter.utils.env.env()`), for the session-server tests (issue 14).

The session must serve (names fixed):
  tcp   a TCP network to an echo server (echoes, half-closes after the peer)
  echo  the echo network
  off   a TCP network with enable_address=false

Each check prints one line; a failed check raises (non-zero exit):
  "root CLASS"                    the root's client class
  "child NAME CLASS"              each child's client class
  "address tcp ADDRESS"           tcp's address()
  "address echo ERRORCLASS"       echo has no address (upstream's error class)
  "address off ERRORCLASS: MSG"   off's address is disabled
  "stream NAME N SHA256"          N bytes sent and echoed back through NAME's
                                  stream(), half-closed, checksums equal
  "forward N"                     N connections at once through upstream's
                                  TcpPortforwardAdapter on tcp, each 1 MiB
                                  checksummed, half-closed
  "cli tcp address OUTPUT"        upstream's CLI (`j tcp address`: the
                                  composite client's click group, as `j` runs
                                  it) against the session
  "cli off address ERROR"         the same for the disabled address
  "DONE"

Arguments: the stream size in bytes (default 16 MiB) and the number of
forwarded connections at once (default 3).
"""

import hashlib
import os
import socket
import sys
import threading

import click
from anyio import EndOfStream

from jumpstarter.utils.env import env
from jumpstarter_driver_network.adapters import TcpPortforwardAdapter

CHUNK = 64 * 1024


def pattern(n, seed):
    out = bytearray()
    x = seed
    while len(out) < n:
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out += x.to_bytes(8, "little")
    return bytes(out[:n])


def stream_check(client, name, size):
    data = pattern(size, 7)
    got = hashlib.sha256()
    count = 0
    with client.children[name].stream() as s:
        errors = []

        def send():
            try:
                for i in range(0, len(data), CHUNK):
                    s.send(data[i : i + CHUNK])
                s.portal.call(s.stream.send_eof)
            except BaseException as e:  # reported by the main thread
                errors.append(e)

        t = threading.Thread(target=send)
        t.start()
        while True:
            try:
                b = s.receive()
            except EndOfStream:
                break
            got.update(b)
            count += len(b)
        t.join(60)
        if errors:
            raise errors[0]
    want = hashlib.sha256(data).hexdigest()
    if count != size or got.hexdigest() != want:
        raise AssertionError(f"{name}: {count} bytes back, sha256 {got.hexdigest()} != {want}")
    print(f"stream {name} {count} {want}", flush=True)


def forward_check(client, n):
    with TcpPortforwardAdapter(client=client.children["tcp"]) as addr:
        results = [None] * n

        def one(i):
            try:
                data = pattern(1 << 20, 100 + i)
                with socket.create_connection(addr, timeout=60) as c:
                    sender = threading.Thread(target=lambda: (c.sendall(data), c.shutdown(socket.SHUT_WR)))
                    sender.start()
                    back = bytearray()
                    while True:
                        b = c.recv(CHUNK)
                        if not b:
                            break
                        back += b
                    sender.join(60)
                results[i] = hashlib.sha256(back).digest() == hashlib.sha256(data).digest()
            except BaseException as e:
                results[i] = e

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        if not all(r is True for r in results):
            raise AssertionError(f"forwarded connections: {results}")
    print(f"forward {n}", flush=True)


def cli(client, args):
    """Runs upstream's CLI of the session's root client (what `j ARGS` runs)
    and returns its output, or the ClickException's message."""
    group = client.cli()
    runner = click.testing.CliRunner()
    r = runner.invoke(group, args)
    if r.exit_code == 0:
        return r.output.strip()
    if isinstance(r.exception, SystemExit):
        return "ERROR " + r.output.strip().replace("\n", " ")
    raise r.exception


def main():
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 16 << 20
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    os.environ.setdefault(
        "JMP_DRIVERS_ALLOW", "jumpstarter_driver_network.*,jumpstarter_driver_composite.*"
    )
    with env() as client:
        print(f"root {type(client).__name__}", flush=True)
        for name, child in client.children.items():
            print(f"child {name} {type(child).__name__}", flush=True)
        print(f"address tcp {client.children['tcp'].address()}", flush=True)
        try:
            client.children["echo"].address()
            raise AssertionError("echo has an address")
        except NotImplementedError as e:
            print(f"address echo {type(e).__name__}", flush=True)
        try:
            client.children["off"].address()
            raise AssertionError("off has an address")
        except ValueError as e:
            print(f"address off {type(e).__name__}: {e}", flush=True)
        stream_check(client, "tcp", size)
        stream_check(client, "echo", size)
        forward_check(client, n)
        print(f"cli tcp address {cli(client, ['tcp', 'address'])}", flush=True)
        print(f"cli off address {cli(client, ['off', 'address'])}", flush=True)
    print("DONE", flush=True)


if __name__ == "__main__":
    import click.testing  # noqa: F401  (CliRunner)

    main()
