"""HTTP/1.1 load-generation engine for the KMS benchmarks.

The engine replays pre-signed AWS KMS requests (AWS JSON 1.1 over ``POST /``)
over N concurrent keep-alive connections for a fixed time and records the
latency of every response that completes inside the measured window.

Design, chosen so that the client stays cheap next to the server under test:

* The client runs in its own worker process(es) (``ClientPool``), started once
  with the ``spawn`` method and reused for every measurement; the parent only
  orchestrates and samples CPU.
* Each worker runs a uvloop event loop (plain asyncio if uvloop is missing) and
  drives every connection with callbacks only (``asyncio.Protocol``): no
  coroutine or task per request.  One request is outstanding per connection
  (no pipelining).
* Several endpoints (e.g. the nodes of one service): ``ClientPool.measure(...,
  more=[...])`` spreads the connections round robin over them, each endpoint
  with its own signed pool (the ``Host`` header is signed).
* Responses are parsed minimally: status line, ``Content-Length`` (chunked and
  read-until-close bodies are handled too), ``Connection: close``.  A server
  that closes the connection after each response (moto's Werkzeug server does)
  is reconnected transparently; the latency of the next request then includes
  the TCP connect, and the number of new connections is reported.
* Requests are SigV4-signed with botocore in the worker right before the timed
  window (a small pool of distinct requests per operation, replayed round
  robin).  KMS has no replay protection and a signature stays valid for 15
  minutes, so replay is legitimate; long runs re-sign the pool every
  ``RESIGN_INTERVAL_S`` seconds.

Every loop is time-bounded: sending stops at the end of the window, in-flight
requests get ``DRAIN_TIMEOUT_S`` to finish, and the parent gives up on a worker
that does not answer in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import resource
import signal
import time
import traceback
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

CONTENT_TYPE = "application/x-amz-json-1.1"
USER_AGENT = "openkms-bench/1.0"
RESIGN_INTERVAL_S = 240.0
DRAIN_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 10.0
RECONNECT_DELAY_S = 0.01
MAX_HEADER_BYTES = 64 * 1024
MAX_ERROR_SAMPLES = 3

_now_ns = time.monotonic_ns  # CLOCK_MONOTONIC: comparable across processes on Linux


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class SignSpec:
    """Everything a worker needs to build (and re-build) its pool of signed requests."""

    host: str
    port: int
    region: str
    access_key: str
    secret_key: str
    action: str  # KMS operation, sent as ``X-Amz-Target: TrentService.<action>``
    bodies: tuple[bytes, ...]  # JSON request bodies, one per pool entry


def sign_pool(spec: SignSpec) -> list[bytes]:
    """Return one complete, SigV4-signed HTTP/1.1 request (head + body) per body in ``spec``."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    signer = SigV4Auth(Credentials(spec.access_key, spec.secret_key), "kms", spec.region)
    host = f"{spec.host}:{spec.port}"
    url = f"http://{host}/"
    pool: list[bytes] = []
    for body in spec.bodies:
        request = AWSRequest(
            method="POST",
            url=url,
            data=body,
            headers={
                "Host": host,
                "Content-Type": CONTENT_TYPE,
                "X-Amz-Target": f"TrentService.{spec.action}",
            },
        )
        signer.add_auth(request)  # adds X-Amz-Date and Authorization
        lines = ["POST / HTTP/1.1"]
        lines.extend(f"{name}: {value}" for name, value in request.headers.items())
        lines.append(f"Content-Length: {len(body)}")
        lines.append("Connection: keep-alive")
        lines.append(f"User-Agent: {USER_AGENT}")
        pool.append(("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body)
    return pool


# --------------------------------------------------------------------------- jobs and results


@dataclass(frozen=True)
class Job:
    """One measurement for one worker process."""

    sign: SignSpec
    connections: int
    warmup_s: float
    seconds: float
    first_index: int = 0  # spreads the pool across connections and workers
    resign_s: float = RESIGN_INTERVAL_S  # re-sign the pool this often during long runs
    more: tuple[SignSpec, ...] = ()  # further endpoints: connection n goes to (sign, *more)[n % count]

    @property
    def specs(self) -> tuple[SignSpec, ...]:
        return (self.sign, *self.more)


@dataclass
class WorkerResult:
    """What a worker reports back for one measurement (inside the window only)."""

    latencies: bytes = b""  # array('q') of nanoseconds, successful (200) responses only
    ok: int = 0
    errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    new_connections: int = 0
    cpu_s: float = 0.0
    abandoned: int = 0  # requests still in flight when the drain timeout hit
    signed_requests: int = 0


@dataclass
class ClientResult:
    """Merged result of all workers for one measurement."""

    seconds: float
    latencies_ns: list[int]  # sorted; successful (200) responses only
    ok: int
    errors: int
    statuses: dict[str, int]
    samples: list[str]
    new_connections: int
    client_cpu_s: float
    abandoned: int
    procs: int
    signed_requests: int = 0

    @property
    def completed(self) -> int:
        return self.ok + self.errors

    @property
    def rps(self) -> float:
        """Successful (200) responses per second; errors are counted apart, never in the rate."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, pct: float) -> float:
        """Nearest-rank percentile of the latencies in milliseconds (NaN without samples)."""
        data = self.latencies_ns
        if not data:
            return float("nan")
        rank = max(1, min(len(data), -(-len(data) * pct // 100)))  # ceil without floats
        return data[int(rank) - 1] / 1e6


# --------------------------------------------------------------------------- worker side


def _chunked_end(buf: bytes, pos: int) -> int:
    """Return the end offset of a chunked body starting at ``pos``, or -1 if incomplete."""
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return -1
        size = int(buf[pos:eol].split(b";", 1)[0], 16)
        if size == 0:
            end = buf.find(b"\r\n\r\n", eol)  # optional trailers, then an empty line
            return -1 if end < 0 else end + 4
        pos = eol + 2 + size + 2
        if pos > len(buf):
            return -1


class _Conn(asyncio.Protocol):
    """One client connection: sends a request, waits for the response, sends the next."""

    __slots__ = ("buf", "busy", "close_after", "ep", "hend", "idx", "need", "run", "status", "t_sent", "tr")

    def __init__(self, run: _Run, idx: int, t_sent: int = 0, ep: int = 0) -> None:
        self.run = run
        self.idx = idx
        self.ep = ep  # index of the endpoint (and its pool) in ``run.pools``
        self.t_sent = t_sent  # non-zero: a reconnect during the run, send at once
        self.tr: asyncio.Transport | None = None
        self.buf = b""
        self.busy = False
        self.hend = -1
        self.need = 0
        self.status = b""
        self.close_after = False

    # -- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tr = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio subclasses
        run = self.run
        if run.stopping:
            transport.close()
        elif self.t_sent:
            self.send(self.t_sent)
        elif run.started:
            self.send(_now_ns())

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        hend = self.hend
        if hend < 0:
            hend = buf.find(b"\r\n\r\n")
            if hend < 0:
                if len(buf) > MAX_HEADER_BYTES:
                    self._protocol_error(b"header too large")
                else:
                    self.buf = buf
                return
            head = buf[:hend].lower()
            self.status = head[9:12]
            self.close_after = b"\r\nconnection: close" in head
            i = head.find(b"\r\ncontent-length:")
            if i >= 0:
                j = head.find(b"\r\n", i + 17)
                self.need = hend + 4 + int(head[i + 17 : j] if j >= 0 else head[i + 17 :])
            elif b"\r\ntransfer-encoding: chunked" in head:
                self.need = -1
            else:
                self.need = -2  # body runs until the server closes the connection
            self.hend = hend
        need = self.need
        if need >= 0:
            if len(buf) < need:
                self.buf = buf
                return
        elif need == -1:
            need = _chunked_end(buf, hend + 4)
            if need < 0:
                self.buf = buf
                return
        else:
            self.buf = buf
            return
        self.buf = b""
        self.hend = -1
        self._finish(self.status, buf, hend + 4, need)

    def connection_lost(self, exc: Exception | None) -> None:
        run = self.run
        self.tr = None
        run.live.discard(self)
        failed = False
        if self.busy:
            self.busy = False
            if self.hend >= 0 and self.need == -2:  # read-until-close body is complete now
                buf, start = self.buf, self.hend + 4
                self.buf, self.hend = b"", -1
                self._record(self.status, buf, start, len(buf))
            else:
                self._record(b"---", b"connection closed by server before the response completed", 0, 99)
                failed = True
        if run.stopping:
            run.check_done()
        elif failed:  # do not spin on a server that drops every connection
            run.timers.append(run.loop.call_later(RECONNECT_DELAY_S, run.reconnect, self.idx, self.ep))
        else:
            run.reconnect(self.idx, self.ep)

    # -- request cycle

    def send(self, now: int) -> None:
        run = self.run
        tr = self.tr
        if tr is None:
            return
        if run.stopping:
            tr.close()
            return
        pool = run.pools[self.ep]
        self.idx += 1
        self.t_sent = now
        self.busy = True
        tr.write(pool[self.idx % len(pool)])

    def _record(self, status: bytes, buf: bytes, start: int, end: int) -> int:
        now = _now_ns()
        run = self.run
        if run.t_start <= now < run.t_end:
            if status == b"200":
                run.lat_append(now - self.t_sent)
                run.ok += 1
            else:
                run.error(status, buf[start:end])
        return now

    def _finish(self, status: bytes, buf: bytes, start: int, end: int) -> None:
        self.busy = False
        now = self._record(status, buf, start, end)
        if self.close_after:
            if self.tr is not None:
                self.tr.close()  # connection_lost() reconnects
        else:
            self.send(now)

    def _protocol_error(self, what: bytes) -> None:
        self.busy = False
        self._record(b"---", b"malformed response: " + what, 0, 200)
        self.buf, self.hend = b"", -1
        if self.tr is not None:
            self.tr.abort()


class _Run:
    """State of one measurement inside a worker."""

    def __init__(self, loop: asyncio.AbstractEventLoop, job: Job, pools: list[list[bytes]]) -> None:
        self.loop = loop
        self.job = job
        self.addrs = [(spec.host, spec.port) for spec in job.specs]  # one pool per endpoint, same order
        self.pools = pools
        self.signed = sum(len(pool) for pool in pools)
        self.live: set[_Conn] = set()
        self.started = False
        self.stopping = False
        self.t_start = 0  # window [t_start, t_end) in monotonic ns; empty until run()
        self.t_end = 0
        self.latencies: list[int] = []
        self.lat_append = self.latencies.append
        self.ok = 0
        self.errors = 0
        self.statuses: dict[str, int] = {}
        self.samples: list[str] = []
        self.new_connections = 0
        self.cpu_start = 0.0
        self.cpu_end = 0.0
        self.done: asyncio.Future[None] = loop.create_future()
        self.timers: list[asyncio.TimerHandle] = []

    # -- errors

    def error(self, status: bytes, body: bytes) -> None:
        self.errors += 1
        key = status.decode("ascii", "replace")
        self.statuses[key] = self.statuses.get(key, 0) + 1
        if len(self.samples) < MAX_ERROR_SAMPLES:
            text = " ".join(body[:600].decode("utf-8", "replace").split())  # one line
            self.samples.append(f"{key}: {text[:300]}")

    def _in_window(self) -> bool:
        return self.t_start <= _now_ns() < self.t_end

    # -- connections

    async def connect_all(self) -> None:
        count = len(self.addrs)
        conns = [_Conn(self, self.job.first_index + 7 * n, ep=n % count) for n in range(self.job.connections)]
        self.live.update(conns)

        async def one(conn: _Conn) -> None:
            await self.loop.create_connection(lambda: conn, *self.addrs[conn.ep])

        await asyncio.wait_for(asyncio.gather(*(one(c) for c in conns)), CONNECT_TIMEOUT_S)

    def reconnect(self, idx: int, ep: int = 0) -> None:
        if self.stopping:
            return
        conn = _Conn(self, idx, _now_ns() if self.started else 0, ep)
        self.live.add(conn)
        if self._in_window():
            self.new_connections += 1
        task = self.loop.create_task(self.loop.create_connection(lambda: conn, *self.addrs[ep]))
        task.add_done_callback(lambda t: self._connected(conn, t))

    def _connected(self, conn: _Conn, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        self.live.discard(conn)
        if self._in_window():
            self.error(b"---", f"connect failed: {task.exception()!r}".encode())
        if self.stopping:
            self.check_done()
        else:
            self.timers.append(self.loop.call_later(RECONNECT_DELAY_S, self.reconnect, conn.idx, conn.ep))

    def check_done(self) -> None:
        if self.stopping and not self.live and not self.done.done():
            self.done.set_result(None)

    # -- timeline

    def _at(self, t_ns: int, callback: Callable[[], None]) -> None:
        self.timers.append(self.loop.call_later(max(0.0, (t_ns - _now_ns()) / 1e9), callback))

    def _start(self) -> None:
        self.started = True
        now = _now_ns()
        for conn in list(self.live):
            if conn.tr is not None and not conn.busy:
                conn.send(now)

    def _window_open(self) -> None:
        self.cpu_start = _cpu_seconds()

    def _stop(self) -> None:
        self.cpu_end = _cpu_seconds()
        self.stopping = True
        for conn in list(self.live):
            if conn.tr is not None and not conn.busy:
                conn.tr.close()
        self.check_done()

    def _resign(self) -> None:
        if not self.stopping:
            self.pools = [sign_pool(spec) for spec in self.job.specs]
            self.signed += sum(len(pool) for pool in self.pools)
            self.timers.append(self.loop.call_later(self.job.resign_s, self._resign))

    async def run(self, t0_ns: int) -> WorkerResult:
        job = self.job
        self.t_start = t0_ns + int(job.warmup_s * 1e9)
        self.t_end = self.t_start + int(job.seconds * 1e9)
        self._at(t0_ns, self._start)
        self._at(self.t_start, self._window_open)
        self._at(self.t_end, self._stop)
        if job.warmup_s + job.seconds > job.resign_s:
            self.timers.append(self.loop.call_later(job.resign_s, self._resign))
        budget = (self.t_end - _now_ns()) / 1e9 + DRAIN_TIMEOUT_S
        abandoned = 0
        try:
            await asyncio.wait_for(asyncio.shield(self.done), budget)
        except TimeoutError:
            abandoned = sum(1 for c in self.live if c.busy)
        finally:
            self.stopping = True
            for timer in self.timers:
                timer.cancel()
            for conn in list(self.live):
                if conn.tr is not None:
                    conn.tr.abort()
        await asyncio.sleep(0)
        return WorkerResult(
            latencies=array("q", self.latencies).tobytes(),
            ok=self.ok,
            errors=self.errors,
            statuses=self.statuses,
            samples=self.samples,
            new_connections=self.new_connections,
            cpu_s=self.cpu_end - self.cpu_start,
            abandoned=abandoned,
            signed_requests=self.signed,
        )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _worker_main(pipe: Connection) -> None:
    """Worker process: serve measurement jobs from the parent until told to exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    failures: list[str] = []

    def on_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # A bug in a callback must fail the measurement loudly, not silently shrink the counts.
        exc = context.get("exception")
        detail = "".join(traceback.format_exception(exc)) if exc else ""
        failures.append(f"{context.get('message', 'exception in event loop')}\n{detail}")

    loop.set_exception_handler(on_exception)
    try:
        while True:
            try:
                msg = pipe.recv()
            except EOFError:  # parent is gone
                return
            if msg[0] == "abort":  # a stray abort for a job that already failed here
                continue
            if msg[0] != "run":
                return
            job: Job = msg[1]
            run: _Run | None = None
            failures.clear()
            try:
                run = _Run(loop, job, [sign_pool(spec) for spec in job.specs])
                loop.run_until_complete(run.connect_all())
                if failures:
                    raise RuntimeError(f"client callback failure while connecting:\n{failures[0]}")
                pipe.send(("ready", None))
                go: tuple[Any, ...] = pipe.recv() if pipe.poll(60.0) else ("abort",)
                if go[0] != "go":
                    raise RuntimeError("aborted by the parent")
                result = loop.run_until_complete(run.run(go[1]))
                if failures:
                    raise RuntimeError(f"{len(failures)} client callback failure(s); first:\n{failures[0]}")
                pipe.send(("result", result))
            except (EOFError, BrokenPipeError):
                return
            except Exception as exc:
                detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                pipe.send(("error", f"{detail}\n{traceback.format_exc(limit=4)}"))
            finally:
                if run is not None:
                    for conn in list(run.live):
                        if conn.tr is not None:
                            conn.tr.abort()
                    loop.run_until_complete(asyncio.sleep(0.01))
    finally:
        loop.close()


# --------------------------------------------------------------------------- parent side


class ClientPool:
    """A set of load-generator worker processes, reused across measurements."""

    def __init__(self, procs: int) -> None:
        if procs < 1:
            raise ValueError("need at least one client process")
        ctx = multiprocessing.get_context("spawn")
        self._workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
        try:
            for n in range(procs):
                parent_end, child_end = ctx.Pipe()
                proc = ctx.Process(target=_worker_main, args=(child_end,), name=f"loadgen-{n}", daemon=True)
                proc.start()
                child_end.close()
                self._workers.append((proc, parent_end))
        except BaseException:
            self.close()
            raise

    @property
    def procs(self) -> int:
        return len(self._workers)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p, _ in self._workers if p.pid is not None]

    def measure(
        self,
        sign: SignSpec,
        connections: int,
        warmup_s: float,
        seconds: float,
        on_window: Callable[[str], None] | None = None,
        resign_s: float = RESIGN_INTERVAL_S,
        more: Sequence[SignSpec] = (),
    ) -> ClientResult:
        """Run one measurement on all workers; ``on_window('start'|'end')`` fires in the parent.

        With ``more`` (further endpoints, e.g. other nodes of one service), the connections are
        spread round robin over ``sign`` and ``more``, across the workers too.
        """
        shares = [
            connections // self.procs + (1 if n < connections % self.procs else 0) for n in range(self.procs)
        ]
        active = [
            (w, share, n) for n, (w, share) in enumerate(zip(self._workers, shares, strict=True)) if share
        ]
        specs = (sign, *more)
        for (_, pipe), share, n in active:
            first = sum(shares[:n]) % len(specs)  # this worker's first connection, numbered globally
            mine = specs[first:] + specs[:first]
            job = Job(
                mine[0], share, warmup_s, seconds, first_index=n * 1009, resign_s=resign_s, more=mine[1:]
            )
            pipe.send(("run", job))
        pipes = [pipe for (_, pipe), _, _ in active]
        try:
            self._collect(pipes, "ready", CONNECT_TIMEOUT_S + 60.0)
        except BaseException:
            for pipe in pipes:
                with contextlib.suppress(OSError):
                    pipe.send(("abort",))
            raise
        t0 = _now_ns() + 50_000_000
        for pipe in pipes:
            pipe.send(("go", t0))
        if on_window is not None:
            _sleep_until(t0 + int(warmup_s * 1e9))
            on_window("start")
            _sleep_until(t0 + int((warmup_s + seconds) * 1e9))
            on_window("end")
        results: list[WorkerResult] = self._collect(
            pipes, "result", warmup_s + seconds + DRAIN_TIMEOUT_S + 30.0
        )
        latencies = array("q")
        for res in results:
            latencies.frombytes(res.latencies)
        statuses: dict[str, int] = {}
        samples: list[str] = []
        for res in results:
            for key, count in res.statuses.items():
                statuses[key] = statuses.get(key, 0) + count
            samples.extend(res.samples)
        return ClientResult(
            seconds=seconds,
            latencies_ns=sorted(latencies),
            ok=sum(r.ok for r in results),
            errors=sum(r.errors for r in results),
            statuses=statuses,
            samples=samples[:MAX_ERROR_SAMPLES],
            new_connections=sum(r.new_connections for r in results),
            client_cpu_s=sum(r.cpu_s for r in results),
            abandoned=sum(r.abandoned for r in results),
            procs=len(active),
            signed_requests=sum(r.signed_requests for r in results),
        )

    def _collect(self, pipes: list[Connection], kind: str, timeout: float) -> list[Any]:
        deadline = time.monotonic() + timeout
        pending = list(pipes)
        got: dict[int, Any] = {}
        errors: list[str] = []
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"load-generator worker did not answer ({kind}) within {timeout:.0f} s")
            for pipe in wait(pending, left):
                assert isinstance(pipe, Connection)
                pending.remove(pipe)
                try:
                    msg = pipe.recv()
                except EOFError:
                    errors.append("worker process died")
                    continue
                if msg[0] == kind:
                    got[id(pipe)] = msg[1]
                else:
                    errors.append(str(msg[1]))
        if errors:
            raise RuntimeError("load generator failed: " + "\n".join(errors))
        return [got[id(p)] for p in pipes]

    def close(self) -> None:
        """Stop the workers: ask politely, then terminate, then kill (each by its own pid)."""
        for _, pipe in self._workers:
            with contextlib.suppress(OSError):
                pipe.send(("exit",))
        for proc, pipe in self._workers:
            proc.join(2.0)
            if proc.is_alive():
                proc.terminate()
                proc.join(2.0)
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.join(2.0)
            pipe.close()
        self._workers = []


def _sleep_until(t_ns: int) -> None:
    delay = (t_ns - _now_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)
