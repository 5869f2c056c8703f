"""Python `websockets` peer for jumpwire's websocket interop tests.

  ws_peer.py server          echo server on 127.0.0.1, prints "PORT <n>".
                             Echoes every message with its type; the text
                             message "ping-me" makes it ping the client and
                             answer "pong-ok" once the pong came back; "close
                             CODE" makes it close with CODE.
  ws_peer.py tls-server CERT KEY   the same over TLS (wss://).
  ws_peer.py client URL      runs the client checks against an echo server at
                             URL (jumpwire's), prints "OK" at the end.
  ws_peer.py stream URL      sends 1 B to 8 MiB through a bridge to an echo.
  ws_peer.py bridge-eof URL  sends "hello" through a bridge whose target
                             answers and ends; prints "CLOSED <code> <data>".
  ws_peer.py send-close URL N  sends N bytes through a bridge, then closes;
                             prints "CLOSED <code>".
  ws_peer.py subprotocol URL [ORIGIN]  connects offering the subprotocols
                             "chat" and "binary" (and ORIGIN if given), sends
                             "hi" and reads it back; prints "SUBPROTOCOL
                             <answered>" or "REFUSED <HTTP status>".
  ws_peer.py bench-pipe URL TOTAL SIZE INFLIGHT   pipelined echo benchmark
                             client: prints "msgs_per_s <rate>".
  ws_peer.py bench-rtt URL CONNS SIZE   round trips driven from stdin ("go"
                             per round, one per connection): prints the
                             times in microseconds, a line per round.
"""

import asyncio
import os
import sys
import time

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, InvalidStatus


def pattern(n, seed):
    return bytes((i * 31 + seed) % 251 for i in range(n))


async def echo(ws):
    try:
        async for msg in ws:
            if isinstance(msg, bytes) and msg.startswith(b"as-text:"):
                await ws.send(msg[8:].decode())
            elif isinstance(msg, bytes) and msg.startswith(b"close "):
                await ws.close(int(msg.split()[1]), "bye")
                return
            elif msg in ("ping-me", b"ping-me"):
                pong = await ws.ping(b"abc")
                await asyncio.wait_for(pong, 10)
                await ws.send("pong-ok")
            elif isinstance(msg, str) and msg.startswith("close "):
                await ws.close(int(msg.split()[1]), "bye")
                return
            else:
                await ws.send(msg)
    except ConnectionClosed:
        pass


async def run_server(compression, tls=None):
    ssl_ctx = None
    if tls:
        import ssl
        ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_ctx.load_cert_chain(tls[0], tls[1])
    async with serve(echo, "127.0.0.1", 0, max_size=None, compression=compression, ssl=ssl_ctx) as srv:
        port = srv.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def run_client(url):
    async with connect(url, max_size=None, compression=None) as ws:
        # Binary, every size class, up to 8 MiB.
        for n in [0, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20, 8 << 20]:
            data = pattern(n, n % 7)
            await ws.send(data)
            got = await ws.recv()
            assert got == data, f"binary {n}: got {len(got)} bytes"
        # Text: our server echoes bytes as binary messages; the payload is the
        # UTF-8 encoding.
        for text in ["", "hello", "grüße ✓ 🚀" * 1000]:
            await ws.send(text)
            got = await ws.recv()
            assert got == text.encode(), f"text {text[:10]!r}: got {got[:20]!r}"
        # Fragmented message.
        await ws.send([b"frag", b"ment", b"ed"])
        got = await ws.recv()
        assert got == b"fragmented", got
        # Ping / pong.
        pong = await ws.ping(b"p1")
        await asyncio.wait_for(pong, 10)
        # Close code comes back.
        await ws.close(4001, "done")
        assert ws.close_code == 4001, ws.close_code
    print("OK", flush=True)


async def run_bench_pipe(url, total, size, inflight):
    """Pipelined echo: `total` messages with `inflight` outstanding; prints
    messages per second."""
    data = os.urandom(size)
    async with connect(url, max_size=None, compression=None) as ws:
        for _ in range(200):
            await ws.send(data)
            await ws.recv()
        window = asyncio.Semaphore(inflight)

        async def reader():
            for _ in range(total):
                await ws.recv()
                window.release()

        t0 = time.perf_counter()
        r = asyncio.create_task(reader())
        for _ in range(total):
            await window.acquire()
            await ws.send(data)
        await r
        rate = total / (time.perf_counter() - t0)
        print(f"msgs_per_s {rate:.0f}", flush=True)


async def run_bench_rtt(url, conns, size):
    """Echo round trips driven by the benchmark: `conns` connections; each
    line "go" on stdin makes one round trip on each connection in turn and
    prints their times in microseconds on one line."""
    data = os.urandom(size)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    clients = [await connect(url, max_size=None, compression=None) for _ in range(conns)]
    print("READY", flush=True)
    while (await stdin.readline()).strip() == b"go":
        times = []
        for ws in clients:
            t0 = time.perf_counter()
            await ws.send(data)
            await ws.recv()
            times.append(f"{(time.perf_counter() - t0) * 1e6:.2f}")
        sys.stdout.write(" ".join(times) + "\n")
        sys.stdout.flush()
    for ws in clients:
        await ws.close()


async def run_stream(url):
    """Through a bridge to a byte-stream echo: message boundaries are not
    kept, the bytes are."""
    async with connect(url, max_size=None, compression=None) as ws:
        for n in [1, 1000, 1 << 20, 8 << 20]:
            data = pattern(n, 3)
            for i in range(0, n, 60000):
                await ws.send(data[i:i + 60000])
            got = b""
            while len(got) < n:
                got += await ws.recv()
            assert got == data, f"{n} bytes through the bridge"
        await ws.close()
    print("OK", flush=True)


async def run_bridge_eof(url):
    """Sends "hello" through a bridge whose target answers and ends: prints
    what came back and the close code we saw."""
    data = b""
    async with connect(url, max_size=None, compression=None) as ws:
        await ws.send(b"hello")
        try:
            while True:
                data += await ws.recv()
        except ConnectionClosed:
            pass
        code = ws.close_code
    print(f"CLOSED {code} {data.decode()}", flush=True)


async def run_send_close(url, n):
    """Sends n bytes through a bridge, then closes: prints the close code."""
    data = pattern(n, 5)
    async with connect(url, max_size=None, compression=None) as ws:
        for i in range(0, n, 60000):
            await ws.send(data[i:i + 60000])
        await ws.close()
        code = ws.close_code
    print(f"CLOSED {code}", flush=True)


async def run_subprotocol(url, origin):
    """Offers "chat" then "binary", as noVNC offers "binary"."""
    try:
        async with connect(url, subprotocols=["chat", "binary"], origin=origin,
                           compression=None) as ws:
            await ws.send(b"hi")
            got = await ws.recv()
            assert got == b"hi", got
            print(f"SUBPROTOCOL {ws.subprotocol}", flush=True)
    except InvalidStatus as e:
        print(f"REFUSED {e.response.status_code}", flush=True)


def main():
    mode = sys.argv[1]
    if mode == "server":
        asyncio.run(run_server(None))
    elif mode == "tls-server":
        asyncio.run(run_server(None, (sys.argv[2], sys.argv[3])))
    elif mode == "client":
        asyncio.run(run_client(sys.argv[2]))
    elif mode == "stream":
        asyncio.run(run_stream(sys.argv[2]))
    elif mode == "bridge-eof":
        asyncio.run(run_bridge_eof(sys.argv[2]))
    elif mode == "send-close":
        asyncio.run(run_send_close(sys.argv[2], int(sys.argv[3])))
    elif mode == "subprotocol":
        asyncio.run(run_subprotocol(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
    elif mode == "bench-pipe":
        asyncio.run(run_bench_pipe(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))
    elif mode == "bench-rtt":
        asyncio.run(run_bench_rtt(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
