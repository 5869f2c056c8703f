"""Raw gRPC calls with bad input against a session (issue 14), with
upstream 0.9.0's generated stubs: unknown and malformed uuids, methods a
driver does not have, malformed `request` metadata, gRPC methods that do
not exist. Then the session must still serve: GetReport, GetStatus,
EndSession and a driver stream through `tcp` (an echo target) that ends
with OK after both directions ended.

Usage: session_bad_input.py SOCKET_PATH (the session must have a `tcp`
driver whose target echoes). Prints one line per case:
  "CASE CODE DETAILS"   (CODE: the grpc.StatusCode name, or OK)
and "DONE" at the end.
"""

import json
import sys
import uuid

import grpc
from google.protobuf import empty_pb2, struct_pb2

from jumpstarter_protocol.jumpstarter.v1 import (
    common_pb2,
    jumpstarter_pb2,
    jumpstarter_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
)

TIMEOUT = 10


def report(case, fn):
    try:
        r = fn()
        print(f"{case} OK {r}", flush=True)
    except grpc.RpcError as e:
        details = (e.details() or "").replace("\n", " ")
        print(f"{case} {e.code().name} {details}", flush=True)


def stream_call(stub, metadata, frames=()):
    def requests():
        yield from frames

    call = stub.Stream(requests(), metadata=metadata, timeout=TIMEOUT)
    out = []
    for r in call:
        out.append((router_pb2.FrameType.Name(r.frame_type), r.payload))
    return out


def request(uuid_, method="connect", kind="driver"):
    return (("request", json.dumps({"kind": kind, "uuid": uuid_, "method": method}, separators=(",", ":"))),)


def main():
    path = sys.argv[1]
    with grpc.insecure_channel(f"unix://{path}") as ch:
        ex = jumpstarter_pb2_grpc.ExporterServiceStub(ch)
        rt = router_pb2_grpc.RouterServiceStub(ch)
        rep = ex.GetReport(empty_pb2.Empty(), timeout=TIMEOUT)
        root = next(r.uuid for r in rep.reports if not r.HasField("parent_uuid"))
        tcp = next(r.uuid for r in rep.reports if r.labels.get("jumpstarter.dev/name") == "tcp")
        other = str(uuid.uuid4())

        def call(u, m, args=()):
            return lambda: ex.DriverCall(
                jumpstarter_pb2.DriverCallRequest(uuid=u, method=m, args=list(args)), timeout=TIMEOUT
            ).result.string_value

        report("call-unknown-uuid", call(other, "address"))
        report("call-bad-uuid", call("nope", "address"))
        report("call-empty-uuid", call("", "address"))
        report("call-no-method", call(tcp, "nosuch"))
        report("call-stream-method", call(tcp, "connect"))
        report("call-root", call(root, "address"))
        report("call-args", call(tcp, "address", [struct_pb2.Value(number_value=1)]))
        report("call-address", call(tcp, "address"))

        def streaming():
            return list(
                ex.StreamingDriverCall(
                    jumpstarter_pb2.StreamingDriverCallRequest(uuid=tcp, method="address"), timeout=TIMEOUT
                )
            )

        report("streamingcall-address", streaming)
        report("stream-no-metadata", lambda: stream_call(rt, ()))
        report("stream-not-json", lambda: stream_call(rt, (("request", "{nope"),)))
        report("stream-bad-uuid", lambda: stream_call(rt, request("nope")))
        report("stream-unknown-uuid", lambda: stream_call(rt, request(other)))
        report("stream-no-method", lambda: stream_call(rt, request(tcp, "nosuch")))
        report("stream-call-method", lambda: stream_call(rt, request(tcp, "address")))
        report("stream-root", lambda: stream_call(rt, request(root)))
        nope = ch.unary_unary(
            "/jumpstarter.v1.ExporterService/Nope",
            request_serializer=empty_pb2.Empty.SerializeToString,
            response_deserializer=empty_pb2.Empty.FromString,
        )
        report("no-such-method", lambda: nope(empty_pb2.Empty(), timeout=TIMEOUT))
        nope = ch.unary_unary(
            "/nope.Service/Call",
            request_serializer=empty_pb2.Empty.SerializeToString,
            response_deserializer=empty_pb2.Empty.FromString,
        )
        report("no-such-service", lambda: nope(empty_pb2.Empty(), timeout=TIMEOUT))
        report("reset", lambda: ex.Reset(jumpstarter_pb2.ResetRequest(), timeout=TIMEOUT))
        # Still serving.
        report("report", lambda: len(ex.GetReport(empty_pb2.Empty(), timeout=TIMEOUT).reports))
        report(
            "status",
            lambda: common_pb2.ExporterStatus.Name(
                ex.GetStatus(jumpstarter_pb2.GetStatusRequest(), timeout=TIMEOUT).status
            ),
        )
        report(
            "end-session",
            lambda: ex.EndSession(jumpstarter_pb2.EndSessionRequest(), timeout=TIMEOUT).success,
        )
        frames = [
            router_pb2.StreamRequest(payload=b"ping", frame_type=router_pb2.FRAME_TYPE_DATA),
            router_pb2.StreamRequest(frame_type=router_pb2.FRAME_TYPE_PING),
            router_pb2.StreamRequest(frame_type=router_pb2.FRAME_TYPE_GOAWAY),
        ]

        def echo():
            got = stream_call(rt, request(tcp), frames)
            data = b"".join(p for t, p in got if t == "FRAME_TYPE_DATA")
            return f"{data.decode()} {got[-1][0]}"

        report("stream-echo", echo)
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
