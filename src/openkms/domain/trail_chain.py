"""The hash chain of the audit trail: what a record's hash covers and how records link.

Records form one chain per (account, Region) (``chain_key``; a record without an account or Region
is in the chain of ``''``), in commit order: record ``seq`` (1, 2, …) stores ``prev_hash`` (its
predecessor's hash; :data:`GENESIS` for the first) and ``hash = SHA-256(prev_hash ‖ canonical bytes)``,
where the canonical bytes are the compact, key-sorted JSON (``json.dumps(…, sort_keys=True,
separators=(",", ":"), ensure_ascii=False)``, UTF-8) of its sequence number and every stored column but
the record (its time as a float), a NUL byte (which that JSON never holds), and the record's JSON text
as stored, UTF-8. Hashes are lowercase hex.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

GENESIS = "0" * 64
COLUMNS = (
    "event_id",
    "event_time",
    "account_id",
    "region",
    "event_name",
    "key_id",
    "principal_arn",
    "error_code",
    "record",
)


def chain_key(row: Mapping[str, Any]) -> tuple[str, str]:
    return (row.get("account_id") or "", row.get("region") or "")


def canonical(seq: int, row: Mapping[str, Any]) -> bytes:
    doc = {name: row.get(name) for name in COLUMNS if name != "record"}
    doc["seq"] = seq
    doc["event_time"] = float(row["event_time"])
    head = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return head + b"\x00" + str(row["record"]).encode()


def record_hash(prev_hash: str, seq: int, row: Mapping[str, Any]) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical(seq, row)).hexdigest()
