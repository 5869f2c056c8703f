"""A small Jumpstarter controller for the session-protocol tests (issues 13
and 14), written on upstream 0.9.0's generated servicers
(jumpstarter_protocol's ControllerServiceServicer and ClientServiceServicer).

It knows a fixed set of clients, exporters (each with a bearer token) and
leases (a lease name -> its client and its exporter), and does what
upstream's Exporter and upstream's client need of a controller:

  exporters  Register, ReportStatus, Status (the lease state, as a stream
             kept open), Listen (one ListenResponse per client Dial),
             Unregister, ReleaseLease
  clients    ClientService GetLease / GetExporter / DeleteLease (upstream's
             Lease checks the lease before it Dials), and Dial: mints a
             router stream token (HS256 JWT, as the upstream controller
             mints them and as the jumpwire router verifies them), hands the
             router endpoint and token to the lease's Listen stream and
             returns them.

Errors follow the upstream controller (controller_service.go): a lease that
does not exist -> UNKNOWN 'leases.jumpstarter.dev "NAME" not found'; a lease
of another client -> UNKNOWN "permission denied"; an ended lease -> UNKNOWN
"lease not active"; an exporter that reported a status other than
LEASE_READY / the hook states -> FAILED_PRECONDITION ("exporter is not ready
(status: Available)", "exporter is offline", ...). Authentication is this
controller's own (the real one uses OIDC/JWT): a missing bearer token or one
it does not know -> UNAUTHENTICATED, a token of the wrong kind (an exporter's
on a client call) -> PERMISSION_DENIED.

Usage:
  controller.py cert DIR
      Writes a self-signed certificate for 127.0.0.1, ::1 and localhost
      (DIR/cert.pem, DIR/key.pem), prints "CERT <path>" and "KEY <path>",
      exits. Upstream's client and exporter reach the controller and the
      router over TLS only: give both this pair, and the client and exporter
      configurations tls.ca = base64 of cert.pem (or tls.insecure).

  controller.py serve --router HOST:PORT --router-key KEY
                      [--cert FILE --key FILE] [--namespace NS]
                      [--client NAME=TOKEN]... [--exporter NAME=TOKEN]...
                      [--lease LEASE=CLIENT:EXPORTER]...
      Serves on 127.0.0.1:0, over TLS with --cert/--key, else insecure
      gRPC. --router is the endpoint Dial and Listen hand out, as upstream
      does: HOST:PORT (a grpc:// or grpcs:// prefix is dropped; upstream's
      client and exporter always dial it with TLS). Prints "PORT <n>", then
      one line per event, flushed:
        REGISTERED <exporter>
        STATUS <exporter> <ExporterStatus name>     (ReportStatus)
        STATUS-STREAM <exporter>                    (a Status call began)
        LISTEN <lease>                              (a Listen call began)
        DIAL <lease> <stream id>
        UNREGISTERED <exporter>
        ENDED <lease>
        LEASED <lease>
      Reads commands from stdin, one per line:
        end LEASE    ends the lease (exporter sees leased=false; Dial fails)
        lease LEASE CLIENT EXPORTER
                     a new lease of CLIENT on EXPORTER (printed: LEASED
                     <lease>); the exporter's Status stream tells it once
                     no earlier lease of it is still up
        status EXPORTER STATUS
                     records STATUS (the controller's name: Available,
                     LeaseReady, Offline, ...) as the exporter's reported
                     status, as if it had sent ReportStatus (for an
                     exporter that is not ready, without one running)
      and stops when stdin closes (or when killed).
"""

import argparse
import asyncio
import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import os
import sys
import time
import uuid

import grpc
from google.protobuf import empty_pb2, timestamp_pb2
from jumpstarter_protocol import client_pb2, client_pb2_grpc, jumpstarter_pb2, jumpstarter_pb2_grpc, kubernetes_pb2
from jumpstarter_protocol.jumpstarter.v1 import common_pb2

ISSUER = "https://jumpstarter.dev/stream"
AUDIENCE = "https://jumpstarter.dev/router"
TOKEN_TTL = 30 * 60  # as the upstream controller

# ExporterStatus (proto) -> the name the upstream controller stores and puts
# in its Dial errors.
CRD_STATUS = {
    common_pb2.EXPORTER_STATUS_UNSPECIFIED: "Unspecified",
    common_pb2.EXPORTER_STATUS_OFFLINE: "Offline",
    common_pb2.EXPORTER_STATUS_AVAILABLE: "Available",
    common_pb2.EXPORTER_STATUS_BEFORE_LEASE_HOOK: "BeforeLeaseHook",
    common_pb2.EXPORTER_STATUS_LEASE_READY: "LeaseReady",
    common_pb2.EXPORTER_STATUS_AFTER_LEASE_HOOK: "AfterLeaseHook",
    common_pb2.EXPORTER_STATUS_BEFORE_LEASE_HOOK_FAILED: "BeforeLeaseHookFailed",
    common_pb2.EXPORTER_STATUS_AFTER_LEASE_HOOK_FAILED: "AfterLeaseHookFailed",
}


def event(*words):
    print(*words, flush=True)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_token(key: str, stream_id: str) -> str:
    """A router stream token as the upstream controller mints it (HS256,
    RegisteredClaims in Go's field order)."""
    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "iss": ISSUER,
        "sub": stream_id,
        "aud": [AUDIENCE],
        "exp": now + TOKEN_TTL,
        "nbf": now,
        "iat": now,
        "jti": str(uuid.uuid4()),
    }
    signing_input = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + b64url(
        json.dumps(claims, separators=(",", ":")).encode()
    )
    sig = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


class Lease:
    def __init__(self, name, client, exporter):
        self.name = name
        self.client = client
        self.exporter = exporter
        self.ended = False
        self.begin = time.time()
        self.end = None
        # Dial -> Listen, as upstream's per-lease queue (8 deep).
        self.queue = asyncio.Queue(maxsize=8)


class Exporter:
    def __init__(self, name):
        self.name = name
        self.labels = {}
        self.reports = []
        self.status = ""  # the upstream controller's status string; "" = never reported
        self.changed = asyncio.Event()

    def notify(self):
        self.changed.set()
        self.changed = asyncio.Event()


class State:
    def __init__(self, args):
        self.namespace = args.namespace
        self.router = args.router.removeprefix("grpcs://").removeprefix("grpc://")
        self.router_key = args.router_key
        self.tokens = {}  # token -> (kind, name)
        for spec in args.client:
            name, token = spec.split("=", 1)
            self.tokens[token] = ("Client", name)
        self.exporters = {}
        for spec in args.exporter:
            name, token = spec.split("=", 1)
            self.tokens[token] = ("Exporter", name)
            self.exporters[name] = Exporter(name)
        self.leases = {}
        for spec in args.lease:
            name, rest = spec.split("=", 1)
            client, exporter = rest.split(":", 1)
            self.leases[name] = Lease(name, client, exporter)

    async def who(self, context, kind):
        """The caller's name, if its bearer token is one of `kind`'s."""
        auth = dict(context.invocation_metadata()).get("authorization")
        if auth is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing authorization header")
        if not auth[:7].lower() == "bearer ":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "malformed authorization header")
        found = self.tokens.get(auth[7:])
        if found is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "failed to authenticate token")
        if found[0] != kind:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "permission denied")
        return found[1]

    def lease_of(self, exporter):
        for lease in self.leases.values():
            if lease.exporter == exporter and not lease.ended:
                return lease
        return None

    def end_lease(self, name):
        lease = self.leases.get(name)
        if lease is None or lease.ended:
            return
        lease.ended = True
        lease.end = time.time()
        event("ENDED", name)
        exp = self.exporters.get(lease.exporter)
        if exp is not None:
            exp.notify()


def status_response(lease):
    if lease is None:
        return jumpstarter_pb2.StatusResponse(leased=False)
    return jumpstarter_pb2.StatusResponse(leased=True, lease_name=lease.name, client_name=lease.client)


class Controller(jumpstarter_pb2_grpc.ControllerServiceServicer):
    def __init__(self, state):
        self.s = state

    async def Register(self, request, context):
        name = await self.s.who(context, "Exporter")
        exp = self.s.exporters[name]
        exp.labels = dict(request.labels)
        exp.reports = list(request.reports)
        event("REGISTERED", name)
        return jumpstarter_pb2.RegisterResponse(uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, name)))

    async def Unregister(self, request, context):
        name = await self.s.who(context, "Exporter")
        exp = self.s.exporters[name]
        exp.reports = []
        exp.status = "Offline"
        event("UNREGISTERED", name)
        return jumpstarter_pb2.UnregisterResponse()

    async def ReportStatus(self, request, context):
        name = await self.s.who(context, "Exporter")
        exp = self.s.exporters[name]
        exp.status = CRD_STATUS.get(request.status, "Unspecified")
        event("STATUS", name, common_pb2.ExporterStatus.Name(request.status))
        if request.release_lease:
            lease = self.s.lease_of(name)
            if lease is not None:
                self.s.end_lease(lease.name)
        return jumpstarter_pb2.ReportStatusResponse()

    async def ReleaseLease(self, request, context):
        name = await self.s.who(context, "Exporter")
        lease = self.s.leases.get(request.name)
        if lease is None or lease.exporter != name:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "permission denied")
        self.s.end_lease(lease.name)
        return jumpstarter_pb2.ReleaseLeaseResponse()

    async def Status(self, request, context):
        name = await self.s.who(context, "Exporter")
        exp = self.s.exporters[name]
        event("STATUS-STREAM", name)
        last = None
        while True:
            changed = exp.changed
            current = status_response(self.s.lease_of(name))
            if current != last:
                yield current
                last = current
            await changed.wait()

    async def Listen(self, request, context):
        name = await self.s.who(context, "Exporter")
        if request.lease_name == "":
            await context.abort(grpc.StatusCode.UNKNOWN, "empty lease name")
        lease = self.s.leases.get(request.lease_name)
        if lease is None:
            await context.abort(grpc.StatusCode.UNKNOWN, f'leases.jumpstarter.dev "{request.lease_name}" not found')
        if lease.exporter != name:
            await context.abort(grpc.StatusCode.UNKNOWN, "permission denied")
        event("LISTEN", lease.name)
        while True:
            yield await lease.queue.get()

    async def Dial(self, request, context):
        name = await self.s.who(context, "Client")
        if request.lease_name == "":
            await context.abort(grpc.StatusCode.UNKNOWN, "empty lease name")
        lease = self.s.leases.get(request.lease_name)
        if lease is None:
            await context.abort(grpc.StatusCode.UNKNOWN, f'leases.jumpstarter.dev "{request.lease_name}" not found')
        if lease.client != name:
            await context.abort(grpc.StatusCode.UNKNOWN, "permission denied")
        if lease.ended:
            await context.abort(grpc.StatusCode.UNKNOWN, "lease not active")
        exp = self.s.exporters.get(lease.exporter)
        status = exp.status if exp else ""
        problem = {
            "Offline": "exporter is offline",
            "Available": "exporter is not ready (status: Available)",
            "BeforeLeaseHookFailed": "exporter beforeLease hook failed",
            "AfterLeaseHookFailed": "exporter afterLease hook failed",
        }.get(status)
        if problem is None and status not in ("", "Unspecified", "LeaseReady", "BeforeLeaseHook", "AfterLeaseHook"):
            problem = f"exporter not ready (status: {status})"
        if problem is not None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, problem)
        stream = str(uuid.uuid4())
        token = mint_token(self.s.router_key, stream)
        await lease.queue.put(jumpstarter_pb2.ListenResponse(router_endpoint=self.s.router, router_token=token))
        event("DIAL", lease.name, stream)
        return jumpstarter_pb2.DialResponse(router_endpoint=self.s.router, router_token=token)


def timestamp(t):
    ts = timestamp_pb2.Timestamp()
    ts.FromSeconds(int(t))
    return ts


class Clients(client_pb2_grpc.ClientServiceServicer):
    def __init__(self, state):
        self.s = state

    def path(self, kind, name):
        return f"namespaces/{self.s.namespace}/{kind}/{name}"

    async def lease_named(self, context, path):
        prefix = f"namespaces/{self.s.namespace}/leases/"
        lease = self.s.leases.get(path.removeprefix(prefix)) if path.startswith(prefix) else None
        if lease is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f'leases.jumpstarter.dev "{path.rsplit("/", 1)[-1]}" not found')
        return lease

    async def GetLease(self, request, context):
        name = await self.s.who(context, "Client")
        lease = await self.lease_named(context, request.name)
        if lease.client != name:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "permission denied")
        msg = client_pb2.Lease(
            name=self.path("leases", lease.name),
            selector="",
            client=self.path("clients", lease.client),
            exporter=self.path("exporters", lease.exporter),
            effective_begin_time=timestamp(lease.begin),
        )
        msg.duration.FromTimedelta(datetime.timedelta(minutes=30))
        if lease.ended:
            msg.effective_end_time.CopyFrom(timestamp(lease.end))
            conditions = [("Pending", "False", "Ended"), ("Ready", "False", "Expired")]
        else:
            conditions = [("Pending", "False", "Ready"), ("Ready", "True", "Ready")]
        for type_, status, reason in conditions:
            msg.conditions.append(kubernetes_pb2.Condition(type=type_, status=status, reason=reason, message=""))
        return msg

    async def GetExporter(self, request, context):
        await self.s.who(context, "Client")
        prefix = f"namespaces/{self.s.namespace}/exporters/"
        exp = self.s.exporters.get(request.name.removeprefix(prefix)) if request.name.startswith(prefix) else None
        if exp is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "exporter not found")
        return client_pb2.Exporter(name=request.name, labels=exp.labels)

    async def DeleteLease(self, request, context):
        name = await self.s.who(context, "Client")
        lease = await self.lease_named(context, request.name)
        if lease.client != name:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "permission denied")
        self.s.end_lease(lease.name)
        return empty_pb2.Empty()


def make_cert(directory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jumpwire test controller")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    os.makedirs(directory, exist_ok=True)
    cert_path = os.path.join(directory, "cert.pem")
    key_path = os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    print("CERT", cert_path)
    print("KEY", key_path, flush=True)


async def serve(args):
    state = State(args)
    server = grpc.aio.server(
        options=[
            # Upstream's clients ping every 20 s, also without calls.
            ("grpc.http2.min_ping_interval_without_data_ms", 10000),
            ("grpc.keepalive_permit_without_calls", 1),
        ]
    )
    jumpstarter_pb2_grpc.add_ControllerServiceServicer_to_server(Controller(state), server)
    client_pb2_grpc.add_ClientServiceServicer_to_server(Clients(state), server)
    if args.cert:
        with open(args.cert, "rb") as c, open(args.key, "rb") as k:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    event("PORT", port)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        words = line.decode().split()
        if len(words) == 2 and words[0] == "end":
            state.end_lease(words[1])
        elif len(words) == 4 and words[0] == "lease" and words[1] not in state.leases:
            # A new lease NAME of CLIENT on EXPORTER, from now on.
            state.leases[words[1]] = Lease(words[1], words[2], words[3])
            event("LEASED", words[1])
            exp = state.exporters.get(words[3])
            if exp is not None:
                exp.notify()
        elif len(words) == 3 and words[0] == "status" and words[1] in state.exporters:
            state.exporters[words[1]].status = words[2]
            event("STATUS-SET", words[1], words[2])
    await server.stop(grace=None)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("cert")
    c.add_argument("dir")
    s = sub.add_parser("serve")
    s.add_argument("--router", required=True)
    s.add_argument("--router-key", required=True)
    s.add_argument("--cert")
    s.add_argument("--key")
    s.add_argument("--namespace", default="default")
    s.add_argument("--client", action="append", default=[])
    s.add_argument("--exporter", action="append", default=[])
    s.add_argument("--lease", action="append", default=[])
    a = p.parse_args()
    if a.mode == "cert":
        make_cert(a.dir)
    else:
        if bool(a.cert) != bool(a.key):
            p.error("--cert and --key go together")
        asyncio.run(serve(a))
