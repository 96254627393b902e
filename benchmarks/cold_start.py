"""Cold start: seconds from spawning the server to its first answered KMS call, openkms against moto.

openkms starts on a data directory made once before the timed runs (an account and ``--keys`` keys,
so the start opens an existing database, as a restart does); each run spawns ``openkms serve`` and
polls ``DescribeKey`` on one of those keys until it answers 200. moto's ``moto_server`` is timed the
same way to its first ``ListKeys``. Prints each run, the medians and their ratio.

    .venv/bin/python benchmarks/cold_start.py --repeat 7 --keys 100 [--cpu 0]

``--cpu N`` pins each server to that core (``taskset -c N``); run the script itself on the other.

The servers may write their bytecode caches (``PYTHONDONTWRITEBYTECODE`` is dropped from their
environment), as an installed package has them: the untimed set-up start writes them, so the timed
starts measure a restart, not a first start that compiles every module. ``--no-bytecode`` measures
that first start instead (each start compiles the sources of an editable install).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

import targets


def client(port: int, access: str, secret: str) -> Any:
    return boto3.client(
        "kms",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}, connect_timeout=0.5, read_timeout=5),
    )


def spawn(stack: contextlib.ExitStack, cmd: list[str], cpu: int | None, log: Path) -> subprocess.Popen[bytes]:
    """``cmd`` (pinned to ``cpu``), stopped when ``stack`` closes."""
    prefix = ["taskset", "-c", str(cpu)] if cpu is not None else []
    return targets._spawn(stack, [*prefix, *cmd], log)


def time_to_first_answer(
    cmd: list[str], cpu: int | None, log: Path, call: Any, timeout: float = 30.0
) -> tuple[float, float]:
    """Seconds from spawning ``cmd`` to the first call that succeeds, and the CPU seconds the server
    (with its children) had used by then: the second is what the start costs, whatever else the
    machine is doing; the first is what a client waits."""
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        proc = spawn(stack, cmd, cpu, log)
        while time.perf_counter() - started < timeout:
            if proc.poll() is not None:
                raise SystemExit(f"server exited; see {log}")
            try:
                call()
                elapsed = time.perf_counter() - started
                return elapsed, targets.process_tree_cpu(proc.pid) or 0.0
            except Exception:  # not listening yet, or not ready: poll again
                time.sleep(0.01)
        raise SystemExit(f"no answer in {timeout} s; see {log}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--repeat", type=int, default=5, help="timed starts of each server (default 5)")
    p.add_argument("--keys", type=int, default=100, help="keys in openkms's data directory (default 100)")
    p.add_argument("--cpu", type=int, default=None, help="pin the servers to this core")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--no-bytecode", action="store_true", help="keep PYTHONDONTWRITEBYTECODE (compile on every start)"
    )
    args = p.parse_args(argv)
    if not args.no_bytecode:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

    work = Path(tempfile.mkdtemp(prefix="openkms-cold-"))
    try:
        data = work / "data"
        made = subprocess.run(
            [str(targets._bin("openkms")), "admin", "create-account", "--data-dir", str(data), "--json"],
            check=True,
            capture_output=True,
            text=True,
        )
        account = json.loads(made.stdout)
        access, secret = account["AccessKeyId"], account["SecretAccessKey"]
        port = targets.free_port()
        serve = [
            str(targets._bin("openkms")),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(data),
        ]
        with contextlib.ExitStack() as stack:
            spawn(stack, serve, args.cpu, work / "setup.log")
            kms = client(port, access, secret)
            deadline = time.time() + 30
            while True:
                try:
                    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
                    break
                except Exception:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.05)
            for _ in range(args.keys - 1):
                kms.create_key()

        results: dict[str, list[float]] = {"openkms": [], "moto": []}
        cpu_used: dict[str, list[float]] = {"openkms": [], "moto": []}
        for _ in range(args.repeat):
            port = targets.free_port()
            serve[serve.index("--port") + 1] = str(port)
            kms = client(port, access, secret)
            wall, cpu = time_to_first_answer(
                serve, args.cpu, work / "openkms.log", lambda kms=kms: kms.describe_key(KeyId=key_id)
            )
            results["openkms"].append(wall)
            cpu_used["openkms"].append(cpu)
            port = targets.free_port()
            moto = client(port, "x", "x")
            wall, cpu = time_to_first_answer(
                [str(targets._bin("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                args.cpu,
                work / "moto.log",
                moto.list_keys,
            )
            results["moto"].append(wall)
            cpu_used["moto"].append(cpu)
        medians = {name: statistics.median(times) for name, times in results.items()}
        cpu_medians = {name: statistics.median(times) for name, times in cpu_used.items()}
        if args.json:
            print(
                json.dumps(
                    {
                        "runs": results,
                        "median_s": medians,
                        "cpu_runs": cpu_used,
                        "cpu_median_s": cpu_medians,
                        "keys": args.keys,
                    }
                )
            )
        else:
            for name, times in results.items():
                runs = ", ".join(f"{t:.2f}" for t in times)
                print(f"{name:8} median {medians[name]:.2f} s   CPU {cpu_medians[name]:.2f} s   runs: {runs}")
            print(f"ratio openkms/moto: {medians['openkms'] / medians['moto']:.2f}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
