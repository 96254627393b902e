"""Server latency of requests signed with an access key id that has no credentials.

Starts ``openkms serve`` (SQLite, fresh data dir) and sends signed ListKeys requests one at a time over one
keep-alive connection, each refused with UnrecognizedClientException: with the same unknown id every time
(answered from the credential cache's negative entries after the first) and with a new random id every
time (each needs a database read). Only the time from sending to the answer is measured (the client's
signing is not), and the first ``--warmup`` requests are left out.

Usage (from the repository root; ``PYTHONPATH`` chooses the source tree the server runs)::

    .venv/bin/python benchmarks/unknown_access_key.py --requests 3000
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import targets

HEADERS = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.ListKeys"}


def _measure(port: int, requests: int, warmup: int, next_id: Callable[[], str]) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies: list[float] = []
    try:
        for i in range(requests):
            request = AWSRequest(method="POST", url=f"http://127.0.0.1:{port}/", data=b"{}", headers=HEADERS)
            SigV4Auth(Credentials(next_id(), "s" * 40), "kms", "us-east-1").add_auth(request)
            headers = dict(request.headers.items())
            started = time.perf_counter()
            conn.request("POST", "/", body=b"{}", headers=headers)
            body = conn.getresponse().read()
            elapsed = time.perf_counter() - started
            if b"UnrecognizedClientException" not in body:
                raise RuntimeError(f"unexpected answer: {body[:200]!r}")
            if i >= warmup:
                latencies.append(elapsed)
    finally:
        conn.close()
    return latencies


def _report(label: str, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    print(
        f"{label}: n={len(ordered)} median {statistics.median(ordered) * 1e3:.3f} ms, "
        f"mean {statistics.mean(ordered) * 1e3:.3f} ms, p90 {ordered[int(len(ordered) * 0.9)] * 1e3:.3f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    same = "AKIA" + secrets.token_hex(8).upper()
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="openkms-unknown-") as tmp:
        target = targets.start_openkms(stack, Path(tmp))
        _report("the same unknown id", _measure(target.port, args.requests, args.warmup, lambda: same))
        _report(
            "a new random id each time",
            _measure(target.port, args.requests, args.warmup, lambda: "AKIA" + secrets.token_hex(8).upper()),
        )


if __name__ == "__main__":
    main()
