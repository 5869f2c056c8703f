"""Upstream Jumpstarter 0.9.0's own client dialling a lease, for the
exporter tests (issue 14): `ClientConfigV1Alpha1.lease(lease_name=...)`
and `lease.connect()`, as `jmp shell --lease` does, with the client
configuration given on the command line (the test controller's endpoint,
the client's token, tls.ca the controller's certificate).

Usage:
  lease_client_peer.py --endpoint HOST:PORT --token TOKEN --name CLIENT
                       --ca CERT.pem --lease LEASE --driver NAME --bytes N

Prints "ADDRESS <driver's address()>", then round-trips N bytes (a
pattern, in 16 KiB chunks, each echoed back before the next) through the
driver's `stream()`, checking every byte, and prints "ROUNDTRIP N
SHA256" (of the data); exits non-zero on any failure.
"""

import argparse
import base64
import hashlib
import sys


def main():
    p = argparse.ArgumentParser()
    for a in ("--endpoint", "--token", "--name", "--ca", "--lease", "--driver"):
        p.add_argument(a, required=True)
    p.add_argument("--bytes", type=int, required=True)
    args = p.parse_args()

    from jumpstarter.config.client import ClientConfigV1Alpha1, ClientConfigV1Alpha1Drivers
    from jumpstarter.config.common import ObjectMeta
    from jumpstarter.config.tls import TLSConfigV1Alpha1

    with open(args.ca, "rb") as f:
        tls = TLSConfigV1Alpha1(ca=base64.b64encode(f.read()).decode())
    config = ClientConfigV1Alpha1(
        metadata=ObjectMeta(namespace="default", name=args.name),
        endpoint=args.endpoint,
        token=args.token,
        tls=tls,
        drivers=ClientConfigV1Alpha1Drivers(allow=["jumpstarter_driver_network.*", "jumpstarter_driver_composite.*"]),
    )
    data = bytes((i * 7 + 3) % 251 for i in range(args.bytes))
    with config.lease(lease_name=args.lease) as lease:
        with lease.connect() as client:
            driver = getattr(client, args.driver)
            print("ADDRESS", driver.address(), flush=True)
            with driver.stream() as s:
                for at in range(0, len(data), 16384):
                    chunk = data[at : at + 16384]
                    s.send(chunk)
                    got = b""
                    while len(got) < len(chunk):
                        got += s.receive()
                    assert got == chunk, f"the echo differs at {at}"
    print("ROUNDTRIP", len(data), hashlib.sha256(data).hexdigest(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
