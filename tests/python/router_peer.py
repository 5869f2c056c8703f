"""Upstream Jumpstarter peers for tests/interop_router.rs.

Modes:
  peer URL TOKEN        an upstream RouterStream over a RouterServiceStub that
                        echoes what it receives until EOF, then sends EOF
                        (GOAWAY + done_writing) and waits for the call to end;
                        prints OK. URL is grpc://HOST:PORT.
  router                a router built from upstream's RouterStream servicer
                        pattern (like upstream's MockRouter): pairs callers by
                        the token's sub and copies frames with upstream's
                        copy_stream. Prints "PORT <n>" and serves until killed.
"""

import asyncio
import base64
import json
import sys

import grpc
from anyio import EndOfStream
from jumpstarter_protocol.jumpstarter.v1 import router_pb2_grpc

from jumpstarter.streams.common import copy_stream
from jumpstarter.streams.router import RouterStream

MAX = 64 * 1024 * 1024
OPTIONS = [
    ("grpc.max_receive_message_length", MAX),
    ("grpc.max_send_message_length", MAX),
]


async def peer(url, token):
    target = url.removeprefix("grpc://")
    async with grpc.aio.insecure_channel(target, options=OPTIONS) as channel:
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


async def router():
    server = grpc.aio.server(options=OPTIONS)
    router_pb2_grpc.add_RouterServiceServicer_to_server(Router(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"PORT {port}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "peer":
        asyncio.run(peer(sys.argv[2], sys.argv[3]))
    elif mode == "router":
        asyncio.run(router())
    else:
        sys.exit(f"unknown mode {mode}")
