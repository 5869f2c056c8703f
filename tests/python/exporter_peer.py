"""Upstream Jumpstarter 0.9.0's own Exporter, connected to a controller, for
the session-protocol tests (issues 13 and 14).

Builds an upstream ExporterConfigV1Alpha1 (the YAML an exporter is deployed
with: metadata, endpoint, token, tls, export) exporting the driver tree of
session_peer.py (tcp, udp, unix, echo, dut.console, onto this script's own
echo servers) and runs `config.serve()`, upstream's Exporter: Register, the
Status stream, and for its lease a session whose Listen responses it serves
through the router (`connect_router_stream`, always TLS).

Usage:
  exporter_peer.py --endpoint HOST:PORT --token TOKEN --name NAME
                   [--namespace NS] (--ca CERT.pem | --insecure-tls)
                   [--config-out FILE]

--ca is the PEM certificate the controller and the router present (the
config's tls.ca is its base64); --insecure-tls sets tls.insecure (upstream
then trusts whatever chain the server presents). --config-out also writes
the configuration as YAML, as upstream saves it.

Prints "tcp HOST:PORT", "udp HOST:PORT", "unix PATH" (the echo servers),
then "READY" once the exporter runs (registration is seen on the controller:
its REGISTERED line), and runs until its stdin closes (or it is killed).
"""

import argparse
import base64
import sys

import anyio
from anyio import to_thread
from session_peer import echo_servers, export_config, print_addrs

from jumpstarter.config.common import ObjectMeta
from jumpstarter.config.exporter import ExporterConfigV1Alpha1
from jumpstarter.config.tls import TLSConfigV1Alpha1


async def main(args):
    if args.ca:
        with open(args.ca, "rb") as f:
            tls = TLSConfigV1Alpha1(ca=base64.b64encode(f.read()).decode())
    else:
        tls = TLSConfigV1Alpha1(insecure=True)
    async with echo_servers() as addrs:
        config = ExporterConfigV1Alpha1.model_validate(
            {
                "metadata": ObjectMeta(namespace=args.namespace, name=args.name),
                "endpoint": args.endpoint,
                "token": args.token,
                "tls": tls,
                "export": export_config(addrs),
            }
        )
        if args.config_out:
            ExporterConfigV1Alpha1.save(config, args.config_out)
        async with anyio.create_task_group() as tg:
            tg.start_soon(config.serve)
            print_addrs(addrs)
            print("READY", flush=True)
            await to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
            tg.cancel_scope.cancel()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--namespace", default="default")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--ca")
    g.add_argument("--insecure-tls", action="store_true")
    p.add_argument("--config-out")
    anyio.run(main, p.parse_args())
