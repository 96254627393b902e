"""Scale: throughput with more server processes, one server with ``--workers N`` or N separate nodes.

Configurations (``--modes``), for N = 1..``--max-workers`` (default: the machine's cores):

* ``sqlite-workers``: ``openkms serve --workers N`` on a fresh SQLite data directory;
* ``pg-workers``: the same on a fresh PostgreSQL database (``--database-url``);
* ``pg-nodes`` (N >= 2): N separate ``openkms serve`` processes on their own ports, one fresh
  PostgreSQL database, the same account; the nodes after the first get the first one's root key file
  (``--root-key-file``, as README's "Several servers on one PostgreSQL database" says). The load
  generator spreads its connections round robin over the nodes.

``--database-url`` names a PostgreSQL server and a database to connect to for administration (e.g.
``postgresql://user:pass@127.0.0.1:5432/postgres``); the role must be allowed to CREATE DATABASE. Every
PostgreSQL configuration gets its own database, ``--db-prefix`` + a suffix, dropped on exit.

Every configuration is started first and stays up (idle) while the others are measured; then, for
each repeat, each op and each configuration in turn, the load generator (``loadgen.py``, as in
``kms_load.py``) replays pre-signed requests over ``--connections`` keep-alive connections for
``--seconds`` after a ``--warmup``. The report shows the median of the repeats: req/s, p50, p99, the
CPU of the server processes, of the PostgreSQL backends serving the configuration's database, and of
the client, the audit queue's depth at the end of the window (configurations whose processes serve
metrics: one process per server), and the throughput each added process adds over the same
database's one-process configuration.

Usage (from the repository root)::

    .venv/bin/python benchmarks/scale.py --seconds 10 --repeat 3
    .venv/bin/python benchmarks/scale.py --database-url postgresql://u:p@127.0.0.1:5432/postgres \\
        --max-workers 2 --ops Encrypt,DescribeKey --json scale.json

Exit status: 0 on success, 1 if any request failed (all counted and printed), 2 if a server or a
database could not be set up, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shlex
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import kms_load
import kms_ops
import loadgen
import report
import targets

REGION = "us-east-1"
MODES = ("sqlite-workers", "pg-workers", "pg-nodes")


@dataclass
class Config:
    """One configuration: its server processes (one target per endpoint), running until the end."""

    name: str
    mode: str
    procs: int  # server processes answering the load
    database: str | None = None  # the PostgreSQL database's name (None: SQLite)
    nodes: list[targets.Target] = field(default_factory=list)
    metrics_ports: list[int] = field(default_factory=list)  # one per node, when the nodes serve metrics

    @property
    def base_mode(self) -> str:
        """The configuration whose one-process figure the added throughput is measured from."""
        return "sqlite-workers" if self.mode == "sqlite-workers" else "pg-workers"


@dataclass
class Run:
    """One measurement of one op on one configuration."""

    metrics: report.RunMetrics
    db_cpu_pct: float | None
    audit_queue: float | None


# --------------------------------------------------------------------------- PostgreSQL


def _database_url(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _admin(url: str, statement: str) -> None:
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)
    except psycopg.Error as exc:
        raise RuntimeError(f"{statement}: {exc}") from None


def redact(text: str) -> str:
    """``text`` with the passwords of the URLs in it replaced by ``***``."""
    return re.sub(r"(://[^:/@\s]+):[^@\s]+@", r"\1:***@", text)


def create_database(stack: contextlib.ExitStack, url: str, name: str) -> str:
    """Create database ``name`` on the server of ``url``, dropped when ``stack`` closes; its URL."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"{name!r}: not a plain database name")
    _admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin(url, f'CREATE DATABASE "{name}"')
    stack.callback(_admin, url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return _database_url(url, name)


def backend_cpu(database: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends connected to ``database`` (their process
    title names it), as far as /proc shows them; backends that exited are not counted."""
    total = 0.0
    marker = f" {database} ".encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"postgres:") and marker in cmdline.replace(b"\0", b" ") + b" ":
            st = targets._proc_stat(int(entry.name))
            if st is not None:
                total += st[1]
    return total


# --------------------------------------------------------------------------- starting configurations


def _data_dir(target: targets.Target) -> Path:
    return Path(target.command[target.command.index("--data-dir") + 1])


def start_config(
    stack: contextlib.ExitStack, workdir: Path, args: argparse.Namespace, mode: str, n: int
) -> Config:
    if mode == "sqlite-workers":
        cfg = Config(f"sqlite --workers {n}", mode, n)
    elif mode == "pg-workers":
        cfg = Config(f"pg --workers {n}", mode, n, database=f"{args.db_prefix}_w{n}")
    else:
        cfg = Config(f"pg {n} nodes", mode, n, database=f"{args.db_prefix}_n{n}")
    home = Path(tempfile.mkdtemp(prefix=re.sub(r"\W+", "-", cfg.name) + "-", dir=workdir))
    db_args = ""
    if cfg.database is not None:
        db_args = f"--database-url {shlex.quote(create_database(stack, args.database_url, cfg.database))}"
    metrics = n == 1 or mode == "pg-nodes"  # --metrics-listen is one process's: refused with --workers 2+
    mport = targets.free_port() if metrics else None
    serve = f"{args.openkms_args} {db_args}"
    first_args = serve + (f" --metrics-listen 127.0.0.1:{mport}" if mport else "")
    if mode != "pg-nodes":
        first_args += f" --workers {n}"
    first = targets.start_openkms(stack, home, first_args, command=args.openkms_bin)
    first.name = cfg.name
    cfg.nodes.append(first)
    if mport:
        cfg.metrics_ports.append(mport)
    if mode == "pg-nodes":
        root_key = _data_dir(first) / "root.key"
        if not root_key.exists():
            raise RuntimeError(f"{root_key}: the first node made no root key file to share")
        for k in range(1, n):
            cfg.nodes.append(_start_node(stack, home, args, serve, root_key, first, k, cfg.metrics_ports))
    if n > 1 and mode != "pg-nodes":
        time.sleep(2.0)  # the first worker answered: give the others time to import and listen
    pids = ", ".join(str(t.pid) for t in cfg.nodes)
    _log(f"{cfg.name}: {', '.join(t.endpoint for t in cfg.nodes)} (pid {pids})")
    return cfg


def _start_node(
    stack: contextlib.ExitStack,
    home: Path,
    args: argparse.Namespace,
    serve: str,
    root_key: Path,
    first: targets.Target,
    k: int,
    metrics_ports: list[int],
) -> targets.Target:
    """Node ``k`` (>= 1) of a pg-nodes configuration: the first one's database, root key and account."""
    port = targets.free_port()
    mport = targets.free_port()
    metrics_ports.append(mport)
    data_dir = home / f"node{k}"
    cmd = [
        *targets.openkms_command(args.openkms_bin),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--root-key-file",
        str(root_key),
        "--metrics-listen",
        f"127.0.0.1:{mport}",
        *shlex.split(serve),
    ]
    log_path = home / f"node{k}.log"
    proc = targets._spawn(stack, cmd, log_path)
    try:
        targets.wait_until_answers("127.0.0.1", port, proc, f"openkms node {k}")
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}\ncommand: {shlex.join(cmd)}\n{targets.log_tail(log_path)}") from None
    return targets.Target(
        first.name, "127.0.0.1", port, first.access_key, first.secret_key, proc.pid, cmd, log_path
    )


# --------------------------------------------------------------------------- measuring


def measure(
    clients: loadgen.ClientPool,
    cfg: Config,
    action: str,
    bodies: tuple[bytes, ...],
    args: argparse.Namespace,
) -> Run:
    specs = [
        loadgen.SignSpec(t.host, t.port, args.region, t.access_key, t.secret_key, action, bodies)
        for t in cfg.nodes
    ]
    cpu: dict[str, tuple[float | None, float | None]] = {}

    def on_window(edge: str) -> None:
        server = [targets.process_tree_cpu(t.pid) for t in cfg.nodes if t.pid]
        srv = None if not server or None in server else sum(s or 0.0 for s in server)
        cpu[edge] = (srv, backend_cpu(cfg.database) if cfg.database else None)

    res = clients.measure(specs[0], args.connections, args.warmup, args.seconds, on_window, more=specs[1:])
    queue = [targets.scrape_metrics(p).get("openkms_audit_queue_depth") for p in cfg.metrics_ports]
    if res.completed == 0:
        res.errors = 1
        res.statuses["no-response"] = 1
        res.samples.append("no-response: no request completed inside the measured window")

    def pct(i: int) -> float | None:
        start, end = cpu.get("start", (None, None))[i], cpu.get("end", (None, None))[i]
        return (end - start) / args.seconds * 100 if start is not None and end is not None else None

    metrics = report.RunMetrics(
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
        server_cpu_pct=pct(0),
        abandoned=res.abandoned,
        samples=res.samples,
    )
    known = [q for q in queue if q is not None]
    return Run(metrics, pct(1), max(known) if known else None)


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


# --------------------------------------------------------------------------- the benchmark


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="openkms throughput with --workers N and with N nodes on one PostgreSQL database.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--max-workers", type=int, default=os.cpu_count() or 1, help="N runs from 1 to this")
    p.add_argument(
        "--modes", default=",".join(MODES), help=f"comma-separated: {', '.join(MODES)} (pg-*: --database-url)"
    )
    p.add_argument("--database-url", help="PostgreSQL server (and a database to connect to) for pg-*")
    p.add_argument("--db-prefix", default="openkms_bench_scale", help="prefix of the databases created")
    p.add_argument("--ops", default="Encrypt", help="comma-separated op ids of kms_ops.py, or 'all'")
    p.add_argument("--seconds", type=float, default=10.0, help="measured window per run")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured warm-up before each window")
    p.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections (in all)")
    p.add_argument("--client-procs", type=int, default=1, help="load-generator processes")
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is reported")
    p.add_argument("--pool", type=int, default=16, help="distinct signed requests per op")
    p.add_argument("--pause", type=float, default=0.5, help="idle seconds between measurements")
    p.add_argument("--json", nargs="?", const="-", metavar="PATH", help="write a JSON report (to stdout: -)")
    p.add_argument("--region", default=REGION)
    p.add_argument("--workdir", default=None, help="parent of the temporary directory (default: $TMPDIR)")
    p.add_argument("--openkms-args", default="", help="extra arguments for every 'openkms serve'")
    p.add_argument(
        "--openkms-bin",
        metavar="CMD",
        help="command that runs openkms (default: this interpreter's bin/openkms, else python -m openkms)",
    )
    args = p.parse_args(argv)
    kms_load.check_load_args(p, args)
    if not 1 <= args.max_workers <= 64:
        p.error("--max-workers must be in [1, 64]")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown or not modes:
        p.error(f"--modes: unknown {sorted(unknown)}; use {', '.join(MODES)}")
    if any(m.startswith("pg-") for m in modes) and not args.database_url:
        _log("no --database-url: measuring sqlite-workers only")
        modes = [m for m in modes if not m.startswith("pg-")]
        if not modes:
            p.error("the pg-* modes need --database-url")
    args.mode_list = modes
    return args


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    ops = kms_ops.resolve_ops(args.ops)
    with contextlib.ExitStack() as stack:
        if args.workdir:
            Path(args.workdir).mkdir(parents=True, exist_ok=True)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scale-", dir=args.workdir)))
        configs: list[Config] = []
        for mode in args.mode_list:
            for n in range(2 if mode == "pg-nodes" else 1, args.max_workers + 1):
                configs.append(start_config(stack, workdir, args, mode, n))
        clients = loadgen.ClientPool(args.client_procs)
        stack.callback(clients.close)

        bodies: dict[tuple[str, str], tuple[bytes, ...]] = {}
        for cfg in configs:
            first = cfg.nodes[0]
            setup = kms_ops.TargetSetup(first.endpoint, args.region, first.access_key, first.secret_key)
            for op in ops:
                bodies[cfg.name, op.name] = setup.bodies(op, args.pool)
        _log(f"setup done: {len(ops)} ops x {len(configs)} configurations")

        runs: dict[tuple[str, str], list[Run]] = {k: [] for k in bodies}
        name_w = max(len(c.name) for c in configs)
        for rep in range(args.repeat):
            for op in ops:
                for cfg in configs:
                    r = measure(clients, cfg, op.action, bodies[cfg.name, op.name], args)
                    runs[cfg.name, op.name].append(r)
                    m = r.metrics
                    err = f"  ERRORS {m.errors}" if m.errors else ""
                    _log(
                        f"[{rep + 1}/{args.repeat}] {cfg.name:<{name_w}} {op.name} {m.rps:9.1f} req/s"
                        f"  p50 {report.fmt(m.p50_ms, '7.2f')} ms  p99 {report.fmt(m.p99_ms, '7.2f')} ms"
                        f"  server cpu {report.fmt(m.server_cpu_pct, '4.0f')}%"
                        f"  db cpu {report.fmt(r.db_cpu_pct, '4.0f')}%"
                        f"  client cpu {m.client_cpu_pct:3.0f}%{err}"
                    )
                    time.sleep(args.pause)
        return _output(args, configs, ops, runs)


def _rows(
    configs: list[Config], ops: list[kms_ops.OpDef], runs: dict[tuple[str, str], list[Run]]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for op in ops:
        base: dict[str, float] = {}
        for cfg in configs:
            summary = report.Summary(cfg.name, op.name, [r.metrics for r in runs[cfg.name, op.name]])
            row: dict[str, Any] = {
                "config": cfg.name,
                "mode": cfg.mode,
                "procs": cfg.procs,
                "op": op.name,
                "rps": summary.rps,
                "p50_ms": summary.p50_ms,
                "p99_ms": summary.p99_ms,
                "errors": summary.errors,
                "server_cpu_pct": summary.server_cpu_pct,
                "db_cpu_pct": _median([r.db_cpu_pct for r in runs[cfg.name, op.name]]),
                "client_cpu_pct": summary.client_cpu_pct,
                "audit_queue": _median([r.audit_queue for r in runs[cfg.name, op.name]]),
                "runs_rps": [r.metrics.rps for r in runs[cfg.name, op.name]],
                "summary": summary.to_json(),
            }
            if cfg.procs == 1:
                base[cfg.mode] = summary.rps
            one = base.get(cfg.base_mode)
            if one and cfg.procs > 1:
                row["added_rps_per_process"] = (summary.rps - one) / (cfg.procs - 1)
                row["speedup"] = summary.rps / one
                row["efficiency"] = summary.rps / (one * cfg.procs)
            rows.append(row)
    return rows


def _output(
    args: argparse.Namespace,
    configs: list[Config],
    ops: list[kms_ops.OpDef],
    runs: dict[tuple[str, str], list[Run]],
) -> int:
    rows = _rows(configs, ops, runs)
    human = sys.stderr if args.json == "-" else sys.stdout
    print(
        f"\nmedian of {args.repeat} run(s): {args.seconds:g} s window after {args.warmup:g} s warm-up,"
        f" {args.connections} connections, {args.client_procs} client process(es), {os.cpu_count()} cores;"
        " cpu in % of one core\n",
        file=human,
    )
    name_w = max(len("config"), *(len(c.name) for c in configs))
    op_w = max(len("op"), *(len(op.name) for op in ops))
    head = (
        f"{'config':<{name_w}} {'op':<{op_w}} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}"
        f" {'server':>7} {'db':>5} {'client':>6} {'audit q':>7} {'+req/s/proc':>11} {'speedup':>7}"
    )
    print(head, file=human)
    print("-" * len(head), file=human)
    for r in rows:
        added = r.get("added_rps_per_process")
        speedup = r.get("speedup")
        print(
            f"{r['config']:<{name_w}} {r['op']:<{op_w}} {report.fmt(r['rps'], '9.1f')}"
            f" {report.fmt(r['p50_ms'], '7.2f')} {report.fmt(r['p99_ms'], '7.2f')} {r['errors']:>6}"
            f" {report.fmt(r['server_cpu_pct'], '6.0f', '%')} {report.fmt(r['db_cpu_pct'], '4.0f', '%')}"
            f" {report.fmt(r['client_cpu_pct'], '5.0f', '%')} {report.fmt(r['audit_queue'], '7.0f')}"
            f" {report.fmt(added, '+11.1f')} {report.fmt(speedup, '6.2f', 'x')}",
            file=human,
        )
    print(
        "\n+req/s/proc: (req/s - req/s of the same database's one process) / (processes - 1);"
        " pg nodes are compared with pg --workers 1",
        file=human,
    )
    summaries = [
        report.Summary(r["config"], r["op"], [x.metrics for x in runs[r["config"], r["op"]]]) for r in rows
    ]
    errors = report.error_report(summaries)
    if errors:
        print(f"\n{errors}", file=human)
    human.flush()
    if args.json:
        doc = {
            "config": {
                "max_workers": args.max_workers,
                "modes": args.mode_list,
                "ops": [op.name for op in ops],
                "seconds": args.seconds,
                "warmup": args.warmup,
                "connections": args.connections,
                "client_procs": args.client_procs,
                "repeat": args.repeat,
                "pool": args.pool,
                "cores": os.cpu_count(),
                "python": platform.python_version(),
                "machine": platform.machine(),
            },
            "configurations": {
                c.name: {
                    "mode": c.mode,
                    "procs": c.procs,
                    "commands": [redact(shlex.join(t.command)) for t in c.nodes],
                }
                for c in configs
            },
            "results": rows,
        }
        text = json.dumps(doc, indent=2, default=str)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
            _log(f"JSON report written to {args.json}")
    return 1 if any(s.failed for s in summaries) else 0


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds the ExitStack: servers, databases and clients go


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
