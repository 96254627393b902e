"""What realistic authorization costs: Encrypt throughput with a console key policy plus an IAM identity
policy, against the plain case, on one openkms server.

Both cases send the same ``Encrypt`` bodies (a 64-byte plaintext and ``EncryptionContext {"app":
"bench"}``) to the same server, so only authorization differs:

* **baseline** - the account's ``admin`` user (identity policy ``AdministratorAccess``: ``Allow * *``)
  on a key with the default key policy (one statement delegating to the account);
* **realistic** - an IAM user created through the IAM API on the same endpoint, with an inline identity
  policy allowing ``kms:Encrypt``/``kms:Decrypt`` on ``arn:aws:kms:*:<account>:key/*`` under a
  ``StringEquals kms:EncryptionContext:app`` condition, on a key whose policy is the console's
  (``build_console_key_policy``: administrators, key users, another account) plus a statement for the
  user conditioned on ``kms:EncryptionContext:app`` and ``aws:SourceIp``.

The runs are interleaved (baseline, realistic, baseline, ...; ``--repeat`` of each) with the load
generator of ``kms_load.py``; the report shows the medians, realistic/baseline and the cost in
percent. Then ``openkms.auth.policy.authorize`` is timed in this process on the same policies and a
request context built like the server builds it, and set against the per-request budget at the
measured rate (1e6 / req/s microseconds).

Usage (from the repository root)::

    .venv/bin/python benchmarks/authz_cost.py --seconds 8 --repeat 3
    .venv/bin/python benchmarks/authz_cost.py --seconds 10 --connections 32 --json out.json

Exit status: 0 on success, 1 if any request failed (all printed), 2 on a setup error (server does not
start, policy rejected, sanity check failed), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import json
import math
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import kms_load
import kms_ops
import loadgen
import report
import targets
from openkms.auth.policy import (
    Caller,
    PolicyDocument,
    Request,
    authorize,
    build_console_key_policy,
    parse_policy,
    pretty_json,
)
from openkms.domain.keyspec import KeySpec, KeyUsage, Origin
from openkms.domain.model import KeyRecord, KeyState, Principal
from openkms.service.kms.authz import base_context, caller_of, key_context
from openkms.service.kms.context import RequestContext

REGION = "us-east-1"
OTHER_ACCOUNT = "111122223333"
USER_NAME = "authz-bench-app"
INLINE_POLICY_NAME = "bench-app-kms"
ENCRYPTION_CONTEXT = {"app": "bench"}
EXTRA_SID = "Allow app-scoped use from loopback"
CASES = ("baseline", "realistic")
OP = "Encrypt"

ENCRYPT_WITH_CONTEXT = kms_ops.OpDef(
    name="Encrypt",
    action="Encrypt",
    key=kms_ops.SYMMETRIC,
    body=lambda ctx, i: {
        "KeyId": ctx.key_id,
        "Plaintext": base64.b64encode(os.urandom(kms_ops.PLAINTEXT_BYTES)).decode("ascii"),
        "EncryptionContext": ENCRYPTION_CONTEXT,
    },
    description=f"{kms_ops.PLAINTEXT_BYTES}-byte plaintext, EncryptionContext {ENCRYPTION_CONTEXT}",
)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Encrypt throughput with a realistic key policy + identity policy vs the plain case.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--seconds", type=float, default=10.0, help="measured window per run")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured warm-up before each window")
    p.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections")
    p.add_argument("--client-procs", type=int, default=1, help="load-generator processes")
    p.add_argument("--repeat", type=int, default=3, help="runs of each case (interleaved); medians reported")
    p.add_argument("--pool", type=int, default=16, help="distinct signed requests, replayed round robin")
    p.add_argument("--pause", type=float, default=0.5, help="idle seconds between measurements")
    p.add_argument(
        "--iterations", type=int, default=100_000, help="authorize() calls per case for the in-process timing"
    )
    p.add_argument("--json", nargs="?", const="-", metavar="PATH", help="write a JSON report (to stdout: -)")
    p.add_argument("--region", default=REGION)
    p.add_argument("--openkms-args", default="", help="extra arguments for 'openkms serve' (shell-quoted)")
    p.add_argument(
        "--openkms-bin",
        metavar="CMD",
        help="command that runs openkms (default: this interpreter's bin/openkms, else python -m openkms)",
    )
    args = p.parse_args(argv)
    kms_load.check_load_args(p, args)
    if not 1000 <= args.iterations <= 10_000_000:
        p.error("--iterations must be in [1000, 10000000]")
    return args


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- policies


def identity_policy(account: str) -> str:
    """The IAM user's inline policy: Encrypt/Decrypt on the account's keys, for one application only."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "UseAppKeys",
                    "Effect": "Allow",
                    "Action": ["kms:Encrypt", "kms:Decrypt"],
                    "Resource": f"arn:aws:kms:*:{account}:key/*",
                    "Condition": {"StringEquals": {"kms:EncryptionContext:app": ENCRYPTION_CONTEXT["app"]}},
                }
            ],
        }
    )


def realistic_key_policy(account: str, admin_arn: str, user_arn: str) -> str:
    """The console key policy plus a conditioned statement for the user.

    The extra statement goes before the console's ``Allow use of the key``: the engine stops at the first
    statement that allows the caller by name, so this one is the statement that grants the benchmark's
    requests and its conditions are evaluated on every request (appended last, it would never be reached).
    """
    doc = json.loads(
        build_console_key_policy(
            account,
            key_type="SYMMETRIC",
            origin="AWS_KMS",
            multi_region=False,
            administrators=[admin_arn],
            allow_admin_delete=True,
            users=[user_arn],
            other_accounts=[OTHER_ACCOUNT],
        )
    )
    extra = {
        "Sid": EXTRA_SID,
        "Effect": "Allow",
        "Principal": {"AWS": user_arn},
        "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"],
        "Resource": "*",
        "Condition": {
            "StringEquals": {"kms:EncryptionContext:app": ENCRYPTION_CONTEXT["app"]},
            "IpAddress": {"aws:SourceIp": "127.0.0.0/8"},
        },
    }
    statements = doc["Statement"]
    sids = [s.get("Sid") for s in statements]
    at = sids.index("Allow use of the key") if "Allow use of the key" in sids else len(statements)
    statements.insert(at, extra)
    return pretty_json(doc)


@dataclasses.dataclass
class Case:
    """One side of the comparison: who calls, with which key and policies."""

    name: str
    target: targets.Target  # the server, with this case's credentials
    principal: Principal
    key_id: str
    key_arn: str
    key_policy: str
    identity_policies: list[str]
    bodies: tuple[bytes, ...] = ()


def _policy_texts(iam: Any, user_name: str) -> list[str]:
    """The user's inline policies as the server holds them, in name order (as the authorizer reads them)."""
    names = sorted(iam.list_user_policies(UserName=user_name)["PolicyNames"])
    out = []
    for name in names:
        doc = iam.get_user_policy(UserName=user_name, PolicyName=name)["PolicyDocument"]
        out.append(doc if isinstance(doc, str) else json.dumps(doc))
    if iam.list_attached_user_policies(UserName=user_name)["AttachedPolicies"]:
        raise RuntimeError(f"user {user_name} has attached managed policies; expected inline ones only")
    return out


def setup_cases(server: targets.Target, args: argparse.Namespace) -> list[Case]:
    """Create the IAM user, its access key and policy, both keys, and the request pools (not timed)."""
    endpoint, region = server.endpoint, args.region
    sts = kms_ops.boto3_client("sts", endpoint, region, server.access_key, server.secret_key)
    me = sts.get_caller_identity()
    account, admin_arn = me["Account"], me["Arn"]
    iam = kms_ops.boto3_client("iam", endpoint, "us-east-1", server.access_key, server.secret_key)
    admin = iam.get_user()["User"]
    admin_setup = kms_ops.TargetSetup(endpoint, region, server.access_key, server.secret_key)
    kms = admin_setup.client

    user = iam.create_user(UserName=USER_NAME)["User"]
    key = iam.create_access_key(UserName=USER_NAME)["AccessKey"]
    iam.put_user_policy(
        UserName=USER_NAME, PolicyName=INLINE_POLICY_NAME, PolicyDocument=identity_policy(account)
    )
    user_arn = user["Arn"]

    plain = kms.create_key(Description="authz_cost baseline: default key policy")
    plain_meta = plain["KeyMetadata"]
    policy = realistic_key_policy(account, admin_arn, user_arn)
    rich = kms.create_key(Description="authz_cost realistic: console key policy", Policy=policy)
    rich_meta = rich["KeyMetadata"]
    default_policy = kms.get_key_policy(KeyId=plain_meta["KeyId"], PolicyName="default")["Policy"]
    stored_policy = kms.get_key_policy(KeyId=rich_meta["KeyId"], PolicyName="default")["Policy"]

    user_target = dataclasses.replace(
        server, access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"]
    )
    user_setup = kms_ops.TargetSetup(endpoint, region, key["AccessKeyId"], key["SecretAccessKey"])
    # the new access key must work, and the user must be allowed (it would fail every timed request)
    deadline = time.monotonic() + 10.0
    while True:
        try:
            user_setup.client.encrypt(
                KeyId=rich_meta["KeyId"], Plaintext=b"x", EncryptionContext=ENCRYPTION_CONTEXT
            )
            break
        except Exception as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the IAM user cannot Encrypt with the realistic key: {exc}") from None
            time.sleep(0.2)

    cases = [
        Case(
            "baseline",
            server,
            Principal(account, admin_arn, admin["UserId"], "IAMUser", admin["UserName"], server.access_key),
            plain_meta["KeyId"],
            plain_meta["Arn"],
            default_policy,
            _policy_texts(iam, admin["UserName"]),
        ),
        Case(
            "realistic",
            user_target,
            Principal(account, user_arn, user["UserId"], "IAMUser", USER_NAME, key["AccessKeyId"]),
            rich_meta["KeyId"],
            rich_meta["Arn"],
            stored_policy,
            _policy_texts(iam, USER_NAME),
        ),
    ]
    for case, setup in zip(cases, (admin_setup, user_setup), strict=True):
        case.bodies = setup.bodies_for_key(ENCRYPT_WITH_CONTEXT, case.key_id, args.pool)
    _log(
        f"setup done: account {account}; baseline {admin_arn} on key {plain_meta['KeyId']};"
        f" realistic {user_arn} on key {rich_meta['KeyId']}; {args.pool} requests per pool"
    )
    return cases


# --------------------------------------------------------------------------- in-process authorize() timing


def _request_of(case: Case, region: str) -> tuple[Caller, Request, PolicyDocument, list[PolicyDocument]]:
    """The (caller, request, key policy, identity policies) the server's authorizer evaluates for one of
    the case's Encrypt requests, built with the server's own helpers."""
    now = time.time()
    ctx = RequestContext(case.principal, region, "authz-cost", source_ip="127.0.0.1")
    ctx.set_request("Encrypt", {"encryption_context": dict(ENCRYPTION_CONTEXT)})
    key = KeyRecord(
        region=region,
        key_id=case.key_id,
        account_id=case.principal.account_id,
        key_spec=KeySpec.SYMMETRIC_DEFAULT,
        key_usage=KeyUsage.ENCRYPT_DECRYPT,
        origin=Origin.AWS_KMS,
        key_state=KeyState.ENABLED,
        creation_date=now,
        policy=case.key_policy,
    )
    context = base_context(ctx, now)
    context.update(key_context(key, None))
    context["kms:ResourceAliases"] = []
    context.update(ctx.conditions)  # request_conditions(): kms:EncryptionAlgorithm, kms:EncryptionContext*
    request = Request(
        action="kms:Encrypt", resource=case.key_arn, resource_account=key.account_id, context=context
    )
    return (
        caller_of(case.principal),
        request,
        parse_policy(case.key_policy, kind="key"),
        [parse_policy(text, kind="identity") for text in case.identity_policies],
    )


def time_authorize(case: Case, region: str, iterations: int, rounds: int = 5) -> float:
    """Microseconds per ``authorize`` call (median of ``rounds`` rounds of ``iterations / rounds``)."""
    caller, request, key_policy, identity = _request_of(case, region)
    decision = authorize(caller, request, key_policy=key_policy, identity_policies=identity)
    if not decision.allowed:
        raise RuntimeError(f"{case.name}: authorize() denies the benchmark request: {decision.reason}")
    n = max(1, iterations // rounds)
    for _ in range(min(n, 2000)):  # warm the per-action statement index and the interpreter
        authorize(caller, request, key_policy=key_policy, identity_policies=identity)
    per_call = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            authorize(caller, request, key_policy=key_policy, identity_policies=identity)
        per_call.append((time.perf_counter_ns() - t0) / n / 1000)
    return statistics.median(per_call)


# --------------------------------------------------------------------------- run and report


def run(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="openkms-authz-bench-")))
        server = targets.start_openkms(stack, workdir, args.openkms_args, None, args.openkms_bin)
        _log(f"openkms: {server.endpoint} (started pid {server.pid})")
        cases = setup_cases(server, args)
        clients = loadgen.ClientPool(args.client_procs)
        stack.callback(clients.close)

        runs: dict[str, list[report.RunMetrics]] = {c.name: [] for c in cases}
        for rep in range(args.repeat):
            for case in cases:
                m = kms_load._measure(clients, case.target, OP, case.bodies, args)
                runs[case.name].append(m)
                err = f"  ERRORS {m.errors}" if m.errors else ""
                _log(
                    f"[{rep + 1}/{args.repeat}] {case.name:<9} {m.rps:9.1f} req/s"
                    f"  p50 {report.fmt(m.p50_ms, '7.2f')} ms  p99 {report.fmt(m.p99_ms, '7.2f')} ms"
                    f"  client cpu {m.client_cpu_pct:3.0f}%{err}"
                )
                time.sleep(args.pause)

        _log(f"timing authorize() in-process, {args.iterations} calls per case")
        micro = {c.name: time_authorize(c, args.region, args.iterations) for c in cases}
        summaries = [report.Summary("openkms", f"{OP}/{c.name}", runs[c.name]) for c in cases]
        return _output(args, server, cases, summaries, micro)


def _pct(value: float) -> str:
    return report.fmt(value, "+.1f", "%")


def _output(
    args: argparse.Namespace,
    server: targets.Target,
    cases: list[Case],
    summaries: list[report.Summary],
    micro: dict[str, float],
) -> int:
    base, real = summaries
    ratio = real.rps / base.rps if base.rps and not math.isnan(base.rps) else float("nan")
    cost_pct = (1 - ratio) * 100
    pair_ratios = [
        r.rps / b.rps if b.rps else float("nan") for b, r in zip(base.runs, real.runs, strict=True)
    ]
    valid = [x for x in pair_ratios if not math.isnan(x)]
    pair_median = statistics.median(valid) if valid else float("nan")
    spread = max(valid) - min(valid) if len(valid) > 1 else float("nan")
    p50_ratio = real.p50_ms / base.p50_ms if base.p50_ms else float("nan")
    p99_ratio = real.p99_ms / base.p99_ms if base.p99_ms else float("nan")
    budget_us = {s.op: 1e6 / s.rps if s.rps else float("nan") for s in summaries}
    real_budget = budget_us[real.op]
    cpu_us = real.server_cpu_pct / 100 * 1e6 / real.rps if real.rps else float("nan")
    delta_us = micro["realistic"] - micro["baseline"]

    human = sys.stderr if args.json == "-" else sys.stdout
    out: list[str] = []
    out.append(
        f"\nmedian of {args.repeat} interleaved run(s) per case: {args.seconds:g} s window after"
        f" {args.warmup:g} s warm-up, {args.connections} connections, {args.client_procs} client"
        f" process(es); Encrypt of {kms_ops.PLAINTEXT_BYTES} bytes with EncryptionContext"
        f" {json.dumps(ENCRYPTION_CONTEXT)}\n"
    )
    out.append(report.results_table(summaries))
    head = (
        f"{'baseline req/s':>14} {'realistic req/s':>15} {'ratio':>6} {'cost':>7}"
        f" {'p50 ratio':>9} {'p99 ratio':>9}  per-repeat ratios (median)"
    )
    out.append("\nrealistic / baseline (ratio < 1 and a positive cost: authorization slows Encrypt down)\n")
    out.append(head)
    out.append("-" * len(head))
    out.append(
        f"{report.fmt(base.rps, '14.1f')} {report.fmt(real.rps, '15.1f')} {report.fmt(ratio, '6.3f')}"
        f" {report.fmt(cost_pct, '6.1f', '%')} {report.fmt(p50_ratio, '9.3f')}"
        f" {report.fmt(p99_ratio, '9.3f')}"
        f"  {' '.join(report.fmt(x, '.3f') for x in pair_ratios)} ({report.fmt(pair_median, '.3f')})"
    )
    if spread > abs(1 - pair_median):
        out.append(
            f"!! the per-repeat ratios spread over {spread:.3f}, more than the difference measured:"
            " within the noise (other load on the machine? try more --repeat / longer --seconds)"
        )
    out.append(
        f"\nauthorize() in-process ({args.iterations} calls per case, median of 5 rounds;"
        f" Python {platform.python_version()})\n"
    )
    row_head = f"{'case':<10} {'us/call':>8} {'budget us':>10} {'of budget':>9}"
    out.append(row_head)
    out.append("-" * len(row_head))
    for s, case in zip(summaries, cases, strict=True):
        b = budget_us[s.op]
        out.append(
            f"{case.name:<10} {micro[case.name]:8.2f} {report.fmt(b, '10.1f')}"
            f" {report.fmt(micro[case.name] / b * 100, '8.2f', '%')}"
        )
    out.append(
        f"realistic - baseline: {delta_us:+.2f} us/call = {_pct(delta_us / real_budget * 100)} of the"
        f" realistic per-request budget (1e6 / {real.rps:.1f} req/s = {real_budget:.1f} us)"
    )
    if not math.isnan(cpu_us):
        out.append(
            f"server CPU per realistic request: {cpu_us:.1f} us ({real.server_cpu_pct:.0f}% of a core);"
            f" authorize() is {micro['realistic'] / cpu_us * 100:.2f}% of it"
        )
    errors = report.error_report(summaries)
    if errors:
        out.append(f"\n{errors}")
    print("\n".join(out), file=human, flush=True)

    if args.json:
        doc: dict[str, Any] = {
            "config": {
                "seconds": args.seconds,
                "warmup": args.warmup,
                "connections": args.connections,
                "client_procs": args.client_procs,
                "repeat": args.repeat,
                "pool": args.pool,
                "iterations": args.iterations,
                "region": args.region,
                "encryption_context": ENCRYPTION_CONTEXT,
                "python": platform.python_version(),
                "machine": platform.machine(),
            },
            "server": {"endpoint": server.endpoint, "command": server.command},
            "cases": {
                c.name: {
                    "caller": c.principal.arn,
                    "key_arn": c.key_arn,
                    "key_policy": c.key_policy,
                    "identity_policies": c.identity_policies,
                }
                for c in cases
            },
            "results": [s.to_json() for s in summaries],
            "comparison": {
                "baseline_rps": report._num(base.rps, 1),
                "realistic_rps": report._num(real.rps, 1),
                "rps_ratio": report._num(ratio, 4),
                "cost_pct": report._num(cost_pct, 2),
                "per_repeat_rps_ratios": [report._num(x, 4) for x in pair_ratios],
                "median_per_repeat_rps_ratio": report._num(pair_median, 4),
                "p50_ratio": report._num(p50_ratio, 3),
                "p99_ratio": report._num(p99_ratio, 3),
            },
            "authorize_us": {
                name: {
                    "per_call": report._num(us, 3),
                    "budget_us": report._num(budget_us[f"{OP}/{name}"], 2),
                    "pct_of_budget": report._num(us / budget_us[f"{OP}/{name}"] * 100, 3),
                }
                for name, us in micro.items()
            },
            "server_cpu_us_per_realistic_request": report._num(cpu_us, 2),
        }
        text = json.dumps(doc, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
            _log(f"JSON report written to {args.json}")
    return 1 if any(s.failed for s in summaries) else 0


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    signal.signal(signal.SIGTERM, kms_load._on_sigterm)  # unwinds the ExitStack: server and workers stop
    try:
        return run(args)
    except KeyboardInterrupt:
        _log("interrupted")
        return 130
    except Exception as exc:  # setup errors: server, IAM/KMS calls, sanity checks
        _log(f"error: {type(exc).__name__}: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
