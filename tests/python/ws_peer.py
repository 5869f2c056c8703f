"""Python `websockets` peer for jumpwire's websocket interop tests.

  ws_peer.py server          echo server on 127.0.0.1, prints "PORT <n>".
                             Echoes every message with its type; the text
                             message "ping-me" makes it ping the client and
                             answer "pong-ok" once the pong came back; "close
                             CODE" makes it close with CODE.
  ws_peer.py tls-server CERT KEY   the same over TLS (wss://).
  ws_peer.py client URL      runs the client checks against an echo server at
                             URL (jumpwire's), prints "OK" at the end.
  ws_peer.py bench-server    echo server without compression, prints "PORT".
  ws_peer.py bench URL N SIZE INFLIGHT   echo benchmark client, prints figures.
"""

import asyncio
import os
import statistics
import sys
import time

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


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


async def run_bench(url, count, size, inflight):
    """Echo round trips (one in flight): p50; then pipelined messages per
    second with `inflight` outstanding."""
    data = os.urandom(size)
    async with connect(url, max_size=None, compression=None) as ws:
        for _ in range(200):
            await ws.send(data)
            await ws.recv()
        rtts = []
        for _ in range(count):
            t0 = time.perf_counter()
            await ws.send(data)
            await ws.recv()
            rtts.append(time.perf_counter() - t0)
        p50 = statistics.median(rtts) * 1e6
        total = count * 4
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
        print(f"p50_us {p50:.1f} msgs_per_s {rate:.0f}", flush=True)


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
    elif mode == "bench":
        asyncio.run(run_bench(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
