"""The upstream Jumpstarter paths that bench/router.rs compares with.

Run by the benchmark with the venv's python (scripts/venv.sh):

  router_upstream.py --echo HOST:PORT --sink HOST:PORT --key KEY

prints, once everything is up, the local TCP ports through which each path
reaches the echo and the sink targets:

  A_ECHO 127.0.0.1:PORT   (a) upstream Python parts: a router built like
  A_SINK 127.0.0.1:PORT       upstream's servicer (process 1), an exporter
                              with upstream's connect_router_stream pattern
                              (process 2), and a client (process 3) that
                              carries each accepted TCP connection over an
                              upstream RouterStream.
  B_ECHO 127.0.0.1:PORT   (b) upstream's in-process path: serve(TcpNetwork)
  B_SINK 127.0.0.1:PORT       and TcpPortforwardAdapter (this process).

and runs until its stdin closes. Each connection to an (a) port is a new
routed stream: the client and the exporter both number their streams
(e0, e1, ... for the echo, s0, s1, ... for the sink) and the exporter keeps
a few streams dialled ahead, as an exporter that the controller told to
listen would.

Plaintext throughout: upstream's connect_router_stream always uses TLS, so
the exporter here is the same code on an insecure channel with the token in
the authorization metadata (as a router expects it).
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time

import grpc
from anyio import connect_tcp, create_task_group
from jumpstarter_protocol.jumpstarter.v1 import router_pb2_grpc

from jumpstarter.common import TemporaryTcpListener
from jumpstarter.streams.common import forward_stream
from jumpstarter.streams.router import RouterStream

# The router servicer built like upstream's is the interop tests' own.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
from router_peer import Router  # noqa: E402

MAX = 64 * 1024 * 1024
OPTIONS = [
    ("grpc.max_receive_message_length", MAX),
    ("grpc.max_send_message_length", MAX),
]
# Streams an exporter pool keeps dialled ahead of the client.
AHEAD = 12


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(key, sub):
    """An HS256 stream token as the upstream controller mints it."""
    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(
        json.dumps(
            {
                "iss": "https://jumpstarter.dev/stream",
                "aud": "https://jumpstarter.dev/router",
                "sub": sub,
                "iat": now,
                "nbf": now,
                "exp": now + 3600,
                "jti": os.urandom(8).hex(),
            }
        ).encode()
    )
    signing = f"{header}.{claims}".encode()
    sig = b64(hmac.new(key.encode(), signing, hashlib.sha256).digest())
    return f"{header}.{claims}.{sig}"


async def run_router():
    server = grpc.aio.server(options=OPTIONS)
    router_pb2_grpc.add_RouterServiceServicer_to_server(Router(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"PORT {port}", flush=True)
    await server.wait_for_termination()


def router_call(channel, token):
    stub = router_pb2_grpc.RouterServiceStub(channel)
    return stub.Stream(metadata=(("authorization", f"Bearer {token}"),))


async def export_one(channel, token, host, port):
    """upstream connect_router_stream(endpoint, token, stream, ...) on a
    plaintext channel: the target stream forwarded to a RouterStream."""
    async with await connect_tcp(host, int(port)) as stream:
        context = router_call(channel, token)
        async with RouterStream(context=context) as s:
            async with forward_stream(s, stream):
                pass


async def export_pool(channel, key, prefix, target):
    host, port = target.rsplit(":", 1)
    sem = asyncio.Semaphore(AHEAD)

    async def one(i):
        try:
            await export_one(channel, mint(key, f"{prefix}{i}"), host, port)
        except Exception as e:  # noqa: BLE001 - a benchmark stream failing is reported, not fatal
            print(f"exporter {prefix}{i}: {e!r}", file=sys.stderr, flush=True)
        finally:
            sem.release()

    async with create_task_group() as tg:
        i = 0
        while True:
            await sem.acquire()
            tg.start_soon(one, i)
            i += 1


async def run_exporter(router, key, echo, sink):
    async with grpc.aio.insecure_channel(router, options=OPTIONS) as channel:
        async with create_task_group() as tg:
            tg.start_soon(export_pool, channel, key, "e", echo)
            tg.start_soon(export_pool, channel, key, "s", sink)


async def run_client(router, key):
    """Each accepted TCP connection goes over a new RouterStream."""
    async with grpc.aio.insecure_channel(router, options=OPTIONS) as channel:
        counters = {"e": 0, "s": 0}

        async def handler(prefix, conn):
            i = counters[prefix]
            counters[prefix] += 1
            async with conn:
                context = router_call(channel, mint(key, f"{prefix}{i}"))
                async with RouterStream(context=context) as s:
                    async with forward_stream(conn, s):
                        pass

        async with TemporaryTcpListener(lambda c: handler("e", c), local_host="127.0.0.1") as e:
            async with TemporaryTcpListener(lambda c: handler("s", c), local_host="127.0.0.1") as s:
                print(f"ECHO {e[0]}:{e[1]}", flush=True)
                print(f"SINK {s[0]}:{s[1]}", flush=True)
                await asyncio.Event().wait()


def child(*args):
    return subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True
    )


def words(proc):
    return proc.stdout.readline().split()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="main")
    p.add_argument("--echo")
    p.add_argument("--sink")
    p.add_argument("--key")
    p.add_argument("--router")
    a = p.parse_args()
    if a.mode == "router":
        asyncio.run(run_router())
        return
    if a.mode == "exporter":
        asyncio.run(run_exporter(a.router, a.key, a.echo, a.sink))
        return
    if a.mode == "client":
        asyncio.run(run_client(a.router, a.key))
        return

    from jumpstarter.common.utils import serve
    from jumpstarter_driver_network.adapters import TcpPortforwardAdapter
    from jumpstarter_driver_network.driver import TcpNetwork

    procs = []
    try:
        r = child("--mode", "router")
        procs.append(r)
        router = f"127.0.0.1:{words(r)[1]}"
        common = ["--router", router, "--key", a.key, "--echo", a.echo, "--sink", a.sink]
        procs.append(child("--mode", "exporter", *common))
        c = child("--mode", "client", *common)
        procs.append(c)
        a_echo, a_sink = words(c)[1], words(c)[1]
        eh, ep = a.echo.rsplit(":", 1)
        sh, sp = a.sink.rsplit(":", 1)
        with serve(TcpNetwork(host=eh, port=int(ep))) as echo_client:
            with serve(TcpNetwork(host=sh, port=int(sp))) as sink_client:
                with TcpPortforwardAdapter(client=echo_client) as b_echo:
                    with TcpPortforwardAdapter(client=sink_client) as b_sink:
                        print(f"A_ECHO {a_echo}", flush=True)
                        print(f"A_SINK {a_sink}", flush=True)
                        print(f"B_ECHO {b_echo[0]}:{b_echo[1]}", flush=True)
                        print(f"B_SINK {b_sink[0]}:{b_sink[1]}", flush=True)
                        sys.stdin.read()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()


if __name__ == "__main__":
    main()
