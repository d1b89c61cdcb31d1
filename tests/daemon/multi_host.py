"""Several snapvold behind one address, for the suites' three-host mode (SNAPVOL_DAEMON_HOSTS,
README.md) and the multi-host tests of tests/pg: how a second host's data dir is made from the
first's, and a round-robin balancer that sends each HTTP request to the next host in turn.

The balancer is what a plain load balancer in front of a cluster does, per request rather than
per connection: a client that keeps one connection open (boto3, the AWS CLI's paginators) still
reaches every host in turn. It forwards the request as received (method, target, headers with
Host, body), so a SigV4 signature made for the balancer's address verifies on any host; the
answer goes back as the host gave it. A host that is down (a test restarting "the" daemon)
gets its turn too and the client sees a 502, as behind a real balancer without health checks.

Thread safety: Balancer serves each connection on a thread of its own; its counters are guarded
by its lock.
"""

from __future__ import annotations

import http.client
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# What a second host copies from the first's data dir: never host-id, which names the host.
SHARED_FILES = ("catalog.json", "secrets.key", "store.key", "store.json", "admin-credentials")


def join_data_dir(template: Path, data_dir: Path):
    """Makes data_dir a second host of template's cluster: a copy of template's SHARED_FILES,
    and its local store directory as a symlink when it has one (an S3 store is shared through
    store.json). The new host names itself (host-id) when its snapvold first starts."""
    template, data_dir = Path(template), Path(data_dir)
    data_dir.mkdir(parents=True)
    for name in SHARED_FILES:
        if (template / name).exists():
            shutil.copy2(template / name, data_dir / name)
    if (template / "store").is_dir():
        (data_dir / "store").symlink_to(template / "store")


# Headers that belong to one hop (RFC 9110 section 7.6.1), never forwarded.
_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authorization", "proxy-authenticate"}


class Balancer:
    """Listens on 127.0.0.1:0 and sends request k (counted over all connections) to
    daemons[k % len(daemons)], each daemon's current endpoint (it changes when a test restarts
    one). `served[i]` counts the requests daemons[i] answered."""

    def __init__(self, daemons: list):
        self.daemons = list(daemons)
        self.served = [0] * len(self.daemons)
        self.failed = 0  # requests no host answered (502)
        self._next = 0
        self._lock = threading.Lock()
        balancer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                balancer._forward(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()

    def _pick(self) -> int:
        with self._lock:
            i = self._next % len(self.daemons)
            self._next += 1
            return i

    @staticmethod
    def _read_body(h: BaseHTTPRequestHandler) -> bytes:
        if "chunked" in (h.headers.get("Transfer-Encoding") or "").lower():
            out = b""
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return out
                out += h.rfile.read(size)
                h.rfile.readline()
        return h.rfile.read(int(h.headers.get("Content-Length") or 0))

    def _forward(self, h: BaseHTTPRequestHandler):
        body = self._read_body(h)
        i = self._pick()
        daemon = self.daemons[i]
        try:
            status, reason, headers, data = self._send(daemon.endpoint, h, body)
        except (OSError, http.client.HTTPException, AttributeError) as e:
            with self._lock:
                self.failed += 1
            msg = f"balancer: host {i + 1} ({daemon.endpoint}) did not answer: {e}\n".encode()
            h.send_response(502)
            h.send_header("Content-Type", "text/plain")
            h.send_header("Content-Length", str(len(msg)))
            h.end_headers()
            h.wfile.write(msg)
            return
        with self._lock:
            self.served[i] += 1
        h.send_response(status, reason)
        close = False
        for k, v in headers:
            if k.lower() == "connection" and "close" in v.lower():
                close = True
            if k.lower() in _HOP or k.lower() == "content-length":
                continue
            h.send_header(k, v)
        if close:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)

    @staticmethod
    def _send(endpoint: str, h: BaseHTTPRequestHandler, body: bytes):
        host, port = endpoint.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        try:
            conn.putrequest(h.command, h.path, skip_host=True, skip_accept_encoding=True)
            for k, v in h.headers.items():
                if k.lower() not in _HOP and k.lower() != "content-length":
                    conn.putheader(k, v)
            if body or h.command in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            try:
                conn.endheaders(body or None)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the host answered (and closed) before reading all of a large body
            res = conn.getresponse()
            return res.status, res.reason, res.getheaders(), res.read()
        finally:
            conn.close()
