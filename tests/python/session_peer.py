"""An upstream Jumpstarter 0.9.0 exporter session on a Unix socket, for the
session-protocol tests (issues 13 and 14).

Serves upstream's own `Session(...).serve_unix_async()` with upstream's
`Composite` root and upstream network drivers as children:

  tcp          TcpNetwork  -> a TCP echo server on 127.0.0.1 (this script's)
  udp          UdpNetwork  -> a UDP echo server on 127.0.0.1 (this script's)
  unix         UnixNetwork -> a Unix-socket echo server (this script's)
  echo         EchoNetwork (in-memory echo)
  dut          Composite
  dut.console  TcpNetwork  -> the same TCP echo server

The echo servers echo every byte (UDP: every datagram) back; the TCP and
Unix ones half-close their side once the peer has half-closed and everything
was echoed, so a client can check a transfer end to end.

The session's status is set to LEASE_READY, as upstream's local serving
(`jmp shell --exporter-config`, `ExporterConfigV1Alpha1.serve_unix_async`)
does, unless --status says otherwise. (Upstream 0.9.0's session does not
refuse driver calls in other states: its check is never awaited.)

Options:
  --status NAME        the session's ExporterStatus name (default LEASE_READY)
  --disable-address    configure `tcp` with enable_address=False, so that its
                       `address` DriverCall fails as upstream's does
  --tcp                serve the same session on 127.0.0.1 over TCP too
                       (plaintext HTTP/2, upstream's serve_tcp_async)
  --passphrase P       with --tcp: upstream's PassphraseInterceptor there
  --target HOST:PORT   a driver `target` too: a TcpNetwork to HOST:PORT (a
                       test's own server, or one whose connect hangs)

Prints on stdout, one per line, then flushes:
  the session's socket path (the value for JUMPSTARTER_HOST)
  "tcp HOST:PORT", "udp HOST:PORT", "unix PATH" (the echo servers)
  "session-tcp HOST:PORT" (with --tcp)
  "READY"
and serves until its stdin closes (or it is killed).

`echo_servers` and `export_config` are shared with exporter_peer.py.
"""

import argparse
import os
import sys
import tempfile
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
from anyio import to_thread
from anyio.abc import SocketAttribute

from jumpstarter.common import ExporterStatus
from jumpstarter.config.exporter import ExporterConfigV1Alpha1DriverInstance


async def echo_stream(conn):
    """Echoes a byte stream until the peer's EOF, then half-closes."""
    async with conn:
        try:
            async for chunk in conn:
                await conn.send(chunk)
            await conn.send_eof()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, ConnectionError):
            pass


async def udp_echo(sock):
    async for data, addr in sock:
        await sock.sendto(data, *addr)


@asynccontextmanager
async def echo_servers():
    """TCP, UDP and Unix echo servers; yields {"tcp": (host, port),
    "udp": (host, port), "unix": path} while they run."""
    with tempfile.TemporaryDirectory(prefix="jw-echo-") as tmp:
        unix_path = os.path.join(tmp, "echo.sock")
        async with (
            await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0) as tcp,
            await anyio.create_udp_socket(local_host="127.0.0.1", local_port=0) as udp,
            await anyio.create_unix_listener(unix_path) as unix,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(tcp.serve, echo_stream)
            tg.start_soon(unix.serve, echo_stream)
            tg.start_soon(udp_echo, udp)
            try:
                yield {
                    "tcp": tcp.extra(SocketAttribute.local_address)[:2],
                    "udp": udp.extra(SocketAttribute.local_address)[:2],
                    "unix": unix_path,
                }
            finally:
                tg.cancel_scope.cancel()


def export_config(addrs, disable_address=False):
    """The driver tree, as the `export:` section of an upstream exporter
    configuration (what `jmp shell --exporter-config` and upstream's
    Exporter instantiate under a Composite root)."""
    tcp_host, tcp_port = addrs["tcp"]
    udp_host, udp_port = addrs["udp"]
    net = "jumpstarter_driver_network.driver."
    tcp = {"type": net + "TcpNetwork", "config": {"host": tcp_host, "port": tcp_port}}
    return {
        "tcp": {
            "type": net + "TcpNetwork",
            "config": {"host": tcp_host, "port": tcp_port, "enable_address": not disable_address},
        },
        "udp": {"type": net + "UdpNetwork", "config": {"host": udp_host, "port": udp_port}},
        "unix": {"type": net + "UnixNetwork", "config": {"path": addrs["unix"]}},
        "echo": {"type": net + "EchoNetwork"},
        "dut": {"type": "jumpstarter_driver_composite.driver.Composite", "children": {"console": tcp}},
    }


def root_device(addrs, disable_address=False, target=None):
    """The Composite root of `export_config`, built by upstream's config code;
    with `target` ("HOST:PORT"), a `target` TcpNetwork to it too."""
    children = export_config(addrs, disable_address)
    if target is not None:
        host, port = target.rsplit(":", 1)
        children["target"] = {
            "type": "jumpstarter_driver_network.driver.TcpNetwork",
            "config": {"host": host, "port": int(port)},
        }
    return ExporterConfigV1Alpha1DriverInstance.model_validate(
        {"type": "jumpstarter_driver_composite.driver.Composite", "children": children}
    ).instantiate()


def print_addrs(addrs):
    print("tcp {}:{}".format(*addrs["tcp"]))
    print("udp {}:{}".format(*addrs["udp"]))
    print("unix {}".format(addrs["unix"]))


async def main(args):
    from jumpstarter.exporter import Session

    async with echo_servers() as addrs:
        with Session(root_device=root_device(addrs, args.disable_address, args.target)) as session:
            async with session.serve_unix_async() as path, AsyncExitStack() as stack:
                session.update_status(ExporterStatus[args.status])
                print(path)
                print_addrs(addrs)
                if args.tcp:
                    # The same session on TCP too (plaintext, as upstream's
                    # serve_tcp_async without TLS), behind upstream's
                    # passphrase interceptor when --passphrase is given.
                    interceptors = None
                    if args.passphrase is not None:
                        from jumpstarter.exporter.auth import PassphraseInterceptor

                        interceptors = [PassphraseInterceptor(args.passphrase)]
                    port = await stack.enter_async_context(
                        session.serve_tcp_async("127.0.0.1", 0, interceptors=interceptors)
                    )
                    print("session-tcp 127.0.0.1:{}".format(port))
                print("READY", flush=True)
                # Serve until stdin closes.
                await to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--status", default="LEASE_READY", choices=[s.name for s in ExporterStatus])
    p.add_argument("--disable-address", action="store_true")
    p.add_argument("--tcp", action="store_true")
    p.add_argument("--passphrase")
    p.add_argument("--target")
    anyio.run(main, p.parse_args())
