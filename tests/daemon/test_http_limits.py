"""Trust boundaries (issue 14), HTTP: slow or malformed clients cannot stall snapvold or
desynchronise a connection (header deadline and budget, per-client cap, 413 that closes, body
limits on every route, Expect: 100-continue), and console responses carry security headers.
Every client is on loopback; every loop is bounded."""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

import pytest

import daemon_helpers as dh
from trust_helpers import (
    CSP_NEEDS,
    HEADER_TIMEOUT,
    MAX_BODY,
    PER_CLIENT,
    recv_all,
    request_events,
    send_while_reading,
    trust_service,
)

@pytest.fixture(scope="module")
def svc():
    yield from trust_service()


def open_slow(port: int, source: str = "127.0.0.1") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    return s


def test_slowloris_client_is_cut_after_the_header_deadline(svc):
    s = open_slow(svc.daemon.port)
    start = time.monotonic()
    cut_after = None
    try:
        for i in range(80):  # one header line every 0.5 s, for 40 s at most
            time.sleep(0.5)
            try:
                s.sendall(f"X-Slow-{i}: 1\r\n".encode())
            except OSError:
                cut_after = time.monotonic() - start
                break
            s.settimeout(0.01)
            try:
                if s.recv(4096) == b"":
                    cut_after = time.monotonic() - start
                    break
            except socket.timeout:
                pass
            except OSError:
                cut_after = time.monotonic() - start
                break
    finally:
        s.close()
    assert cut_after is not None, "a client sending a header line every 0.5 s was never cut off (40 s)"
    assert HEADER_TIMEOUT - 1 <= cut_after <= HEADER_TIMEOUT + 2, cut_after
    dh.note(f"trust: a slowloris client (a header line every 0.5 s) was cut after {cut_after:.1f} s")


def daemon_rss_kib(svc) -> int:
    for line in Path(f"/proc/{svc.daemon.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_fast_stream_of_header_lines_is_cut_and_does_not_grow_memory(svc):
    """A client sending header lines as fast as loopback takes them (2 MiB, never the blank line
    that ends the headers) is answered 431 and closed once past the header budget (64 KiB),
    long before the 10 s deadline; the daemon's memory does not grow with what it sent."""
    flood = 2 << 20
    line = b"X-Flood-Header: 0123456789abcdef0123456789abcdef\r\n"
    block = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + line * (flood // len(line))
    rss_before = daemon_rss_kib(svc)
    s = socket.create_connection(("127.0.0.1", svc.daemon.port), timeout=10)
    start = time.monotonic()
    sent = 0
    rss_peak = rss_before
    try:
        s.settimeout(5)
        try:
            while sent < len(block):
                sent += s.send(block[sent:sent + 65536])
        except OSError:
            pass  # cut while sending
        rss_peak = max(rss_peak, daemon_rss_kib(svc))
        data, closed = recv_all(s, 5)
        cut_after = time.monotonic() - start
        rss_peak = max(rss_peak, daemon_rss_kib(svc))
    finally:
        s.close()
    grown_kib = rss_peak - rss_before
    assert grown_kib < 4096, f"the daemon's RSS grew by {grown_kib} KiB under a 2 MiB header flood"
    assert closed, "the connection stayed open"
    assert cut_after < 3, cut_after
    assert data.startswith(b"HTTP/1.1 431 "), data[:300]
    status, _, body = dh.http_request(svc.endpoint, "GET", "/healthz", timeout=5)
    assert status == 200 and body == b"ok\n"
    dh.note(f"trust: a 2 MiB header flood was answered 431 and closed after {cut_after * 1000:.0f} ms "
            f"({sent} bytes taken from the client); daemon RSS grew {grown_kib} KiB")


def test_300_slow_connections_from_one_address_leave_healthz_answering(svc):
    port = svc.daemon.port
    events_before = len(svc.daemon.log_events())
    slow, failed = [], 0
    stop = threading.Event()
    try:
        for _ in range(300):
            try:
                slow.append(open_slow(port))
            except OSError:
                failed += 1

        def dribble():
            n = 0
            while not stop.wait(0.5) and n < 40:
                n += 1
                for s in slow:
                    try:
                        s.sendall(b"X-Slow: 1\r\n")
                    except OSError:
                        pass

        t = threading.Thread(target=dribble, daemon=True)
        t.start()
        time.sleep(1.0)  # every connection has reached a worker (held, or refused)
        latencies = []
        for _ in range(10):
            conn_start = time.monotonic()
            c = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.2", 0))
            try:
                c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data, closed = recv_all(c, 5)
            finally:
                c.close()
            latencies.append(time.monotonic() - conn_start)
            assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"ok\n"), data
            time.sleep(0.1)
        refused = 0
        for s in slow:
            s.settimeout(0.01)
            try:
                if s.recv(4096).startswith(b"HTTP/1.1 503"):
                    refused += 1
            except (socket.timeout, OSError):
                pass
        stop.set()
        t.join(5)
    finally:
        stop.set()
        for s in slow:
            s.close()
    assert max(latencies) < 1.0, latencies
    assert refused >= 300 - failed - PER_CLIENT - 5, (refused, failed)
    dh.note(f"trust: /healthz from 127.0.0.2 under 300 slow connections from 127.0.0.1: max "
            f"{max(latencies) * 1000:.0f} ms, median {sorted(latencies)[5] * 1000:.0f} ms; "
            f"{refused} of them answered 503 at once")

    # Closed, they leave the client's count: as many new ones as the cap allows are served.
    time.sleep(0.5)
    fresh = []
    try:
        for _ in range(PER_CLIENT):
            fresh.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        for c in fresh:
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        statuses = []
        for c in fresh:
            c.settimeout(5)
            statuses.append(c.recv(4096).split(b"\r\n", 1)[0])
    finally:
        for c in fresh:
            c.close()
    assert statuses == [b"HTTP/1.1 200 OK"] * PER_CLIENT, sorted(set(statuses))

    # Every refusal reaches the log, the last second's at the latest when the daemon stops.
    svc.daemon.stop()
    logged = sum(e.get("connections", 0) for e in svc.daemon.log_events()[events_before:]
                 if e.get("event") == "http_connection_refused")
    svc.daemon.start()
    assert logged >= refused, (logged, refused)


def test_content_length_over_the_limit_is_refused_unrun_and_closed(svc):
    before_events, before_snaps = request_events(svc), set(svc.catalog_snapshots())
    vol = svc.volumes["vol-team-1"].volume_id
    form = f"Action=CreateSnapshot&Version=2016-11-15&VolumeId={vol}&Description=".encode()
    body = form + b"x" * (MAX_BODY + 1 - len(form))
    s = socket.create_connection(("127.0.0.1", svc.daemon.port), timeout=10)
    try:
        s.sendall(b"POST /?Action=CreateSnapshot&VolumeId=" + vol.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/x-www-form-urlencoded\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:65536])
        data, closed = recv_all(s, 5)
    finally:
        s.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    assert head.startswith("HTTP/1.1 413"), data[:500]
    assert re.search(r"(?im)^connection: close\r?$", head), head
    assert b"RequestEntityTooLarge" in data, data[:500]
    assert closed, "the connection stayed open after the 413"
    time.sleep(0.5)
    assert request_events(svc) == before_events, "the refused request was run"
    assert set(svc.catalog_snapshots()) == before_snaps


def test_requests_pipelined_after_an_oversized_chunked_body_never_run(svc):
    before_events = request_events(svc)
    pipelined = b""
    for _ in range(3):
        form = b"Action=DescribeSnapshots&Version=2016-11-15"
        pipelined += (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                      b"Content-Length: " + str(len(form)).encode() + b"\r\n\r\n" + form)
    s = socket.create_connection(("127.0.0.1", svc.daemon.port), timeout=10)
    data, closed = send_while_reading(s, [
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        b"%x\r\n" % MAX_BODY + b"y" * MAX_BODY + b"\r\n",
        b"1\r\nz\r\n0\r\n\r\n" + pipelined])
    statuses = re.findall(rb"HTTP/1\.1 (\d{3})", data)
    assert statuses == [b"413"], data[:1000]
    assert re.search(rb"(?im)^connection: close\r$", data), data[:500]
    assert closed, "the connection stayed open after the 413"
    time.sleep(0.5)
    assert request_events(svc) == before_events, "a request after the refused body was run"


def response_head(data: bytes) -> str:
    return data.split(b"\r\n\r\n", 1)[0].decode(errors="replace")


def test_413_to_a_keep_alive_client_says_connection_close_once(svc):
    """The client's own `Connection: keep-alive` must not win over the close the 413 needs."""
    s = socket.create_connection(("127.0.0.1", svc.daemon.port), timeout=10)
    try:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n"
                  b"Content-Type: application/x-www-form-urlencoded\r\n"
                  b"Content-Length: " + str(MAX_BODY + 1).encode() + b"\r\n\r\n")
        data, closed = recv_all(s, 5)
    finally:
        s.close()
    head = response_head(data)
    assert head.startswith("HTTP/1.1 413"), data[:500]
    assert re.findall(r"(?im)^connection:\s*(.*?)\s*$", head) == ["close"], head
    assert not re.search(r"(?im)^keep-alive:", head), head
    assert closed, "the connection stayed open after the 413"


@pytest.mark.parametrize("method,chunked_status", [("PATCH", b"413"), ("DELETE", b"400")])
def test_dlm_patch_and_delete_bodies_are_limited_like_posts(svc, method, chunked_status):
    """PATCH and DELETE /policies/ID read their body as POST does: a Content-Length over the
    limit is answered 413 at once, without waiting for the body; a chunked PATCH body is cut at
    the limit (413); a chunked DELETE body, which the library never reads, is refused (400);
    either way the connection is closed and nothing after it is parsed as requests."""
    before_events = request_events(svc)
    s = socket.create_connection(("127.0.0.1", svc.daemon.port), timeout=10)
    try:
        start = time.monotonic()
        s.sendall(f"{method} /policies/policy-0123456789abcdef0 HTTP/1.1\r\nHost: x\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode())
        data, closed = recv_all(s, 5)
        took = time.monotonic() - start
    finally:
        s.close()
    head = response_head(data)
    assert head.startswith("HTTP/1.1 413"), data[:500]
    assert re.search(r"(?im)^connection: close\r?$", head), head
    assert closed and took < 2, (closed, took)

    s = socket.create_connection(("127.0.0.1", svc.daemon.port), timeout=10)
    head_bytes = (f"{method} /policies/policy-0123456789abcdef0 HTTP/1.1\r\nHost: x\r\n"
                  f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    data, closed = send_while_reading(  # 4 MiB in 1 MiB chunks
        s, [head_bytes] + [b"%x\r\n" % (1 << 20) + b"{" * (1 << 20) + b"\r\n"] * 4 + [b"0\r\n\r\n"])
    assert re.findall(rb"HTTP/1\.1 (\d{3})", data) == [chunked_status], data[:500]
    assert re.search(r"(?im)^connection: close\r?$", response_head(data)), data[:500]
    assert closed, "the connection stayed open after the refusal"
    assert request_events(svc) == before_events, "a refused request was run"


def test_expect_100_continue_over_the_limit_is_refused_before_continue(svc):
    """A client announcing more than 2 MiB and waiting for `100 Continue` gets the 413 instead,
    and the connection closed, without ever being told to send the body."""
    before_events = request_events(svc)
    s = socket.create_connection(("127.0.0.1", svc.daemon.port), timeout=10)
    try:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                  b"Expect: 100-continue\r\nContent-Length: " + str(3 << 20).encode() + b"\r\n\r\n")
        data, closed = recv_all(s, 5)
    finally:
        s.close()
    assert re.findall(rb"HTTP/1\.1 (\d{3})", data) == [b"413"], data[:500]
    assert re.findall(r"(?im)^connection:\s*(.*?)\s*$", response_head(data)) == ["close"], data[:500]
    assert b"RequestEntityTooLarge" in data, data[:500]
    assert closed, "the connection stayed open after the 413"
    # Within the limit, the client is told to go on and the request runs (here: unsigned, refused).
    form = b"Action=DescribeSnapshots&Version=2016-11-15"
    s = socket.create_connection(("127.0.0.1", svc.daemon.port), timeout=10)
    try:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                  b"Connection: close\r\nExpect: 100-continue\r\nContent-Length: " + str(len(form)).encode() +
                  b"\r\n\r\n")
        s.settimeout(5)
        first = s.recv(4096)
        assert first.startswith(b"HTTP/1.1 100 Continue\r\n"), first
        s.sendall(form)
        data, closed = recv_all(s, 5)
    finally:
        s.close()
    assert re.findall(rb"HTTP/1\.1 (\d{3})", data) != [], data[:300]
    assert request_events(svc) == before_events + 1


def test_console_responses_carry_security_headers(svc):
    for path, want in (("/console/", 200), ("/console/index.html", 200), ("/console/app.js", 200),
                       ("/console/missing.js", 404), ("/console", (200, 302))):
        status, headers, body = dh.http_request(svc.endpoint, "GET", path, timeout=5)
        assert status in (want if isinstance(want, tuple) else (want,)), (path, status, body[:200])
        csp = headers.get("content-security-policy", "")
        for part in CSP_NEEDS:
            assert part in csp, (path, csp)
        assert "unsafe" not in csp, (path, csp)
        assert headers.get("x-frame-options") == "DENY", (path, headers)
        assert headers.get("x-content-type-options") == "nosniff", (path, headers)
        assert headers.get("referrer-policy") == "no-referrer", (path, headers)
    # The policy holds only while the console has no inline script or style.
    html = (Path(__file__).resolve().parents[2] / "console/src/index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script> in console/src/index.html"
    assert "<style" not in html and " style=" not in html, "inline style in console/src/index.html"
