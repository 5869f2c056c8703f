"""Upstream 0.9.0's client forwarding local TCP ports onto a session's
drivers (bench/session.rs): `env()` with JUMPSTARTER_HOST, and one
`TcpPortforwardAdapter` per driver named on the command line. Prints
"FORWARD NAME HOST:PORT" per driver, then "READY", and forwards until its
stdin closes."""

import os
import sys
from contextlib import ExitStack

from jumpstarter.utils.env import env
from jumpstarter_driver_network.adapters import TcpPortforwardAdapter


def main():
    os.environ.setdefault(
        "JMP_DRIVERS_ALLOW", "jumpstarter_driver_network.*,jumpstarter_driver_composite.*"
    )
    with env() as client, ExitStack() as stack:
        for name in sys.argv[1:]:
            host, port = stack.enter_context(TcpPortforwardAdapter(client=client.children[name]))
            print(f"FORWARD {name} {host}:{port}", flush=True)
        print("READY", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
