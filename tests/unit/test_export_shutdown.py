"""The continuous audit export's clean shutdown (audit/export.py) on a real SQLite store: the final run
lists every log file in a digest, even when it falls in the second of the previous digest (a digest is
named by its end time, so two cannot end in one second)."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

from openkms.audit.export import ContinuousExport
from openkms.audit.writer import AuditWriter
from openkms.crypto.envelope import Keyring, RootKey
from openkms.service.trail import signing
from openkms.storage.store import Store

from .test_audit_trail import key, record, trail_rows

A = "111111111111"


class Clock:
    """Wall time moving with real time (the final run waits for the next second), from a settable
    start."""

    def __init__(self, start: float) -> None:
        self.set(start)

    def set(self, start: float) -> None:
        self.start, self.real = start, time.monotonic()

    def now(self) -> float:
        return self.start + time.monotonic() - self.real


def store_calls(store: Store, n: int, when: float) -> None:
    writer = AuditWriter(store, interval=0.01)
    writer.start()
    try:
        for i in range(n):
            rows = trail_rows(record([key(A, f"k{i}")], caller=A), when, f"k{i}")
            done = writer.submit(rows, durable=True)
            assert done is not None
            done.result(timeout=10)
    finally:
        writer.close()


def listed_in_digests(out: Path) -> set[str]:
    listed: set[str] = set()
    for path in out.rglob("*_CloudTrail-Digest_*.json.gz"):
        document = json.loads(gzip.decompress(path.read_bytes()))
        listed |= {entry["s3Object"] for entry in document["logFiles"]}
    return listed


def log_files(out: Path) -> set[str]:
    return {
        str(p.relative_to(out))
        for p in out.rglob("*.json.gz")
        if "/CloudTrail/" in str(p) and "CloudTrail-Digest" not in p.name
    }


def test_a_final_run_in_the_second_of_the_last_digest_still_lists_its_files(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    out = tmp_path / "files"
    signer = signing.signer(store, RootKey.from_keyring(Keyring.new()), "us-east-1", time.time())
    second = float(int(time.time()))
    clock = Clock(second - 5.0)
    export = ContinuousExport(
        store, out, lambda region: signer, clock.now, digest_interval=1.0, lease_seconds=60
    )
    try:
        store_calls(store, 2, clock.now())
        assert export.run()  # the first file; the pair's digest interval starts
        first = log_files(out)
        assert len(first) == 1 and not listed_in_digests(out)
        clock.set(second + 0.05)
        assert export.run()  # the interval is over: a digest ending at ``second`` lists the file
        assert listed_in_digests(out) == first
        store_calls(store, 3, clock.now())
        assert export.run(final=True)  # in the same second: it waits for the next to name its digest
        assert clock.now() >= second + 1.0
        assert len(log_files(out)) == 2
        assert listed_in_digests(out) == log_files(out)
    finally:
        store.close()
