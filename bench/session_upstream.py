"""Upstream Jumpstarter 0.9.0's own forwarding, for bench/session.rs:
upstream's client on an exporter session and TcpPortforwardAdapter on its
`tcp` driver (what `j tcp forward-tcp` runs), serving a local port until
stdin closes.

Usage:
  session_upstream.py session SOCKET
      the session on that Unix socket (as inside `jmp shell`: env() with
      JUMPSTARTER_HOST)
  session_upstream.py lease ENDPOINT CA_PEM LEASE NAME TOKEN
      the session of LEASE through the controller at ENDPOINT and its router
      (ClientConfigV1Alpha1.lease(lease_name=LEASE).connect(), TLS with
      CA_PEM, client NAME in namespace "default" with TOKEN)

Prints "PORT HOST:PORT" (the adapter's local port) once it listens.
"""

import base64
import os
import sys

ALLOW = "jumpstarter_driver_network.*,jumpstarter_driver_composite.*"


def serve(client):
    from jumpstarter_driver_network.adapters import TcpPortforwardAdapter

    with TcpPortforwardAdapter(client=client.tcp) as (host, port):
        print(f"PORT {host}:{port}", flush=True)
        sys.stdin.read()


def main():
    mode = sys.argv[1]
    os.environ["JMP_DRIVERS_ALLOW"] = ALLOW
    if mode == "session":
        from jumpstarter.utils.env import env

        os.environ["JUMPSTARTER_HOST"] = sys.argv[2]
        with env() as client:
            serve(client)
    elif mode == "lease":
        from jumpstarter.config.client import ClientConfigV1Alpha1, ClientConfigV1Alpha1Drivers
        from jumpstarter.config.common import ObjectMeta
        from jumpstarter.config.tls import TLSConfigV1Alpha1

        endpoint, ca, lease, name, token = sys.argv[2:7]
        with open(ca, "rb") as f:
            tls = TLSConfigV1Alpha1(ca=base64.b64encode(f.read()).decode())
        config = ClientConfigV1Alpha1(
            metadata=ObjectMeta(namespace="default", name=name),
            endpoint=endpoint,
            token=token,
            tls=tls,
            drivers=ClientConfigV1Alpha1Drivers(allow=ALLOW.split(",")),
        )
        with config.lease(lease_name=lease) as l:
            with l.connect() as client:
                serve(client)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
