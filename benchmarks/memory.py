"""Memory bounded: the server's resident memory with many keys, each used once, then under a steady load.

The script starts ``openkms serve`` (one process, SQLite in a fresh data directory unless
``--openkms-args`` says otherwise, metrics on a free loopback port), creates an account, then:

1. creates ``--keys`` SYMMETRIC_DEFAULT keys through the API (``CreateKey``, pre-signed requests over
   ``--connections`` keep-alive connections from ``--client-procs`` processes);
2. uses each key once (one ``Encrypt`` of 64 bytes per key, in a random order);
3. runs ``--steady-minutes`` of ``Encrypt`` over the keys in a random order (``loadgen.py``, the pool
   of ``--steady-pool`` keys replayed round robin), sampling the server every ``--sample-seconds``.

It reports the server's RSS (``VmRSS`` of /proc/PID/status, the process and its children summed, in
MB of 10^6 bytes) at the start, after the keys are created, after each was used once and at every
sample, with the key cache's entries and hit ratio and the audit queue's depth from ``/metrics``.
The growth is the last sample minus the first sample taken after the first minute (the warm-up of the
allocator and of the caches). The issue's targets: RSS <= 200 MB after 100,000 keys each used once,
and no growth over a 10-minute steady load.

Usage (from the repository root)::

    .venv/bin/python benchmarks/memory.py --keys 100000 --steady-minutes 10
    .venv/bin/python benchmarks/memory.py --keys 5000 --steady-minutes 1 --key-cache-size 1000 --json m.json

Exit status: 0 on success, 1 if any request failed (all counted and printed), 2 if the server could
not be started, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import random
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from types import FrameType
from typing import Any

import loadgen
import targets

REGION = "us-east-1"
PLAINTEXT_BYTES = 64
SIGN_CHUNK = 2000  # requests signed at a time by a batch worker (signatures stay fresh in long phases)
STEADY_RESIGN_S = 780.0  # the steady pool is re-signed after 13 min (SigV4 allows 15 min of skew)
TARGET_RSS_MB = 200.0
MB = 1e6


# --------------------------------------------------------------------------- count-bounded batches


@dataclass(frozen=True)
class BatchJob:
    """A share of one phase for one client process: send each body once."""

    host: str
    port: int
    region: str
    access_key: str
    secret_key: str
    action: str
    bodies: tuple[bytes, ...]
    connections: int
    report: bool = False  # this worker prints progress


@dataclass
class BatchResult:
    ok: int = 0
    errors: int = 0
    samples: list[str] = field(default_factory=list)
    key_ids: list[str] = field(default_factory=list)  # CreateKey: the new keys' ids


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    match = re.search(rb"\r\ncontent-length:\s*(\d+)", head.lower())
    if match is None:
        raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
    return status, await reader.readexactly(int(match.group(1)))


async def _drive(
    job: BatchJob,
    todo: Iterator[bytes],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    result: BatchResult,
) -> None:
    """Send requests from ``todo`` one at a time on one connection (the connections share ``todo``)."""
    for request in todo:
        writer.write(request)
        status, body = await _read_response(reader)
        if status != 200:
            result.errors += 1
            if len(result.samples) < loadgen.MAX_ERROR_SAMPLES:
                result.samples.append(f"{status}: {body[:300].decode('utf-8', 'replace')}")
            continue
        result.ok += 1
        if job.action == "CreateKey":
            result.key_ids.append(json.loads(body)["KeyMetadata"]["KeyId"])


async def _run_batch(job: BatchJob) -> BatchResult:
    result = BatchResult()
    conns = [await asyncio.open_connection(job.host, job.port) for _ in range(job.connections)]
    started = time.monotonic()
    try:
        for first in range(0, len(job.bodies), SIGN_CHUNK):
            chunk = job.bodies[first : first + SIGN_CHUNK]
            spec = loadgen.SignSpec(
                job.host, job.port, job.region, job.access_key, job.secret_key, job.action, chunk
            )
            todo = iter(loadgen.sign_pool(spec))
            await asyncio.gather(*(_drive(job, todo, r, w, result) for r, w in conns))
            if job.report:
                done = first + len(chunk)
                rate = done / (time.monotonic() - started)
                print(
                    f"  {job.action}: {done:,}/{len(job.bodies):,} of this client process, {rate:,.0f}/s",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        for _, writer in conns:
            writer.close()
    return result


def _batch_worker(job: BatchJob) -> BatchResult:
    """Entry point of a batch client process (spawned)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    loop = loadgen._new_loop()
    try:
        return loop.run_until_complete(_run_batch(job))
    finally:
        loop.close()


def run_batch(
    executor: ProcessPoolExecutor,
    target: targets.Target,
    args: argparse.Namespace,
    action: str,
    bodies: list[bytes],
) -> tuple[BatchResult, float]:
    """Send each of ``bodies`` once, spread over the client processes; the merged result and seconds."""
    procs = min(args.client_procs, max(1, len(bodies)))
    shares = [bodies[n::procs] for n in range(procs)]
    conns = [args.connections // procs + (1 if n < args.connections % procs else 0) for n in range(procs)]
    jobs = [
        BatchJob(
            target.host,
            target.port,
            args.region,
            target.access_key,
            target.secret_key,
            action,
            tuple(share),
            max(1, min(c, len(share))),
            report=n == 0,
        )
        for n, (share, c) in enumerate(zip(shares, conns, strict=True))
        if share
    ]
    started = time.monotonic()
    merged = BatchResult()
    for res in executor.map(_batch_worker, jobs):
        merged.ok += res.ok
        merged.errors += res.errors
        merged.samples.extend(res.samples)
        merged.key_ids.extend(res.key_ids)
    return merged, time.monotonic() - started


# --------------------------------------------------------------------------- server state


@dataclass
class Sample:
    """The server at one moment."""

    label: str
    t_s: float  # seconds since the phase started (0 for the phase points)
    rss_mb: float | None
    peak_mb: float | None  # VmHWM of the server process (not its children)
    cached_keys: float | None
    hit_ratio: float | None  # key cache, since the process started
    key_hits: float | None
    key_misses: float | None
    audit_queue: float | None
    encrypt_ok: float | None  # openkms_requests_total of Encrypt answered ok, since the start


def take_sample(target: targets.Target, metrics_port: int, label: str, t_s: float = 0.0) -> Sample:
    assert target.pid is not None
    rss = targets.process_tree_rss_kib(target.pid)
    peak = targets.proc_status_kib(target.pid, "VmHWM")
    m = targets.scrape_metrics(metrics_port)
    encrypt = sum(v for k, v in m.items() if k.startswith("openkms_requests_total{") and _is_encrypt_ok(k))
    return Sample(
        label=label,
        t_s=t_s,
        rss_mb=rss * 1024 / MB if rss is not None else None,
        peak_mb=peak * 1024 / MB if peak is not None else None,
        cached_keys=m.get('openkms_cache_entries{cache="keys"}'),
        hit_ratio=m.get('openkms_cache_hit_ratio{cache="keys"}'),
        key_hits=m.get('openkms_cache_lookups_total{cache="keys",result="hit"}'),
        key_misses=m.get('openkms_cache_lookups_total{cache="keys",result="miss"}'),
        audit_queue=m.get("openkms_audit_queue_depth"),
        encrypt_ok=encrypt if m else None,
    )


def _is_encrypt_ok(key: str) -> bool:
    return 'operation="Encrypt"' in key and 'outcome="ok"' in key


class Sampler:
    """Samples the server every ``interval`` seconds in a thread, from ``start()`` to ``stop()``."""

    def __init__(self, target: targets.Target, metrics_port: int, interval: float) -> None:
        self.target = target
        self.metrics_port = metrics_port
        self.interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10.0)

    def _loop(self) -> None:
        n = 0
        while True:
            n += 1
            if self._stop.wait(max(0.0, self._t0 + n * self.interval - time.monotonic())):
                return
            t = time.monotonic() - self._t0
            self.samples.append(take_sample(self.target, self.metrics_port, f"{t:.0f} s", t))


# --------------------------------------------------------------------------- the benchmark


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="The openkms server's RSS with many keys used once, then under a steady Encrypt load.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--keys", type=int, default=100_000, help="keys to create, then to use once each")
    p.add_argument("--steady-minutes", type=float, default=10.0, help="minutes of steady Encrypt load")
    p.add_argument("--sample-seconds", type=float, default=10.0, help="RSS sampling interval (steady load)")
    p.add_argument(
        "--steady-pool",
        type=int,
        default=0,
        help="keys in the steady load's pool (a random sample of --keys, replayed round robin; 0: all)",
    )
    p.add_argument("--key-cache-size", type=int, help="passed to 'openkms serve' (default: the server's)")
    p.add_argument("--connections", type=int, default=32, help="keep-alive connections of every phase")
    p.add_argument("--client-procs", type=int, default=2, help="client processes creating and using keys")
    p.add_argument("--steady-procs", type=int, default=1, help="load-generator processes of the steady load")
    p.add_argument("--seed", type=int, default=1, help="seed of the random orders")
    p.add_argument("--json", nargs="?", const="-", metavar="PATH", help="write a JSON report (to stdout: -)")
    p.add_argument("--region", default=REGION)
    p.add_argument("--workdir", default=None, help="parent of the temporary directory (default: $TMPDIR)")
    p.add_argument("--openkms-args", default="", help="extra arguments for 'openkms serve' (shell-quoted)")
    p.add_argument(
        "--openkms-bin",
        metavar="CMD",
        help="command that runs openkms (default: this interpreter's bin/openkms, else python -m openkms)",
    )
    args = p.parse_args(argv)
    if not 1 <= args.keys <= 10_000_000:
        p.error("--keys must be in [1, 10000000]")
    if not 0 <= args.steady_minutes <= 120:
        p.error("--steady-minutes must be in [0, 120]")
    if args.sample_seconds < 1:
        p.error("--sample-seconds must be at least 1")
    if not 0 <= args.steady_pool <= args.keys:
        p.error("--steady-pool must be in [0, --keys]")
    if not 1 <= args.connections <= 4096:
        p.error("--connections must be in [1, 4096]")
    if not 1 <= args.client_procs <= 64 or not 1 <= args.steady_procs <= 64:
        p.error("--client-procs and --steady-procs must be in [1, 64]")
    return args


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _encrypt_body(key_id: str) -> bytes:
    plaintext = base64.b64encode(os.urandom(PLAINTEXT_BYTES)).decode("ascii")
    return json.dumps({"KeyId": key_id, "Plaintext": plaintext}, separators=(",", ":")).encode()


def _fmt(value: float | None, spec: str = ",.1f") -> str:
    return "-" if value is None else format(value, spec)


def _growth(samples: list[Sample]) -> tuple[Sample | None, Sample | None, float | None]:
    """(the first sample after the first minute, the last sample, last minus first RSS)."""
    after = [s for s in samples if s.t_s >= 60.0 and s.rss_mb is not None] or [
        s for s in samples if s.rss_mb is not None
    ]
    if len(after) < 2:
        return None, None, None
    first, last = after[0], after[-1]
    assert first.rss_mb is not None and last.rss_mb is not None
    return first, last, last.rss_mb - first.rss_mb


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    with contextlib.ExitStack() as stack:
        if args.workdir:
            Path(args.workdir).mkdir(parents=True, exist_ok=True)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="memory-", dir=args.workdir)))
        metrics_port = targets.free_port()
        serve_args = f"--metrics-listen 127.0.0.1:{metrics_port} {args.openkms_args}"
        if args.key_cache_size is not None:
            serve_args += f" --key-cache-size {args.key_cache_size}"
        target = targets.start_openkms(stack, workdir, serve_args, command=args.openkms_bin)
        assert target.pid is not None
        _log(f"openkms: {target.endpoint} (pid {target.pid}), metrics on port {metrics_port}")
        executor = stack.enter_context(
            ProcessPoolExecutor(max_workers=args.client_procs, mp_context=get_context("spawn"))
        )
        time.sleep(1.0)
        phases = [take_sample(target, metrics_port, "start")]
        failures: list[str] = []
        errors = 0

        _log(f"creating {args.keys:,} keys ...")
        bodies = [json.dumps({"Description": f"memory benchmark key {n}"}).encode() for n in range(args.keys)]
        created, create_s = run_batch(executor, target, args, "CreateKey", bodies)
        errors += created.errors
        failures += created.samples
        key_ids = created.key_ids
        _log(f"created {len(key_ids):,} keys in {create_s:.1f} s ({len(key_ids) / create_s:,.0f}/s)")
        phases.append(take_sample(target, metrics_port, f"after {len(key_ids):,} CreateKey"))

        order = key_ids[:]
        rng.shuffle(order)
        _log(f"encrypting once with each of {len(order):,} keys ...")
        used, use_s = run_batch(executor, target, args, "Encrypt", [_encrypt_body(k) for k in order])
        errors += used.errors
        failures += used.samples
        _log(f"{used.ok:,} Encrypt in {use_s:.1f} s ({used.ok / use_s:,.0f}/s)")
        phases.append(take_sample(target, metrics_port, f"after {used.ok:,} Encrypt (each key once)"))

        steady: dict[str, Any] | None = None
        sampler = Sampler(target, metrics_port, args.sample_seconds)
        if args.steady_minutes > 0 and key_ids:
            pool_keys = rng.sample(key_ids, args.steady_pool or len(key_ids))
            clients = loadgen.ClientPool(args.steady_procs)
            stack.callback(clients.close)
            spec = loadgen.SignSpec(
                target.host,
                target.port,
                args.region,
                target.access_key,
                target.secret_key,
                "Encrypt",
                tuple(_encrypt_body(k) for k in pool_keys),
            )
            seconds = args.steady_minutes * 60
            _log(f"steady Encrypt load for {seconds:.0f} s over {len(pool_keys):,} keys (signing first) ...")
            before = take_sample(target, metrics_port, "steady start")

            def on_window(edge: str) -> None:
                if edge == "start":
                    sampler.start()
                else:
                    sampler.stop()

            try:
                res = clients.measure(
                    spec, args.connections, 0.0, seconds, on_window, resign_s=STEADY_RESIGN_S
                )
            finally:
                sampler.stop()
            errors += res.errors
            failures += res.samples
            phases.append(take_sample(target, metrics_port, "after the steady load"))
            after = phases[-1]
            window_ratio = None
            if None not in (before.key_hits, before.key_misses, after.key_hits, after.key_misses):
                hits = (after.key_hits or 0) - (before.key_hits or 0)
                lookups = hits + (after.key_misses or 0) - (before.key_misses or 0)
                window_ratio = hits / lookups if lookups else None
            steady = {
                "seconds": seconds,
                "pool_keys": len(pool_keys),
                "rps": res.rps,
                "p50_ms": res.percentile_ms(50),
                "p99_ms": res.percentile_ms(99),
                "ok": res.ok,
                "errors": res.errors,
                "client_cpu_pct": res.client_cpu_s / seconds * 100,
                "key_cache_hit_ratio": window_ratio,
            }
        return _output(args, phases, sampler.samples, steady, create_s, use_s, len(key_ids), errors, failures)


def _output(
    args: argparse.Namespace,
    phases: list[Sample],
    samples: list[Sample],
    steady: dict[str, Any] | None,
    create_s: float,
    use_s: float,
    created: int,
    errors: int,
    failures: list[str],
) -> int:
    human = sys.stderr if args.json == "-" else sys.stdout
    cache = args.key_cache_size if args.key_cache_size is not None else "server default"
    print(
        f"\n{created:,} keys created in {create_s:.1f} s ({created / create_s:,.0f}/s), each used once in"
        f" {use_s:.1f} s ({created / use_s:,.0f}/s); key cache size: {cache}\n",
        file=human,
    )
    head = (
        f"{'point':<34} {'RSS MB':>8} {'peak MB':>8} {'keys cached':>11} {'hit ratio':>9} {'audit queue':>11}"
    )
    print(head, file=human)
    print("-" * len(head), file=human)
    for s in phases:
        print(
            f"{s.label:<34} {_fmt(s.rss_mb):>8} {_fmt(s.peak_mb):>8} {_fmt(s.cached_keys, ',.0f'):>11}"
            f" {_fmt(s.hit_ratio, '.3f'):>9} {_fmt(s.audit_queue, ',.0f'):>11}",
            file=human,
        )
    if steady is not None:
        print(
            f"\nsteady Encrypt over {steady['pool_keys']:,} keys for {steady['seconds']:.0f} s:"
            f" {steady['rps']:,.0f} req/s, p50 {steady['p50_ms']:.2f} ms, p99 {steady['p99_ms']:.2f} ms,"
            f" {steady['errors']} errors; key cache hit ratio in the window"
            f" {_fmt(steady['key_cache_hit_ratio'], '.3f')}\n",
            file=human,
        )
        head = f"{'t':>6} {'RSS MB':>8} {'keys cached':>11} {'Encrypt/s':>9} {'audit queue':>11}"
        print(head, file=human)
        print("-" * len(head), file=human)
        prev: Sample | None = None
        for s in samples:
            rate = None
            if prev is not None and s.encrypt_ok is not None and prev.encrypt_ok is not None:
                rate = (s.encrypt_ok - prev.encrypt_ok) / (s.t_s - prev.t_s)
            print(
                f"{s.t_s:>5.0f}s {_fmt(s.rss_mb):>8} {_fmt(s.cached_keys, ',.0f'):>11}"
                f" {_fmt(rate, ',.0f'):>9} {_fmt(s.audit_queue, ',.0f'):>11}",
                file=human,
            )
            prev = s
    first, last, growth = _growth(samples)
    verdicts: dict[str, Any] = {}
    used = phases[2].rss_mb if len(phases) > 2 else None
    if used is not None:
        ok = used <= TARGET_RSS_MB
        verdicts["rss_after_use_mb"] = used
        verdicts["rss_target_met"] = ok
        print(
            f"\nRSS after {created:,} keys each used once: {used:.1f} MB"
            f" (target <= {TARGET_RSS_MB:.0f} MB: {'met' if ok else 'NOT met'})",
            file=human,
        )
    if growth is not None and first is not None and last is not None:
        verdicts["growth_mb"] = growth
        print(
            f"growth over the steady load: {growth:+.1f} MB ({last.rss_mb:.1f} at {last.t_s:.0f} s minus"
            f" {first.rss_mb:.1f} at {first.t_s:.0f} s); samples median {_median_rss(samples):.1f} MB",
            file=human,
        )
    if errors:
        print(f"\n!! {errors} request(s) failed; first errors:", file=human)
        for line in failures[:5]:
            print(f"   {' '.join(line.split())[:300]}", file=human)
    human.flush()
    if args.json:
        doc = {
            "config": {
                "keys": args.keys,
                "steady_minutes": args.steady_minutes,
                "sample_seconds": args.sample_seconds,
                "steady_pool": args.steady_pool,
                "key_cache_size": args.key_cache_size,
                "connections": args.connections,
                "client_procs": args.client_procs,
                "steady_procs": args.steady_procs,
                "openkms_args": args.openkms_args,
                "python": platform.python_version(),
                "machine": platform.machine(),
            },
            "create": {"keys": created, "seconds": create_s},
            "use_once": {"seconds": use_s},
            "phases": [asdict(s) for s in phases],
            "steady": steady,
            "samples": [asdict(s) for s in samples],
            "verdicts": verdicts,
            "errors": errors,
            "error_samples": failures[:10],
        }
        text = json.dumps(doc, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
            _log(f"JSON report written to {args.json}")
    return 1 if errors else 0


def _median_rss(samples: list[Sample]) -> float:
    values = [s.rss_mb for s in samples if s.rss_mb is not None]
    return statistics.median(values) if values else float("nan")


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds the ExitStack: the server and the clients are stopped


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return run(args)
    except KeyboardInterrupt:
        _log("interrupted")
        return 130
    except (RuntimeError, ValueError, OSError) as exc:
        _log(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
