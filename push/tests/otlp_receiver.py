#!/usr/bin/env python3
"""An OTLP/HTTP metrics receiver for herd-push's tests.

Listens on 127.0.0.1 (a free port), prints `listening PORT`, then decodes every
`POST /v1/metrics` body with PyPI's opentelemetry-proto (the reference Python
bindings) and prints one JSON line per request: the resource attributes, the scope,
and every metric with every data point, in a shape the Rust test compares with what
it recorded. A body that does not decode answers 400 and prints `{"error": ...}`.
Exits when stdin closes (the test dropped it), or after --timeout seconds.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)


def attrs(kvs):
    out = {}
    for kv in kvs:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


def number(p):
    which = p.WhichOneof("value")
    return {
        "attributes": attrs(p.attributes),
        "value": getattr(p, which) if which else None,
        "kind": which,
        "start": p.start_time_unix_nano,
        "time": p.time_unix_nano,
    }


def metric(m):
    which = m.WhichOneof("data")
    out = {"name": m.name, "description": m.description, "unit": m.unit, "type": which}
    if which == "sum":
        out["temporality"] = m.sum.aggregation_temporality
        out["monotonic"] = m.sum.is_monotonic
        out["points"] = [number(p) for p in m.sum.data_points]
    elif which == "gauge":
        out["points"] = [number(p) for p in m.gauge.data_points]
    elif which == "histogram":
        out["temporality"] = m.histogram.aggregation_temporality
        out["points"] = [
            {
                "attributes": attrs(p.attributes),
                "count": p.count,
                "sum": p.sum if p.HasField("sum") else None,
                "bucket_counts": list(p.bucket_counts),
                "explicit_bounds": list(p.explicit_bounds),
                "start": p.start_time_unix_nano,
                "time": p.time_unix_nano,
            }
            for p in m.histogram.data_points
        ]
    elif which == "exponential_histogram":
        out["temporality"] = m.exponential_histogram.aggregation_temporality
        out["points"] = [
            {
                "attributes": attrs(p.attributes),
                "count": p.count,
                "sum": p.sum if p.HasField("sum") else None,
                "scale": p.scale,
                "zero_count": p.zero_count,
                "zero_threshold": p.zero_threshold,
                "positive": [p.positive.offset, list(p.positive.bucket_counts)],
                "negative": [p.negative.offset, list(p.negative.bucket_counts)],
                "start": p.start_time_unix_nano,
                "time": p.time_unix_nano,
            }
            for p in m.exponential_histogram.data_points
        ]
    elif which == "summary":
        out["points"] = [
            {
                "attributes": attrs(p.attributes),
                "count": p.count,
                "sum": p.sum,
                "quantiles": [[q.quantile, q.value] for q in p.quantile_values],
                "start": p.start_time_unix_nano,
                "time": p.time_unix_nano,
            }
            for p in m.summary.data_points
        ]
    return out


def decode(body):
    request = ExportMetricsServiceRequest()
    request.ParseFromString(body)
    resources = []
    for rm in request.resource_metrics:
        resources.append(
            {
                "resource": attrs(rm.resource.attributes),
                "scopes": [
                    {
                        "scope": {"name": sm.scope.name, "version": sm.scope.version},
                        "metrics": [metric(m) for m in sm.metrics],
                    }
                    for sm in rm.scope_metrics
                ],
            }
        )
    return {"resource_metrics": resources}


lock = threading.Lock()


def emit(obj):
    with lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        status = 200
        try:
            if self.path != "/v1/metrics":
                raise ValueError("unexpected path " + self.path)
            if self.headers.get("Content-Type") != "application/x-protobuf":
                raise ValueError("unexpected content type %r" % self.headers.get("Content-Type"))
            decoded = decode(body)
            decoded["path"] = self.path
            emit(decoded)
            answer = ExportMetricsServiceResponse().SerializeToString()
        except (DecodeError, ValueError) as e:
            emit({"error": str(e)})
            status = 400
            answer = str(e).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def main():
    timeout = 120.0
    if len(sys.argv) == 3 and sys.argv[1] == "--timeout":
        timeout = float(sys.argv[2])
    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    emit_line = "listening %d\n" % server.server_address[1]
    sys.stdout.write(emit_line)
    sys.stdout.flush()
    # Ends when the test closes stdin, or at the timeout, whichever comes first.
    done = threading.Event()

    def watch_stdin():
        sys.stdin.read()
        done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    done.wait(timeout)
    server.shutdown()


if __name__ == "__main__":
    main()
