"""Load benchmark: openkms against moto's server and a bare ASGI app, same client, same run.

For each target (``openkms``, ``moto`` and, with ``--targets openkms,bare,moto``, ``bare``: uvicorn
answering a fixed body, the HTTP stack alone; all started here on free loopback
ports unless an endpoint is given) and each operation (``--ops``), the script
creates the keys and request bodies with boto3, then hands them to the load
generator (``loadgen.py``), which SigV4-signs a pool of requests and replays it
over ``--connections`` keep-alive connections for ``--seconds`` after a
``--warmup``.  Measurements are interleaved (op by op, target by target) and
repeated ``--repeat`` times; the report shows the median of the repeats.

Usage (from the repository root)::

    .venv/bin/python benchmarks/kms_load.py --seconds 10 --connections 16 --repeat 3
    .venv/bin/python benchmarks/kms_load.py --ops Encrypt,Sign:ECC_NIST_P256 --json out.json
    .venv/bin/python benchmarks/kms_load.py --list-ops

Exit status: 0 on success, 1 if any request failed (non-200 or connection
error) or an op could not be set up on a target (all printed), 2 if a target
could not be started or reached, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

import kms_ops
import loadgen
import report
import targets

REGION = "us-east-1"
CLIENT_BUSY_FRACTION = 0.7  # warn when a load-generator process is busier than this (of one core)


def check_load_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The bounds of the load options shared by the benchmark scripts."""
    if args.seconds <= 0 or args.seconds > 3600:
        p.error("--seconds must be in (0, 3600]")
    if args.warmup < 0 or args.warmup > 600:
        p.error("--warmup must be in [0, 600]")
    if not 1 <= args.connections <= 4096:
        p.error("--connections must be in [1, 4096]")
    if not 1 <= args.client_procs <= 64:
        p.error("--client-procs must be in [1, 64]")
    if not 1 <= args.repeat <= 100:
        p.error("--repeat must be in [1, 100]")
    if not 1 <= args.pool <= 10000:
        p.error("--pool must be in [1, 10000]")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Measure openkms against moto_server with pre-signed AWS KMS requests.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--targets", default="openkms,moto", help="comma-separated: openkms, moto, bare")
    p.add_argument("--ops", default=",".join(kms_ops.DEFAULT_OPS), help="comma-separated op ids, or 'all'")
    p.add_argument("--list-ops", action="store_true", help="list the known op ids and exit")
    p.add_argument("--seconds", type=float, default=10.0, help="measured window per run")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured warm-up before each window")
    p.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections")
    p.add_argument("--client-procs", type=int, default=1, help="load-generator processes")
    p.add_argument("--repeat", type=int, default=1, help="runs per measurement; the median is reported")
    p.add_argument(
        "--pool", type=int, default=16, help="distinct signed requests per op, replayed round robin"
    )
    p.add_argument("--pause", type=float, default=0.5, help="idle seconds between measurements")
    p.add_argument("--json", nargs="?", const="-", metavar="PATH", help="write a JSON report (to stdout: -)")
    p.add_argument("--region", default=REGION)
    g = p.add_argument_group("openkms target")
    g.add_argument("--openkms-endpoint", metavar="URL", help="use a running server instead of starting one")
    g.add_argument("--access-key", help="access key id for --openkms-endpoint")
    g.add_argument("--secret-key", help="secret access key for --openkms-endpoint")
    g.add_argument("--openkms-args", default="", help="extra arguments for 'openkms serve' (shell-quoted)")
    g.add_argument(
        "--openkms-admin-args",
        default=None,
        help="extra arguments for 'openkms admin create-account' (default: the --database-url and"
        " --root-key-file options of --openkms-args)",
    )
    g.add_argument(
        "--openkms-bin",
        metavar="CMD",
        help="command that runs openkms (default: this interpreter's bin/openkms, else python -m openkms)",
    )
    g = p.add_argument_group("moto target")
    g.add_argument("--moto-endpoint", metavar="URL", help="use a running moto_server instead of starting one")
    g = p.add_argument_group("bare target")
    g.add_argument(
        "--bare-prefix",
        default="",
        metavar="CMD",
        help="command before the bare app's interpreter, e.g. 'taskset -c 0' to pin it as openkms",
    )
    args = p.parse_args(argv)
    check_load_args(p, args)
    if args.openkms_endpoint and not (args.access_key and args.secret_key):
        p.error("--openkms-endpoint needs --access-key and --secret-key")
    return args


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _start_targets(
    args: argparse.Namespace, stack: contextlib.ExitStack, workdir: Path
) -> list[targets.Target]:
    wanted = [t.strip().lower() for t in args.targets.split(",") if t.strip()]
    unknown = set(wanted) - {"openkms", "moto", "bare"}
    if unknown or not wanted:
        raise ValueError(f"--targets: unknown {sorted(unknown)}; use openkms, moto and/or bare")
    out: list[targets.Target] = []
    for name in dict.fromkeys(wanted):
        if name == "openkms":
            if args.openkms_endpoint:
                target = targets.external_target(
                    "openkms", args.openkms_endpoint, args.access_key, args.secret_key
                )
            else:
                target = targets.start_openkms(
                    stack, workdir, args.openkms_args, args.openkms_admin_args, args.openkms_bin
                )
        elif name == "bare":
            target = targets.start_bare(stack, workdir, args.bare_prefix)
        elif args.moto_endpoint:
            target = targets.external_target("moto", args.moto_endpoint, "testing", "testing")
        else:
            target = targets.start_moto(stack, workdir)
        how = f"started pid {target.pid}" if target.pid else "external"
        _log(f"target {target.name}: {target.endpoint} ({how})")
        out.append(target)
    return out


def _measure(
    clients: loadgen.ClientPool,
    target: targets.Target,
    action: str,
    bodies: tuple[bytes, ...],
    args: argparse.Namespace,
) -> report.RunMetrics:
    spec = loadgen.SignSpec(
        host=target.host,
        port=target.port,
        region=args.region,
        access_key=target.access_key,
        secret_key=target.secret_key,
        action=action,
        bodies=bodies,
    )
    server_cpu: dict[str, float | None] = {}

    def on_window(edge: str) -> None:
        server_cpu[edge] = targets.process_tree_cpu(target.pid) if target.pid else None

    res = clients.measure(spec, args.connections, args.warmup, args.seconds, on_window)
    if res.completed == 0:  # a stalled server must show up as a failure, not as an empty row
        res.errors = 1
        res.statuses["no-response"] = 1
        res.samples.append("no-response: no request completed inside the measured window")
    start, end = server_cpu.get("start"), server_cpu.get("end")
    srv = (end - start) / args.seconds * 100 if start is not None and end is not None else None
    if res.client_cpu_s / args.seconds / res.procs > CLIENT_BUSY_FRACTION:
        _log(
            f"!! the load generator used {res.client_cpu_s / args.seconds:.0%} of a core over {res.procs}"
            " process(es): it may be the bottleneck (try --client-procs 2)"
        )
    return report.RunMetrics(
        rps=res.rps,
        p50_ms=res.percentile_ms(50),
        p99_ms=res.percentile_ms(99),
        max_ms=res.latencies_ns[-1] / 1e6 if res.latencies_ns else float("nan"),
        completed=res.completed,
        ok=res.ok,
        errors=res.errors,
        statuses=res.statuses,
        new_conn_per_s=res.new_connections / args.seconds,
        client_cpu_pct=res.client_cpu_s / args.seconds * 100,
        server_cpu_pct=srv,
        abandoned=res.abandoned,
        samples=res.samples,
    )


def run(args: argparse.Namespace) -> int:
    ops = kms_ops.resolve_ops(args.ops)
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="openkms-bench-")))
        tlist = _start_targets(args, stack, workdir)
        clients = loadgen.ClientPool(args.client_procs)
        stack.callback(clients.close)

        bodies: dict[tuple[str, str], tuple[bytes, ...]] = {}
        setup_errors: dict[tuple[str, str], str] = {}
        for target in tlist:
            if target.name == "bare":  # answers anything: it replays the first real target's requests
                continue
            setup = kms_ops.TargetSetup(target.endpoint, args.region, target.access_key, target.secret_key)
            for op in ops:
                try:
                    bodies[target.name, op.name] = setup.bodies(op, args.pool)
                except Exception as exc:  # e.g. an op or key spec the server does not support (yet)
                    setup_errors[target.name, op.name] = " ".join(str(exc).split())
                    _log(f"!! setup of {op.name} on {target.name} failed, skipping it: {exc}")
        if not bodies:
            raise RuntimeError("setup failed for every op on every target; nothing to measure")
        real = [t.name for t in tlist if t.name != "bare"]
        if any(t.name == "bare" for t in tlist):
            for op in ops:
                source = next(((name, op.name) for name in real if (name, op.name) in bodies), None)
                if source is not None:
                    bodies["bare", op.name] = bodies[source]
        _log(f"setup done: {len(ops)} ops x {len(tlist)} targets, {args.pool} requests per pool")

        runs: dict[tuple[str, str], list[report.RunMetrics]] = {k: [] for k in bodies}
        op_w = max(len(op.name) for op in ops)
        for rep in range(args.repeat):
            for op in ops:
                for target in tlist:
                    if (target.name, op.name) not in bodies:
                        continue
                    m = _measure(clients, target, op.action, bodies[target.name, op.name], args)
                    runs[target.name, op.name].append(m)
                    err = f"  ERRORS {m.errors}" if m.errors else ""
                    _log(
                        f"[{rep + 1}/{args.repeat}] {target.name:<7} {op.name:<{op_w}} {m.rps:9.1f} req/s"
                        f"  p50 {report.fmt(m.p50_ms, '7.2f')} ms  p99 {report.fmt(m.p99_ms, '7.2f')} ms"
                        f"  client cpu {m.client_cpu_pct:3.0f}%{err}"
                    )
                    time.sleep(args.pause)

        summaries = [
            report.Summary(
                t.name, op.name, runs.get((t.name, op.name), []), setup_errors.get((t.name, op.name))
            )
            for op in ops
            for t in tlist
        ]
        return _output(args, tlist, ops, summaries)


def _output(
    args: argparse.Namespace,
    tlist: list[targets.Target],
    ops: list[kms_ops.OpDef],
    summaries: list[report.Summary],
) -> int:
    rows = report.comparison(summaries)
    human = sys.stderr if args.json == "-" else sys.stdout
    title = (
        f"median of {args.repeat} run(s): {args.seconds:g} s window after {args.warmup:g} s warm-up,"
        f" {args.connections} connections, {args.client_procs} client process(es)"
    )
    print(f"\n{title}\n", file=human)
    print(report.results_table(summaries), file=human)
    if rows:
        print(
            "\nopenkms / moto (req/s ratio: higher is better; latency ratios: lower is better)\n", file=human
        )
        print(report.comparison_table(rows), file=human)
    bare_rows = report.comparison(summaries, "openkms", "bare")
    if bare_rows:
        print(
            "\nopenkms / bare ASGI app (the HTTP stack alone: the share of it openkms reaches)\n", file=human
        )
        print(report.comparison_table(bare_rows, "openkms", "bare"), file=human)
    errors = report.error_report(summaries)
    if errors:
        print(f"\n{errors}", file=human)
    human.flush()

    if args.json:
        doc: dict[str, Any] = {
            "config": {
                "seconds": args.seconds,
                "warmup": args.warmup,
                "connections": args.connections,
                "client_procs": args.client_procs,
                "repeat": args.repeat,
                "pool": args.pool,
                "region": args.region,
                "python": platform.python_version(),
                "machine": platform.machine(),
            },
            "targets": {
                t.name: {"endpoint": t.endpoint, "started": t.pid is not None, "command": t.command}
                for t in tlist
            },
            "ops": {op.name: {"action": op.action, "description": op.description} for op in ops},
            "results": [s.to_json() for s in summaries],
            "comparison": rows,
            "comparison_bare": bare_rows,
        }
        text = json.dumps(doc, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
            _log(f"JSON report written to {args.json}")
    return 1 if any(s.failed for s in summaries) else 0


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds the ExitStack: servers and workers are stopped


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.list_ops:
        for op in kms_ops.OPS.values():
            key = f"{op.key.key_spec}/{op.key.key_usage}" if op.key else "-"
            print(f"{op.name:<30} {key:<34} {op.description}")
        return 0
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
