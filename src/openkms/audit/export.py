"""The audit trail as CloudTrail log files and signed digest files in a directory laid out as CloudTrail's
S3 bucket (the layout and formats: :mod:`openkms.audit.cloudtrail_files`).

Continuous export (:class:`ContinuousExport`, a job of ``openkms serve --audit-export-dir``): every
interval, for each account and Region, the rows after its cursor (the last row id delivered, kept in
the database) become one log file, and every digest interval a digest lists the files written since
the previous one. Exactly once, across restarts and crashes:

1. the next range (cursor, last id] and the time naming its file are *planned* in the database
   before the file is written; the file's name is a function of the plan alone;
2. the file is written atomically (a temporary file in the same directory, fsync, rename, fsync of the
   directory);
3. the cursor moves to the plan's last id, compare-and-set on the plan, in the transaction that records
   the file as awaiting its digest.

A crash between 1 and 3 leaves the plan: the next run writes the same rows to the same name (the
same bytes: gzip without a time) and finishes it. Digests follow the same three steps (planned end
time, the files it lists fixed in the same transaction; SHA256withRSA signatures are deterministic).
Only committed rows are exported (``audit_horizon``): a row whose id is lower than one already exported
cannot appear later.

Several processes on one database: the one holding the lease (a row of ``audit_export_lease``, renewed
every run, taken over when it expires) exports; the others skip. Because every step is planned and
compared-and-set, even two exporters overlapping while a lease changes hands write the same files
once each. Give every process the same directory (shared storage), or the flag to one of them.

The one-off export (:func:`export_range`, ``openkms audit export``) writes the rows of a time range,
one log file per five minutes of event time per account and Region, and one digest per account and
Region starting its own chain; it reads the database and changes nothing in it.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from openkms.audit import cloudtrail_files as ct
from openkms.storage.store import Store
from openkms.storage.tx_audit_export import ExportedFile, ExportState

log = logging.getLogger("openkms.audit.export")

MAX_RECORDS = 10_000  # records in one log file at most (a longer backlog is several files)
BUCKET_SECONDS = 300  # the one-off export's log files: five minutes of event time each


def write_atomically(path: Path, data: bytes) -> None:
    """``path`` holds ``data`` entirely or is as it was: temporary file, fsync, rename, fsync of the
    directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_log_file(
    out_dir: Path, account: str, region: str, at: float, rows: Sequence[tuple[int, float, str]]
) -> ExportedFile:
    """The log file of ``rows`` ((id, event time, record), oldest first), named from ``at`` and the ids."""
    body = ct.log_body([record for _, _, record in rows])
    first, last = rows[0][0], rows[-1][0]
    s3_object = ct.log_object(account, region, at, ct.unique_name(account, region, first, last))
    write_atomically(out_dir / s3_object, ct.gzipped(body))
    times = [when for _, when, _ in rows]
    return ExportedFile(s3_object, ct.sha256_hex(body), min(times), max(times), first, last, len(rows))


def write_digest(
    out_dir: Path,
    signer: ct.DigestSigner,
    account: str,
    region: str,
    start: float,
    end: float,
    files: Sequence[ExportedFile],
    previous: ct.PreviousDigest | None,
) -> ct.Digest:
    entries = [ct.LogFileEntry(f.s3_object, f.hash_value, f.oldest_event, f.newest_event) for f in files]
    digest = ct.make_digest(signer, account, region, start, end, entries, previous)
    path = out_dir / digest.s3_object
    write_atomically(path.with_name(path.name + ".sig"), digest.signature.encode() + b"\n")
    write_atomically(path, ct.gzipped(digest.body))
    return digest


@dataclass
class ExportCounts:
    log_files: int = 0
    records: int = 0
    digests: int = 0


class ContinuousExport:
    """The export job of one server process. ``signer(region)`` gives the Region's digest signing key
    (None while it cannot: the digest waits, its files stay listed for the next)."""

    def __init__(
        self,
        store: Store,
        out_dir: Path,
        signer: Callable[[str], ct.DigestSigner | None],
        now: Callable[[], float],
        digest_interval: float,
        lease_seconds: float,
        margin: float = 60.0,
    ) -> None:
        self.store = store
        self.out_dir = out_dir
        self._signer = signer
        self._now = now
        self.digest_interval = digest_interval
        self.lease_seconds = lease_seconds
        self.margin = margin
        self.holder = secrets.token_hex(16)
        self.counts = ExportCounts()

    def run(self, final: bool = False) -> bool:
        """One export run (False: another process holds the lease). ``final`` (a clean shutdown) also
        writes a digest for every pair with files awaiting one, and gives the lease up."""
        now = self._now()
        with self.store.write() as tx:
            scanned = tx.take_export_lease(self.holder, now, self.lease_seconds)
        if scanned is None:
            return False
        with self.store.write() as tx:
            horizon = tx.audit_horizon()
        if horizon > scanned:
            with self.store.write() as tx:
                for account, region in tx.audit_pairs(scanned, horizon):
                    tx.add_export_state(account, region, scanned, now)
                tx.set_export_scanned(horizon)
        with self.store.read() as tx:
            states = tx.export_states()
        for state in states:
            self._deliver(state, horizon)
        for state in states:
            self._digest(state.account_id, state.region, final)
        if final:
            with self.store.write() as tx:
                tx.release_export_lease(self.holder)
        return True

    def exported_until(self, account: str, region: str) -> float | None:
        """The time before which every record of the pair is in a log file (retention prunes nothing
        newer), less ``margin`` seconds (a minute) for a call that started before a record already
        exported but is stored after it."""
        now = self._now()
        with self.store.read() as tx:
            known, oldest = tx.oldest_unexported(account, region)
        if not known:
            return None
        return min(now, oldest if oldest is not None else now) - self.margin

    def _deliver(self, state: ExportState, horizon: int) -> None:
        account, region = state.account_id, state.region
        while True:
            with self.store.write() as tx:
                current = tx.export_state(account, region)
                if current is None:
                    return
                if current.pending_id is None:
                    last = tx.audit_range_last_id(account, region, current.exported_id, horizon, MAX_RECORDS)
                    if last is None:
                        tx.skip_export(account, region, horizon)
                        return
                    tx.plan_export(account, region, last, float(int(self._now())))
                    current = tx.export_state(account, region)
                    if current is None or current.pending_id is None:
                        return
            pending, at = current.pending_id, current.pending_at or 0.0
            with self.store.read() as tx:
                rows = tx.audit_range(account, region, current.exported_id, pending)
            if not rows:  # planned rows gone (never: a plan covers committed rows only)
                log.error("audit export: the planned rows of %s/%s are gone", account, region)
                return
            file = write_log_file(self.out_dir, account, region, at, rows)
            with self.store.write() as tx:
                if tx.finish_export(account, region, pending, file):
                    self.counts.log_files += 1
                    self.counts.records += file.records
            if pending >= horizon:
                return

    def _digest(self, account: str, region: str, final: bool) -> None:
        with self.store.read() as tx:
            state = tx.export_state(account, region)
        if state is None:
            return
        now = float(int(self._now()))
        if state.digest_pending_end is None:
            since = state.digest_end if state.digest_end is not None else state.created_at
            last = state.digest_end or 0.0
            if now <= last:  # one digest a second at most: its name is its end time
                if not final:
                    return
                # A clean shutdown in the second of the last digest waits for the next (a second at
                # most), so the files written since are listed before the process ends.
                time.sleep(min(1.0, max(0.0, last + 1.0 - self._now())))
                now = float(int(self._now()))
                if now <= last:
                    return
            if now - since < self.digest_interval:
                if not final:
                    return
                with self.store.read() as tx:
                    if not tx.digest_files(account, region, None):
                        return  # a clean shutdown digests the files written, not an empty hour
        signer = self._signer(region)
        if signer is None:
            return
        with self.store.write() as tx:
            current = tx.export_state(account, region)
            if current is None:
                return
            if current.digest_pending_end is None:
                tx.plan_digest(account, region, now)
                current = tx.export_state(account, region)
                if current is None or current.digest_pending_end is None:
                    return
            end = current.digest_pending_end
            files = tx.digest_files(account, region, end)
        start = current.digest_end if current.digest_end is not None else current.created_at
        previous = None
        if current.digest_object and current.digest_hash and current.digest_signature:
            previous = ct.PreviousDigest(current.digest_object, current.digest_hash, current.digest_signature)
        digest = write_digest(self.out_dir, signer, account, region, start, end, files, previous)
        with self.store.write() as tx:
            if tx.finish_digest(account, region, end, digest.s3_object, digest.signature, digest.hash_value):
                self.counts.digests += 1


def export_range(
    store: Store,
    out_dir: Path,
    signer: Callable[[str], ct.DigestSigner],
    start: float | None,
    end: float | None,
    now: float,
) -> ExportCounts:
    """Write the records whose event time is in [start, end] (the one-off export)."""
    counts = ExportCounts()
    with store.read() as tx:
        rows = tx.audit_time_range(start, end)
    groups: dict[tuple[str, str], list[tuple[int, float, str]]] = {}
    for account, region, row_id, when, record in rows:
        groups.setdefault((account, region), []).append((row_id, when, record))
    for (account, region), items in groups.items():
        files: list[ExportedFile] = []
        chunk: list[tuple[int, float, str]] = []
        bucket: int | None = None
        for item in items:
            item_bucket = int(item[1]) // BUCKET_SECONDS
            if chunk and (item_bucket != bucket or len(chunk) >= MAX_RECORDS):
                files.append(_chunk_file(out_dir, account, region, chunk))
                chunk = []
            bucket = item_bucket
            chunk.append(item)
        if chunk:
            files.append(_chunk_file(out_dir, account, region, chunk))
        counts.log_files += len(files)
        counts.records += len(items)
        first = start if start is not None else min(f.oldest_event for f in files)
        last = float(int(end if end is not None and end < now else now))
        write_digest(out_dir, signer(region), account, region, first, last, files, None)
        counts.digests += 1
    return counts


def _chunk_file(
    out_dir: Path, account: str, region: str, chunk: list[tuple[int, float, str]]
) -> ExportedFile:
    # Named after the end of its five minutes of event time, as if delivered then.
    at = (int(max(when for _, when, _ in chunk)) // BUCKET_SECONDS + 1) * BUCKET_SECONDS
    return write_log_file(out_dir, account, region, float(at), chunk)
