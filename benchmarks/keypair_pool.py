"""Latency of GenerateDataKeyPair (RSA) and GetParametersForImport (its RSA wrapping key pair) with and
without the pre-generated key pair pool.

``kms_load.py`` measures closed-loop throughput: at saturation every request needs a fresh RSA key
whoever generates it, so a pool cannot raise the sustainable rate (it is bounded by key generation).
What the pool changes is the latency of requests that arrive while the service is not saturated.
This script measures that: it starts ``openkms serve`` twice on a fresh data dir (pool on with the
default sizes, then ``OPENKMS_KEYPAIR_POOL=0``), waits for the pool to fill, then sends requests one
at a time at a fixed pace below the generation rate and reports the latency percentiles.

Usage (from the repository root)::

    .venv/bin/python benchmarks/keypair_pool.py                       # RSA_2048 and RSA_4096
    .venv/bin/python benchmarks/keypair_pool.py --specs RSA_2048 --requests 40 --interval 0.25
    .venv/bin/python benchmarks/keypair_pool.py --operation GetParametersForImport --specs RSA_4096
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import boto3
from botocore.config import Config

import targets

# Default pace per spec: slower than the pool's refill, so that a pooled pair is normally ready.
INTERVALS = {"RSA_2048": 0.25, "RSA_3072": 1.0, "RSA_4096": 2.0}


def _measure(operation: str, spec: str, requests: int, interval: float, pool: bool) -> list[float]:
    saved = os.environ.get("OPENKMS_KEYPAIR_POOL")
    if pool:
        os.environ.pop("OPENKMS_KEYPAIR_POOL", None)
    else:
        os.environ["OPENKMS_KEYPAIR_POOL"] = "0"
    try:
        with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="openkms-pool-") as tmp:
            target = targets.start_openkms(stack, Path(tmp))
            kms = boto3.client(
                "kms",
                endpoint_url=target.endpoint,
                region_name="us-east-1",
                aws_access_key_id=target.access_key,
                aws_secret_access_key=target.secret_key,
                config=Config(retries={"max_attempts": 1}),
            )
            key = kms.create_key()["KeyMetadata"]["KeyId"]
            kms.generate_data_key(KeyId=key, KeySpec="AES_256")  # warm the key cache and connection
            external = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
            time.sleep(8.0 if spec == "RSA_4096" else 3.0)  # let the pool fill (no-op without it)
            latencies: list[float] = []
            for _ in range(requests):
                start = time.perf_counter()
                if operation == "GetParametersForImport":
                    kms.get_parameters_for_import(
                        KeyId=external, WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256", WrappingKeySpec=spec
                    )
                else:
                    kms.generate_data_key_pair(KeyId=key, KeyPairSpec=spec)
                elapsed = time.perf_counter() - start
                latencies.append(elapsed * 1000)
                time.sleep(max(0.0, interval - elapsed))
            return latencies
    finally:
        if saved is None:
            os.environ.pop("OPENKMS_KEYPAIR_POOL", None)
        else:
            os.environ["OPENKMS_KEYPAIR_POOL"] = saved


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--operation",
        choices=["GenerateDataKeyPair", "GetParametersForImport"],
        default="GenerateDataKeyPair",
    )
    p.add_argument("--specs", default="RSA_2048,RSA_4096")
    p.add_argument("--requests", type=int, default=20, help="requests per spec and mode")
    p.add_argument("--interval", type=float, help="seconds between request starts (default: per spec)")
    args = p.parse_args(argv)
    print(args.operation)
    print(f"{'spec':10} {'pool':5} {'n':>4} {'p50 ms':>9} {'p90 ms':>9} {'max ms':>9} {'mean ms':>9}")
    for spec in [s.strip() for s in args.specs.split(",") if s.strip()]:
        interval = args.interval if args.interval is not None else INTERVALS[spec]
        for pool in (True, False):
            lat = _measure(args.operation, spec, args.requests, interval, pool)
            mode = "on" if pool else "off"
            p50, p90, top, mean = _pct(lat, 0.5), _pct(lat, 0.9), max(lat), statistics.fmean(lat)
            row = f"{spec:10} {mode:5} {len(lat):4d} {p50:9.1f} {p90:9.1f} {top:9.1f} {mean:9.1f}"
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
