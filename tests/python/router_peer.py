"""Upstream Jumpstarter peers for tests/suite/interop_router.rs.

Modes:
  peer URL TOKEN [TLS]  an upstream RouterStream over a RouterServiceStub that
                        echoes what it receives until EOF, then sends EOF
                        (GOAWAY + done_writing) and waits for the call to end;
                        prints OK. URL is grpc://HOST:PORT or
                        grpcs://HOST:PORT; TLS is a CA file or "insecure".
  router [CERT KEY]     a router built from upstream's RouterStream servicer
                        pattern (like upstream's MockRouter): pairs callers by
                        the token's sub and copies frames with upstream's
                        copy_stream. With CERT and KEY (PEM files) it serves
                        TLS. Prints "PORT <n>" and serves until killed.
  connect URL TOKEN TARGET TLS
                        upstream's connect_router_stream (the exporter side;
                        always TLS): the router stream at URL
                        (grpcs://HOST:PORT) forwarded to a TCP connection to
                        TARGET (HOST:PORT) until both directions end; TLS is a
                        CA file (given as upstream's base64 tls.ca) or
                        "insecure" (upstream's tls.insecure). Prints OK.
"""

import asyncio
import base64
import json
import sys

import anyio
import grpc
from anyio import EndOfStream
from jumpstarter_protocol.jumpstarter.v1 import router_pb2_grpc

from jumpstarter.common.grpc import ssl_channel_credentials
from jumpstarter.common.streams import connect_router_stream
from jumpstarter.config.tls import TLSConfigV1Alpha1
from jumpstarter.streams.common import copy_stream
from jumpstarter.streams.router import RouterStream

MAX = 64 * 1024 * 1024
OPTIONS = [
    ("grpc.max_receive_message_length", MAX),
    ("grpc.max_send_message_length", MAX),
]


def tls_config(tls):
    """Upstream's TLS settings: a CA file (base64 in tls.ca) or insecure."""
    if tls == "insecure":
        return TLSConfigV1Alpha1(insecure=True)
    with open(tls, "rb") as f:
        return TLSConfigV1Alpha1(ca=base64.b64encode(f.read()).decode())


async def channel_for(url, tls):
    if url.startswith("grpcs://"):
        target = url.removeprefix("grpcs://")
        creds = await ssl_channel_credentials(target, tls_config(tls))
        return grpc.aio.secure_channel(target, creds, options=OPTIONS)
    return grpc.aio.insecure_channel(url.removeprefix("grpc://"), options=OPTIONS)


async def peer(url, token, tls=None):
    async with await channel_for(url, tls) as channel:
        stub = router_pb2_grpc.RouterServiceStub(channel)
        call = stub.Stream(metadata=(("authorization", f"Bearer {token}"),))
        s = RouterStream(context=call)
        while True:
            try:
                data = await s.receive()
            except EndOfStream:
                break
            if data:
                await s.send(data)
        await s.send_eof()
        await call.code()
    print("OK", flush=True)


def sub_of(context):
    auth = dict(context.invocation_metadata()).get("authorization", "")
    claims = auth.split(" ", 1)[-1].split(".")[1]
    claims += "=" * (-len(claims) % 4)
    return json.loads(base64.urlsafe_b64decode(claims))["sub"]


class Router(router_pb2_grpc.RouterServiceServicer):
    def __init__(self):
        self.pending = {}

    async def Stream(self, request_iterator, context):
        sub = sub_of(context)
        mine = RouterStream(context=context)
        done = asyncio.Event()
        if sub in self.pending:
            other, other_done, paired = self.pending.pop(sub)
            paired.set_result((mine, done))
        else:
            paired = asyncio.get_running_loop().create_future()
            self.pending[sub] = (mine, done, paired)
            try:
                other, other_done = await paired
            finally:
                if self.pending.get(sub, (None,))[0] is mine:
                    del self.pending[sub]
        # This caller's frames go to the other one; the other handler does
        # the reverse. The call ends when both directions have ended.
        await copy_stream(other, mine)
        done.set()
        await other_done.wait()


async def router(cert=None, key=None):
    server = grpc.aio.server(options=OPTIONS)
    router_pb2_grpc.add_RouterServiceServicer_to_server(Router(), server)
    if cert:
        with open(cert, "rb") as c, open(key, "rb") as k:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"PORT {port}", flush=True)
    await server.wait_for_termination()


async def connect(url, token, target, tls):
    host, port = target.rsplit(":", 1)
    tcp = await anyio.connect_tcp(host, int(port))
    endpoint = url.removeprefix("grpcs://")
    async with connect_router_stream(endpoint, token, tcp, tls_config(tls), dict(OPTIONS)):
        pass
    print("OK", flush=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "peer":
        asyncio.run(peer(*sys.argv[2:5]))
    elif mode == "router":
        asyncio.run(router(*sys.argv[2:4]))
    elif mode == "connect":
        asyncio.run(connect(*sys.argv[2:6]))
    else:
        sys.exit(f"unknown mode {mode}")
