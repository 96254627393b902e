"""Aggregation (median of repeated runs) and output (human tables, JSON) for the KMS benchmark."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RunMetrics:
    """One measurement of one op on one target."""

    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    completed: int
    ok: int
    errors: int
    statuses: dict[str, int]
    new_conn_per_s: float
    client_cpu_pct: float  # % of one core, all client processes together
    server_cpu_pct: float | None  # % of one core, server process tree (None if not started by us)
    abandoned: int
    samples: list[str] = field(default_factory=list)


@dataclass
class Summary:
    """Median over the repeated runs of one (target, op); errors are summed, never averaged."""

    target: str
    op: str
    runs: list[RunMetrics]
    setup_error: str | None = None  # the op could not be prepared on this target (nothing measured)

    @property
    def failed(self) -> bool:
        return self.errors > 0 or self.setup_error is not None

    def _median(self, name: str) -> float:
        values = [getattr(r, name) for r in self.runs]
        values = [v for v in values if v is not None and not math.isnan(v)]
        return statistics.median(values) if values else float("nan")

    @property
    def rps(self) -> float:
        return self._median("rps")

    @property
    def p50_ms(self) -> float:
        return self._median("p50_ms")

    @property
    def p99_ms(self) -> float:
        return self._median("p99_ms")

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs)

    @property
    def completed(self) -> int:
        return sum(r.completed for r in self.runs)

    @property
    def new_conn_per_s(self) -> float:
        return self._median("new_conn_per_s")

    @property
    def client_cpu_pct(self) -> float:
        return self._median("client_cpu_pct")

    @property
    def server_cpu_pct(self) -> float:
        return self._median("server_cpu_pct")

    def statuses(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for run in self.runs:
            for key, count in run.statuses.items():
                out[key] = out.get(key, 0) + count
        return out

    def samples(self) -> list[str]:
        seen: list[str] = []
        for run in self.runs:
            for sample in run.samples:
                if sample not in seen:
                    seen.append(sample)
        return seen[:3]

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "op": self.op,
            "rps": _num(self.rps),
            "p50_ms": _num(self.p50_ms),
            "p99_ms": _num(self.p99_ms),
            "errors": self.errors,
            "setup_error": self.setup_error,
            "completed": self.completed,
            "error_statuses": self.statuses(),
            "error_samples": self.samples(),
            "new_connections_per_s": _num(self.new_conn_per_s),
            "client_cpu_pct": _num(self.client_cpu_pct),
            "server_cpu_pct": _num(self.server_cpu_pct),
            "runs": [
                {k: _num(v) if isinstance(v, float) else v for k, v in asdict(r).items()} for r in self.runs
            ],
        }


def _num(value: float | None, digits: int = 3) -> float | None:
    if value is None or math.isnan(value):
        return None
    return round(value, digits)


def _ratio(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b) or a == 0 or b == 0:
        return float("nan")
    return a / b


def fmt(value: float | None, spec: str, suffix: str = "") -> str:
    """Format ``value`` with ``spec`` (e.g. ``"9.1f"``); a missing value is a right-aligned ``-``."""
    if value is None or math.isnan(value):
        width = int(spec.split(".")[0] or 0) + len(suffix)
        return "-".rjust(width)
    return f"{value:{spec}}{suffix}"


def results_table(summaries: list[Summary]) -> str:
    op_w = max([len("op"), *(len(s.op) for s in summaries)])
    head = (
        f"{'target':<8} {'op':<{op_w}} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
        f" {'conn/s':>7} {'client cpu':>10} {'server cpu':>10}"
    )
    lines = [head, "-" * len(head)]
    for s in summaries:
        if s.setup_error is not None:
            lines.append(f"{s.target:<8} {s.op:<{op_w}} {'setup failed (see below)':>35} !")
            continue
        flag = " !" if s.errors else ""
        lines.append(
            f"{s.target:<8} {s.op:<{op_w}} {fmt(s.rps, '10.1f')} {fmt(s.p50_ms, '8.2f')}"
            f" {fmt(s.p99_ms, '8.2f')} {s.errors:>7} {fmt(s.new_conn_per_s, '7.0f')}"
            f" {fmt(s.client_cpu_pct, '9.0f', '%')} {fmt(s.server_cpu_pct, '9.0f', '%')}{flag}"
        )
    return "\n".join(lines)


def comparison(summaries: list[Summary], left: str = "openkms", right: str = "moto") -> list[dict[str, Any]]:
    by_key = {(s.target, s.op): s for s in summaries}
    rows = []
    for op in dict.fromkeys(s.op for s in summaries):
        a, b = by_key.get((left, op)), by_key.get((right, op))
        if a is None or b is None:
            continue
        rows.append(
            {
                "op": op,
                f"{left}_rps": _num(a.rps, 1),
                f"{right}_rps": _num(b.rps, 1),
                "rps_ratio": _num(_ratio(a.rps, b.rps), 2),
                "p50_ratio": _num(_ratio(a.p50_ms, b.p50_ms), 3),
                "p99_ratio": _num(_ratio(a.p99_ms, b.p99_ms), 3),
                f"{left}_failed": a.failed,
                f"{right}_failed": b.failed,
            }
        )
    return rows


def comparison_table(rows: list[dict[str, Any]], left: str = "openkms", right: str = "moto") -> str:
    if not rows:
        return ""
    op_w = max([len("op"), *(len(r["op"]) for r in rows)])
    head = (
        f"{'op':<{op_w}} {left + ' req/s':>14} {right + ' req/s':>12} {'req/s ratio':>11}"
        f" {'p50 ratio':>9} {'p99 ratio':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        flag = " ! errors" if r[f"{left}_failed"] or r[f"{right}_failed"] else ""
        lines.append(
            f"{r['op']:<{op_w}} {fmt(r[f'{left}_rps'], '14.1f')} {fmt(r[f'{right}_rps'], '12.1f')}"
            f" {fmt(r['rps_ratio'], '10.2f', 'x')} {fmt(r['p50_ratio'], '9.3f')}"
            f" {fmt(r['p99_ratio'], '9.3f')}{flag}"
        )
    return "\n".join(lines)


def error_report(summaries: list[Summary]) -> str:
    lines = []
    for s in summaries:
        if s.setup_error is not None:
            lines.append(f"!! {s.target} {s.op}: setup failed, not measured: {s.setup_error}")
            continue
        if not s.errors:
            continue
        statuses = ", ".join(f"{k} x{v}" for k, v in sorted(s.statuses().items()))
        lines.append(f"!! {s.target} {s.op}: {s.errors} errors of {s.completed} responses ({statuses})")
        lines.extend(f"     e.g. {sample}" for sample in s.samples())
    return "\n".join(lines)
