"""Bounded connections: oversized and too many headers (431), headers or body too slow (408), idle
connections closed, connections past the process's maximum refused (503) — and, under 200 trickling
connections plus a flood of oversized headers, a normal client keeps its p99 under 50 ms while the
server's memory stays bounded."""

from __future__ import annotations

import contextlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.conftest import REGION, Server, launch
from tests.e2e.util import KeepAlive

JSON_CT = "application/x-amz-json-1.1"


def _start(workdir: Path, *args: str) -> Server:
    return launch(Path(tempfile.mkdtemp(dir=workdir, prefix="limits-")), None, extra_args=list(args))


@pytest.fixture(scope="module")
def limited(workdir: Path) -> Iterator[Server]:
    server = _start(
        workdir, "--header-timeout", "1", "--body-timeout", "1", "--keep-alive-timeout", "1",
        "--max-connections", "40",
    )  # fmt: skip
    yield server
    server.stop()


def _answer(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def test_oversized_header_is_refused_with_431(limited: Server) -> None:
    with _connect(limited) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (64 * 1024) + b"\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 431 ")


def test_an_unfinished_huge_header_is_cut_at_the_limit(limited: Server) -> None:
    with _connect(limited) as sock:
        sent = 0
        try:
            for _ in range(64):  # up to 4 MiB of one header line that never ends
                sock.sendall(b"b" * 65536 if sent else b"GET / HTTP/1.1\r\nX-Never-Ends: ")
                sent += 1
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = _answer(sock)
        assert answer.startswith(b"HTTP/1.1 431 ") or answer == b""
        assert sent < 64  # the server closed the connection long before


def test_too_many_headers_are_refused_with_431(limited: Server) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    with _connect(limited) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 431 ")


def test_a_header_not_finished_in_time_gets_408(limited: Server) -> None:
    with _connect(limited) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        answer = _answer(sock)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert 0.8 < waited < 3.0


def test_a_trickling_header_is_closed_at_its_deadline(limited: Server) -> None:
    with _connect(limited) as sock:
        started = time.monotonic()
        closed = False
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 100:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.1)
            if time.monotonic() - started > 3:
                break
        answer = b"" if closed else _answer(sock)
    assert closed or answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 3.5


def test_a_connection_that_sends_nothing_is_closed(limited: Server) -> None:
    with _connect(limited) as sock:
        started = time.monotonic()
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 3.0


def test_a_body_not_sent_in_time_gets_408(limited: Server) -> None:
    with _connect(limited) as sock:
        started = time.monotonic()
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\n"
            b"X-Amz-Target: TrentService.ListKeys\r\nContent-Length: 104857600\r\n\r\n{"
        )
        answer = _answer(sock)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert 0.8 < waited < 3.0


def test_idle_keep_alive_connections_are_closed(limited: Server) -> None:
    with _connect(limited) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert time.monotonic() - started < 3.0  # closed by the keep-alive timeout (1 s), not kept forever


def test_connections_past_the_maximum_are_refused_and_the_server_recovers(limited: Server) -> None:
    socks = [_connect(limited) for _ in range(60)]
    try:
        time.sleep(0.3)
        refused = 0
        for sock in socks:
            sock.settimeout(0.2)
            try:
                data = sock.recv(100)
            except TimeoutError:
                continue
            if data.startswith(b"HTTP/1.1 503 "):
                refused += 1
        assert 15 <= refused <= 25  # 40 allowed (one of them may be another test's), the rest refused
    finally:
        for sock in socks:
            sock.close()
    time.sleep(0.3)
    assert limited.client().list_keys()["Keys"] is not None


# --- slow and malicious clients do not delay a normal one ----------------------------------------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _signed_describe(server: Server, key_id: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"KeyId": key_id}).encode()
    request = AWSRequest(
        method="POST",
        url=server.endpoint + "/",
        data=body,
        headers={"Content-Type": JSON_CT, "X-Amz-Target": "TrentService.DescribeKey"},
    )
    SigV4Auth(Credentials(server.access_key, server.secret_key), "kms", REGION).add_auth(request)
    return body, dict(request.headers.items())


ATTACKER = """
import socket, sys, threading, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
stop = time.monotonic() + seconds
def connect():
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"POST / HTTP/1.1\\r\\nHost: x\\r\\n")
    return sock
def trickle():
    socks = [connect() for _ in range(200)]
    reopened = 0
    while time.monotonic() < stop:
        for i, sock in enumerate(socks):
            try:
                sock.sendall(b"X-T: 1\\r\\n")
            except OSError:
                socks[i] = connect()  # closed by the server at its header deadline: come back
                reopened += 1
        time.sleep(0.5)
    print("reopened", reopened, flush=True)
def flood():
    line = b"X-Flood: " + b"f" * 65536
    while time.monotonic() < stop:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"GET / HTTP/1.1\\r\\n")
                for _ in range(16):  # 1 MiB of header per connection, refused at 16 KiB
                    sock.sendall(line)
        except OSError:
            pass
        time.sleep(0.005)
threads = [threading.Thread(target=trickle)] + [threading.Thread(target=flood) for _ in range(2)]
for t in threads: t.start()
for t in threads: t.join()
"""


def test_trickling_connections_and_a_header_flood_do_not_delay_others(workdir: Path) -> None:
    server = _start(workdir)  # the default limits
    try:
        assert server.proc is not None
        key_id = server.client().create_key()["KeyMetadata"]["KeyId"]
        before = _rss_kib(server.proc.pid)
        attacker = subprocess.Popen(
            [sys.executable, "-c", ATTACKER, str(server.port), "12"], stdout=subprocess.PIPE, text=True
        )
        time.sleep(2.0)  # the 200 slow connections are open, the flood is running
        client = KeepAlive("127.0.0.1", server.port, timeout=10)
        latencies: list[float] = []
        peak = before
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            body, headers = _signed_describe(server, key_id)
            started = time.perf_counter()
            status, _, _ = client.exchange("POST", "/", body, headers)
            latencies.append(time.perf_counter() - started)
            assert status == 200
            peak = max(peak, _rss_kib(server.proc.pid))
            time.sleep(0.01)
        client.close()
        out, _ = attacker.communicate(timeout=60)
        assert attacker.returncode == 0
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        print(
            f"\nnormal client: {len(latencies)} requests, p50 {statistics.median(latencies) * 1000:.1f} ms,"
            f" p99 {p99 * 1000:.1f} ms; server RSS {before // 1024} -> peak {peak // 1024} MiB; {out.strip()}"
        )
        reopened = int(out.split()[-1])
        assert reopened >= 200  # every slow connection was cut at its header deadline (10 s) at least once
        assert len(latencies) > 100
        assert p99 < 0.050
        assert peak - before < 64 * 1024  # KiB: bounded by connections x header limit, not by input
    finally:
        server.stop()


class _Responses:
    """Responses read off one kept-alive connection, in order (pipelined answers may share a read)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, f"closed after {self.buffer!r}"
        self.buffer += chunk

    def next(self, body: bool = True) -> tuple[bytes, bytes]:
        """The next response's head and body (``body`` False: a head alone, as HEAD and 100 get)."""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if not body:
            return head, b""
        while len(self.buffer) < length:
            self._fill()
        content, self.buffer = self.buffer[:length], self.buffer[length:]
        return head, content


def test_heads_bodies_interim_answers_and_pipelined_requests_arrive_whole(limited: Server) -> None:
    """Each response's head waits for its body (one write): a HEAD response (no body written), a
    100 Continue before the body is sent, and pipelined requests on one connection are each answered
    in full and in order."""
    with _connect(limited) as sock:
        sock.settimeout(5)
        answers = _Responses(sock)
        # HEAD: the head alone, then the connection serves the next request.
        sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _ = answers.next(body=False)
        assert head.startswith(b"HTTP/1.1 ") and b"content-length:" in head.lower()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = answers.next()
        assert head.startswith(b"HTTP/1.1 200 ") and json.loads(body) == {"status": "ok"}
        assert answers.buffer == b""  # the HEAD answer had no body

        # Expect: 100-continue: the interim answer first, the final one after the body.
        payload = b"{}"
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\n"
            b"X-Amz-Target: TrentService.ListKeys\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % len(payload)
        )
        interim, _ = answers.next(body=False)
        assert interim == b"HTTP/1.1 100 Continue"
        sock.sendall(payload)
        head, body = answers.next()
        assert head.startswith(b"HTTP/1.1 400 ")  # unsigned: refused, with AWS's error body
        assert json.loads(body)["__type"].endswith("MissingAuthenticationTokenException")

        # Three pipelined requests in one send: three whole answers, in order.
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        for _ in range(3):
            head, body = answers.next()
            assert head.startswith(b"HTTP/1.1 200 ") and json.loads(body) == {"status": "ok"}
