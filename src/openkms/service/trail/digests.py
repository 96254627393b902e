"""Signed digests and retention markers of the audit chains (CloudTrail's log file integrity design).

A *digest* of an (account, Region) chain states, signed SHA256withRSA with the Region's key
(:mod:`openkms.service.trail.signing`): the records ``firstSequenceNumber``..``lastSequenceNumber``
exist and the last one's hash is ``lastRecordHash`` (which, the records being chained, fixes every
record before it), the digest's start and end time, and ``previousDigestSignature``, the signature
of the chain's previous digest or marker: the digests form a chain too, numbered from 1
(``digestNumber``). The chain head row keeps the newest digest's number and signature, so that
deleting the newest digest is seen as well. The signed bytes are the digest's ``body`` (compact
key-sorted JSON) as stored; ``signature`` is its hex.

A *retention marker* is a digest of kind ``retention`` in the same numbered chain: records up to
``lastSequenceNumber`` (hash ``lastRecordHash``) were pruned on purpose, only records a digest already
covered. :func:`prune_before` writes it and deletes them in one transaction. The continuous export
passes ``exported_until(account, region)`` (the time up to which a chain's records were exported):
no record newer than that is pruned.

:func:`make_digests` is run by the server for every chain whose last digest is
``OPENKMS_AUDIT_DIGEST_INTERVAL`` seconds old (hourly by default; checked every minute, or every
interval when shorter), on clean shutdown, and by ``openkms audit digest``; a chain with no new record
gets none. Two nodes making one at once serialize on the chain head row (the second finds nothing
new).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from openkms.crypto.envelope import RootKey
from openkms.service.trail import signing
from openkms.storage.store import Store

log = logging.getLogger("openkms.audit")

ExportedUntil = Callable[[str, str], float | None]


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def body_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Made:
    """A digest or marker written: its chain, kind, number and record range."""

    account_id: str
    region: str
    kind: str
    number: int
    first_seq: int
    last_seq: int


def _signed_row(
    sign: signing.Signer,
    head: dict[str, Any],
    *,
    kind: str,
    start: float,
    end: float,
    first_seq: int,
    last_seq: int,
    last_hash: str,
    extra: dict[str, Any],
) -> dict[str, Any]:
    number = int(head["digests"]) + 1
    body = {
        "kind": kind,
        "awsAccountId": head["account_id"],
        "awsRegion": head["region"],
        "digestNumber": number,
        "digestStartTime": iso(start),
        "digestEndTime": iso(end),
        "firstSequenceNumber": first_seq,
        "lastSequenceNumber": last_seq,
        "lastRecordHash": last_hash,
        "hashAlgorithm": "SHA-256",
        "previousDigestSignature": head["digest_signature"],
        "digestPublicKeyFingerprint": sign.fingerprint,
        "digestSignatureAlgorithm": sign.algorithm,
        **extra,
    }
    text = body_bytes(body)
    return {
        "account_id": head["account_id"],
        "region": head["region"],
        "kind": kind,
        "number": number,
        "start_time": start,
        "end_time": end,
        "first_seq": first_seq,
        "last_seq": last_seq,
        "last_hash": last_hash,
        "fingerprint": sign.fingerprint,
        "body": text.decode(),
        "signature": sign.sign(text).hex(),
    }


def make_digests(
    store: Store,
    root: RootKey,
    now: float,
    account_id: str | None = None,
    region: str | None = None,
    *,
    every: float | None = None,
) -> list[Made]:
    """Sign a digest of every chain (of ``account_id``/``region``) with records no digest covers yet;
    with ``every``, only of the chains whose last digest (or, never digested, whose first record) is at
    least ``every`` seconds old."""
    with store.read() as tx:
        heads = [
            h
            for h in tx.chain_heads()
            if h["seq"] > h["digested_seq"]
            and (account_id is None or h["account_id"] == account_id)
            and (region is None or h["region"] == region)
            and (every is None or now - _since(tx, h) >= every)
        ]
    made = []
    for seen in heads:
        sign = signing.signer(store, root, seen["region"], now)
        with store.write() as tx:
            head = tx.chain_head(seen["account_id"], seen["region"], lock=True)
            if head is None or head["seq"] <= head["digested_seq"]:
                continue  # another node just made it
            first = int(head["digested_seq"]) + 1
            start = head["digested_at"]
            if start is None:
                record = tx.chain_record(head["account_id"], head["region"], first)
                start = record["event_time"] if record is not None else head["updated_at"]
            row = _signed_row(
                sign,
                head,
                kind="digest",
                start=float(start),
                end=now,
                first_seq=first,
                last_seq=int(head["seq"]),
                last_hash=head["hash"],
                extra={"recordCount": int(head["seq"]) - first + 1},
            )
            tx.insert_digest(row)
            tx.set_chain_digest(
                head["account_id"],
                head["region"],
                number=row["number"],
                signature=row["signature"],
                digested_seq=int(head["seq"]),
                at=now,
            )
        made.append(Made(row["account_id"], row["region"], "digest", row["number"], first, row["last_seq"]))
    return made


def _since(tx: Any, head: dict[str, Any]) -> float:
    """When the chain's undigested records began: its last digest, else its first record."""
    if head["digested_at"] is not None:
        return float(head["digested_at"])
    record = tx.chain_record(head["account_id"], head["region"], int(head["digested_seq"]) + 1)
    return float(record["event_time"]) if record is not None else float(head["updated_at"])


def prune_before(
    store: Store, root: RootKey, before: float, now: float, exported_until: ExportedUntil | None = None
) -> list[Made]:
    """Prune, in every chain, the oldest records older than ``before`` that a digest covers (and, with
    ``exported_until``, that were exported), each chain's pruned range named by a signed retention
    marker written in the same transaction."""
    with store.read() as tx:
        heads = tx.chain_heads()
    made = []
    for seen in heads:
        cutoff = before
        if exported_until is not None:
            exported = exported_until(seen["account_id"], seen["region"])
            cutoff = min(cutoff, exported if exported is not None else float("-inf"))
        sign = signing.signer(store, root, seen["region"], now)
        with store.write() as tx:
            head = tx.chain_head(seen["account_id"], seen["region"], lock=True)
            if head is None:
                continue
            key = (head["account_id"], head["region"])
            through = tx.last_seq_before(*key, cutoff, int(head["digested_seq"]))
            oldest = tx.chain_records(*key, 0, 1)
            if not oldest or oldest[0]["seq"] > through:
                continue
            last = tx.chain_record(*key, through)
            if last is None:
                continue
            row = _signed_row(
                sign,
                head,
                kind="retention",
                start=float(oldest[0]["event_time"]),
                end=float(last["event_time"]),
                first_seq=int(oldest[0]["seq"]),
                last_seq=through,
                last_hash=last["hash"],
                extra={"prunedBefore": iso(cutoff), "prunedAt": iso(now)},
            )
            tx.insert_digest(row)
            tx.set_chain_digest(
                *key,
                number=row["number"],
                signature=row["signature"],
                digested_seq=int(head["digested_seq"]),
                at=head["digested_at"] if head["digested_at"] is not None else now,
            )
            count = tx.prune_chain(*key, through)
        log.info("audit retention: pruned %d records of %s/%s through seq %d", count, *key, through)
        made.append(Made(*key, "retention", row["number"], row["first_seq"], through))
    return made
