"""CloudTrail LookupEvents on a large trail: fills a database with N records (default 1,000,000)
directly (bulk inserts of ``audit_events`` rows and their ``audit_attributes``, as the audit writer
stores them), starts ``openkms serve`` on it, and measures lookups by ResourceName and by EventName
with boto3 (p50/p99 of the first page, 50 events, over ``--calls`` calls each; then the second page).

    .venv/bin/python benchmarks/lookup_events.py                      # SQLite in a temporary directory
    .venv/bin/python benchmarks/lookup_events.py --records 200000 --calls 100
    .venv/bin/python benchmarks/lookup_events.py --database-url postgresql://u:p@127.0.0.1/db  # empty db

The records belong to the benchmark's account in us-east-1, spread over the last 60 days: 2,000 keys
(about 500 records each), 20 event names, 20 users.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

BIN = Path(sys.executable).parent
REGION = "us-east-1"
NAMES = [
    "Decrypt", "Encrypt", "GenerateDataKey", "DescribeKey", "Sign", "Verify", "ReEncrypt", "GenerateMac",
    "ListKeys", "ListAliases", "CreateKey", "TagResource", "PutKeyPolicy", "GetKeyPolicy", "EnableKey",
    "DisableKey", "CreateAlias", "ScheduleKeyDeletion", "GetPublicKey", "GenerateRandom",
]  # fmt: skip
READ_ONLY = set(NAMES[:10]) | {"GetKeyPolicy", "GetPublicKey", "GenerateRandom"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rows(
    account: str, count: int, keys: list[str]
) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """(audit_events row, its audit_attributes rows) for ``count`` records, ids 1..count, oldest first."""
    rng = random.Random(7)
    now = time.time()
    start = now - 60 * 86400
    step = (now - 60 - start) / count
    users = [(f"user{n:02d}", f"AKIA{n:016d}") for n in range(20)]
    for i in range(1, count + 1):
        t = start + i * step
        name = NAMES[min(int(rng.expovariate(0.25)), len(NAMES) - 1)]
        arn = keys[rng.randrange(len(keys))]
        user, akid = users[rng.randrange(len(users))]
        event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        read_only = name in READ_ONLY
        record = {
            "eventVersion": "1.11",
            "userIdentity": {
                "type": "IAMUser",
                "principalId": "AIDA" + akid[4:],
                "arn": f"arn:aws:iam::{account}:user/{user}",
                "accountId": account,
                "accessKeyId": akid,
                "userName": user,
            },
            "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)),
            "eventSource": "kms.amazonaws.com",
            "eventName": name,
            "awsRegion": REGION,
            "sourceIPAddress": "10.0.0.1",
            "userAgent": "benchmark",
            "requestParameters": {"keyId": arn},
            "responseElements": None,
            "requestID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "eventID": event_id,
            "readOnly": read_only,
            "resources": [{"accountId": account, "type": "AWS::KMS::Key", "ARN": arn}],
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": account,
            "eventCategory": "Management",
        }
        event = (i, event_id, t, account, REGION, name, arn.rsplit("/", 1)[-1], record["userIdentity"]["arn"],
                 None, json.dumps(record, separators=(",", ":")))  # fmt: skip
        attributes = [
            (i, account, REGION, attr, value, t)
            for attr, value in (
                ("Username", user),
                ("AccessKeyId", akid),
                ("ReadOnly", "true" if read_only else "false"),
                ("EventSource", "kms.amazonaws.com"),
                ("ResourceType", "AWS::KMS::Key"),
                ("ResourceName", arn),
            )
        ]
        yield event, attributes


EVENT_COLUMNS = (
    "id, event_id, event_time, account_id, region, event_name, key_id, principal_arn, error_code, record"
)
ATTRIBUTE_COLUMNS = "audit_id, account_id, region, name, value, event_time"


def fill_sqlite(path: Path, account: str, count: int, keys: list[str]) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    events: list[tuple[Any, ...]] = []
    attributes: list[tuple[Any, ...]] = []

    def flush() -> None:
        conn.executemany(f"INSERT INTO audit_events ({EVENT_COLUMNS}) VALUES ({', '.join('?' * 10)})", events)
        conn.executemany(
            f"INSERT INTO audit_attributes ({ATTRIBUTE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", attributes
        )
        events.clear()
        attributes.clear()

    for event, attrs in rows(account, count, keys):
        events.append(event)
        attributes.extend(attrs)
        if len(events) >= 20_000:
            flush()
    flush()
    conn.commit()
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()


def fill_postgres(url: str, account: str, count: int, keys: list[str]) -> None:
    import psycopg

    with psycopg.connect(url) as conn:
        with conn.cursor() as cur:
            with cur.copy(f"COPY audit_events ({EVENT_COLUMNS}) FROM STDIN") as copy:
                for event, _ in rows(account, count, keys):
                    copy.write_row(event)
            with cur.copy(f"COPY audit_attributes ({ATTRIBUTE_COLUMNS}) FROM STDIN") as copy:
                for _, attrs in rows(account, count, keys):
                    for attr in attrs:
                        copy.write_row(attr)
            cur.execute("SELECT setval(pg_get_serial_sequence('audit_events', 'id'), %s)", (count + 1,))
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE audit_events")
        conn.execute("VACUUM ANALYZE audit_attributes")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(label: str, fn: Any, calls: int) -> dict[str, float]:
    times = []
    for n in range(calls):
        began = time.perf_counter()
        fn(n)
        times.append((time.perf_counter() - began) * 1000)
    figures = {"p50_ms": statistics.median(times), "p99_ms": percentile(times, 0.99), "max_ms": max(times)}
    print(f"{label:<44} p50 {figures['p50_ms']:7.2f} ms   p99 {figures['p99_ms']:7.2f} ms   "
          f"max {figures['max_ms']:7.2f} ms   ({calls} calls)")  # fmt: skip
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument(
        "--database-url", help="an empty PostgreSQL database (default: SQLite in the tmp dir)"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="openkms-lookup-bench-"))
    data_args = ["--data-dir", str(tmp)] + (
        ["--database-url", args.database_url] if args.database_url else []
    )
    proc: subprocess.Popen[bytes] | None = None
    try:
        out = subprocess.run(
            [str(BIN / "openkms"), "admin", "create-account", *data_args, "--json"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        creds = json.loads(out)
        account = creds["AccountId"]
        keys = [f"arn:aws:kms:{REGION}:{account}:key/{uuid.UUID(int=n, version=4)}" for n in range(2000)]
        began = time.perf_counter()
        if args.database_url:
            fill_postgres(args.database_url, account, args.records, keys)
        else:
            fill_sqlite(tmp / "openkms.db", account, args.records, keys)
        backend = "postgresql" if args.database_url else "sqlite"
        print(f"filled {args.records:,} records on {backend} in {time.perf_counter() - began:.1f} s")
        port = free_port()
        log = open(tmp / "server.log", "ab")  # noqa: SIM115 - the child's log
        proc = subprocess.Popen(
            [str(BIN / "openkms"), "serve", "--port", str(port), *data_args],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.time() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise SystemExit((tmp / "server.log").read_text()) from None
                time.sleep(0.1)
        trail = boto3.client(
            "cloudtrail",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name=REGION,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            config=Config(retries={"max_attempts": 1}),
        )
        rng = random.Random(11)
        key_picks = [rng.choice(keys) for _ in range(args.calls)]
        name_picks = [rng.choice(NAMES) for _ in range(args.calls)]

        def by(attribute: str, value: str, **extra: Any) -> dict[str, Any]:
            result: dict[str, Any] = trail.lookup_events(
                LookupAttributes=[{"AttributeKey": attribute, "AttributeValue": value}], **extra
            )
            return result

        for n in range(10):  # warm-up: connections, credential cache, compiled codecs
            by("ResourceName", keys[n])
        first = by("ResourceName", keys[0])
        if not first["Events"]:
            raise SystemExit("the trail was not filled")
        measure(
            "LookupEvents ResourceName (first page, 50)",
            lambda n: by("ResourceName", key_picks[n]),
            args.calls,
        )
        measure(
            "LookupEvents EventName (first page, 50)", lambda n: by("EventName", name_picks[n]), args.calls
        )
        tokens = [by("ResourceName", k).get("NextToken") for k in key_picks[:50]]
        measure(
            "LookupEvents ResourceName (second page)",
            lambda n: by(
                "ResourceName", key_picks[n % 50], **({"NextToken": tokens[n % 50]} if tokens[n % 50] else {})
            ),
            args.calls,
        )
        measure("LookupEvents, no attribute (first page)", lambda n: trail.lookup_events(), args.calls)
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
