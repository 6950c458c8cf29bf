"""An OTLP receiver made only of PyPI parts (grpcio + opentelemetry-proto, and the standard
library's HTTP server) that records what it receives, for checking Sonde's OTLP exporter against
a server no one here wrote.

Every export request is appended to --out as one JSON line:
  {"transport": "grpc"|"http", "signal": "traces"|"metrics"|"logs", "path": ...,
   "headers": {...}, "body": "<base64 of the serialized export request>"}
Prints "READY" once both listeners are up. Optional TLS (--tls-cert/--tls-key) and mutual TLS
(--client-ca). Loopback only. Stops on SIGTERM.
"""

import argparse
import base64
import gzip
import json
import signal
import ssl
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as ls, logs_service_pb2_grpc as lsg
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as ms, metrics_service_pb2_grpc as msg
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as ts, trace_service_pb2_grpc as tsg

LOCK = threading.Lock()


def record(out, transport, signal_name, path, headers, body: bytes):
    line = json.dumps(
        {
            "transport": transport,
            "signal": signal_name,
            "path": path,
            "headers": headers,
            "body": base64.b64encode(body).decode(),
        }
    )
    with LOCK:
        with open(out, "a") as f:
            f.write(line + "\n")


def servicers(out):
    def meta(context):
        return {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}

    class Traces(tsg.TraceServiceServicer):
        def Export(self, request, context):
            record(out, "grpc", "traces", "TraceService/Export", meta(context), request.SerializeToString())
            return ts.ExportTraceServiceResponse()

    class Metrics(msg.MetricsServiceServicer):
        def Export(self, request, context):
            record(out, "grpc", "metrics", "MetricsService/Export", meta(context), request.SerializeToString())
            return ms.ExportMetricsServiceResponse()

    class Logs(lsg.LogsServiceServicer):
        def Export(self, request, context):
            record(out, "grpc", "logs", "LogsService/Export", meta(context), request.SerializeToString())
            return ls.ExportLogsServiceResponse()

    return Traces(), Metrics(), Logs()


def http_handler(out):
    signals = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            n = int(self.headers.get("content-length", "0"))
            data = self.rfile.read(n)
            enc = (self.headers.get("content-encoding") or "").lower()
            if enc == "gzip":
                data = gzip.decompress(data)
            elif enc == "zstd":
                import zstandard

                data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
            sig = signals.get(self.path)
            if sig is None or self.headers.get("content-type") != "application/x-protobuf":
                self.send_response(404 if sig is None else 415)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            record(out, "http", sig, self.path, {k.lower(): v for k, v in self.headers.items()}, data)
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grpc-port", type=int, required=True)
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--client-ca")
    a = ap.parse_args()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    t, m, l = servicers(a.out)
    tsg.add_TraceServiceServicer_to_server(t, server)
    msg.add_MetricsServiceServicer_to_server(m, server)
    lsg.add_LogsServiceServicer_to_server(l, server)
    addr = f"127.0.0.1:{a.grpc_port}"
    if a.tls_cert:
        key = open(a.tls_key, "rb").read()
        cert = open(a.tls_cert, "rb").read()
        ca = open(a.client_ca, "rb").read() if a.client_ca else None
        creds = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)
        server.add_secure_port(addr, creds)
    else:
        server.add_insecure_port(addr)
    server.start()

    httpd = ThreadingHTTPServer(("127.0.0.1", a.http_port), http_handler(a.out))
    if a.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        if a.client_ca:
            ctx.load_verify_locations(a.client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("READY", flush=True)
    stop.wait()
    httpd.shutdown()
    server.stop(grace=1)
    sys.exit(0)


if __name__ == "__main__":
    main()
