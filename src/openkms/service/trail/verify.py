"""``openkms audit verify``: check every audit chain and its signed digests, and say what is wrong.

Only public key material is used (the :class:`~openkms.service.trail.signing.PublicKeyInfo` list the
caller passes). Problems found, each with the chain, seq numbers, record ids and event ids or digest
numbers:

``modified``   a record's hash does not match its content (or its ``prev_hash`` does not name its
               predecessor);
``rewritten``  a record's hash is not the one a signed digest names for its seq (the records before it
               were rewritten with fresh hashes);
``deleted``    seq numbers missing (between two records, or after the last one up to the chain head);
``inserted``   a record that is not in the chain: no seq, a second record with a taken seq, or a seq
               past the chain head;
``reordered``  records whose commit order (id) disagrees with their chain order (seq), or two records
               whose contents were exchanged;
``digest-deleted`` digest numbers missing (between two digests, or the newest ones the head names);
``digest-modified`` a digest whose signature does not verify or whose stored columns differ from its
               signed body; ``digest-chain-broken`` a digest whose previousDigestSignature is not its
               predecessor's signature; ``digest-unknown-key`` signed by a key not among the public
               keys; ``digest-inserted`` a second digest with a taken number.

Records pruned by retention are not problems: a valid retention marker names the last pruned record
and its hash, where the remaining chain resumes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from openkms.domain.trail_chain import GENESIS, record_hash
from openkms.service.trail import signing
from openkms.storage.store import Store

BATCH = 2000
MAX_LISTED = 100


@dataclass
class Problem:
    kind: str
    account_id: str
    region: str
    detail: str
    seqs: list[int] = field(default_factory=list)
    first_seq: int | None = None
    last_seq: int | None = None
    record_ids: list[int] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    digest_numbers: list[int] = field(default_factory=list)
    digest_ids: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": self.kind, "accountId": self.account_id, "region": self.region}
        if self.first_seq is not None:
            doc["firstSeq"], doc["lastSeq"] = self.first_seq, self.last_seq
        for name, value in (
            ("seqs", self.seqs),
            ("recordIds", self.record_ids),
            ("eventIds", self.event_ids),
            ("digestNumbers", self.digest_numbers),
            ("digestIds", self.digest_ids),
        ):
            if value:
                doc[name] = value[:MAX_LISTED]
        doc["detail"] = self.detail
        return doc


@dataclass
class ChainSummary:
    account_id: str
    region: str
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    head_seq: int = 0
    digests: int = 0
    retention_markers: int = 0
    pruned_through: int = 0
    undigested: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "accountId": self.account_id,
            "region": self.region,
            "recordsChecked": self.records,
            "firstSeq": self.first_seq,
            "lastSeq": self.last_seq,
            "headSeq": self.head_seq,
            "digestsChecked": self.digests,
            "retentionMarkers": self.retention_markers,
            "prunedThroughSeq": self.pruned_through,
            "recordsNotYetDigested": self.undigested,
        }


@dataclass
class Report:
    chains: list[ChainSummary] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "chains": [c.to_json() for c in self.chains],
            "problems": [p.to_json() for p in self.problems],
        }


def verify(
    store: Store,
    keys: list[signing.PublicKeyInfo],
    *,
    account_id: str | None = None,
    region: str | None = None,
    start: float | None = None,
    end: float | None = None,
) -> Report:
    report = Report()
    with store.read() as tx:
        heads = {(h["account_id"], h["region"]): h for h in tx.chain_heads()}
        chains = sorted(set(heads) | set(tx.digest_chains()))
    by_fingerprint = {k.fingerprint: k for k in keys}
    for key in chains:
        if (account_id is not None and key[0] != account_id) or (region is not None and key[1] != region):
            continue
        _Chain(store, key, heads.get(key), by_fingerprint, report, start, end).run()
    return report


def _score(row: dict[str, Any], seq: int, last_hash: str, nexts: set[str]) -> tuple[bool, bool, bool, int]:
    """How well a record fits seq ``seq``: its hash matches it, it links back, the next links to it,
    then the earlier commit."""
    return (
        record_hash(row["prev_hash"], seq, row) == row["hash"],
        row["prev_hash"] == last_hash,
        row["hash"] in nexts,
        -int(row["id"]),
    )


class _Chain:
    def __init__(
        self,
        store: Store,
        key: tuple[str, str],
        head: dict[str, Any] | None,
        keys: dict[str, signing.PublicKeyInfo],
        report: Report,
        start: float | None,
        end: float | None,
    ) -> None:
        self.store = store
        self.key = key
        self.head = head
        self.keys = keys
        self.report = report
        self.start = start
        self.end = end
        self.summary = ChainSummary(*key, head_seq=int(head["seq"]) if head else 0)
        report.chains.append(self.summary)
        self.signed_hash: dict[int, tuple[int, str]] = {}  # last_seq -> (digest number, hash)
        self.pruned_hash = GENESIS
        self.digested_through = 0

    def problem(self, kind: str, detail: str, **fields: Any) -> None:
        self.report.problems.append(Problem(kind, self.key[0], self.key[1], detail, **fields))

    # -- digests ----------------------------------------------------------------------------------------
    def check_digests(self) -> None:
        with self.store.read() as tx:
            digests = tx.digests(*self.key)
        prev: dict[str, Any] | None = None
        for d in digests:
            self.summary.digests += 1
            number = int(d["number"])
            body = self._checked_body(d)
            if prev is not None and number == prev["number"]:
                self.problem(
                    "digest-inserted",
                    f"digest id {d['id']} has number {number}, already digest id {prev['id']}'s",
                    digest_numbers=[number],
                    digest_ids=[d["id"]],
                )
                continue
            expected = prev["number"] + 1 if prev is not None else 1
            if number > expected:
                after = f"digest {prev['number']} (id {prev['id']})" if prev else "the chain's start"
                self.problem(
                    "digest-deleted",
                    f"digests {expected}..{number - 1} missing between {after} and digest {number} "
                    f"(id {d['id']})",
                    digest_numbers=list(range(expected, number)),
                    digest_ids=[i for i in (prev["id"] if prev else None, d["id"]) if i is not None],
                )
            elif body is not None and body.get("previousDigestSignature") != (
                prev["signature"] if prev else None
            ):
                self.problem(
                    "digest-chain-broken",
                    f"digest {number} (id {d['id']}): previousDigestSignature is not the signature of "
                    "the digest before it",
                    digest_numbers=[number],
                    digest_ids=[d["id"]],
                )
            prev = d
            if body is None:
                continue
            if d["kind"] == "retention":
                self.summary.retention_markers += 1
                if int(d["last_seq"]) >= self.summary.pruned_through:
                    self.summary.pruned_through = int(d["last_seq"])
                    self.pruned_hash = d["last_hash"]
            else:
                self.signed_hash[int(d["last_seq"])] = (number, d["last_hash"])
                self.digested_through = max(self.digested_through, int(d["last_seq"]))
        if self.head is None:
            return
        newest = prev["number"] if prev is not None else 0
        if int(self.head["digests"]) > newest:
            self.problem(
                "digest-deleted",
                f"the chain head names {self.head['digests']} digests; the newest stored is {newest}",
                digest_numbers=list(range(newest + 1, int(self.head["digests"]) + 1)),
                digest_ids=[prev["id"]] if prev is not None else [],
            )
        elif prev is not None and self.head["digest_signature"] != prev["signature"]:
            self.problem(
                "digest-chain-broken",
                f"the newest digest {newest} (id {prev['id']}) is not the one the chain head names",
                digest_numbers=[newest],
                digest_ids=[prev["id"]],
            )

    def _checked_body(self, d: dict[str, Any]) -> dict[str, Any] | None:
        """The digest's signed body when its signature verifies and its columns match it (else None,
        the problem reported)."""
        ident = {"digest_numbers": [int(d["number"])], "digest_ids": [d["id"]]}
        try:
            body: dict[str, Any] = json.loads(d["body"])
            signature = bytes.fromhex(d["signature"])
        except ValueError:
            self.problem("digest-modified", f"digest id {d['id']}: unreadable body or signature", **ident)
            return None
        key = self.keys.get(str(body.get("digestPublicKeyFingerprint")))
        if key is None:
            self.problem(
                "digest-unknown-key",
                f"digest id {d['id']} is signed by key {body.get('digestPublicKeyFingerprint')}, "
                "not among the public keys",
                **ident,
            )
            return None
        if not signing.verify(key, d["body"].encode(), signature):
            self.problem("digest-modified", f"digest id {d['id']}: the signature does not verify", **ident)
            return None
        stated = {
            "kind": body.get("kind"),
            "number": body.get("digestNumber"),
            "first_seq": body.get("firstSequenceNumber"),
            "last_seq": body.get("lastSequenceNumber"),
            "last_hash": body.get("lastRecordHash"),
            "account_id": body.get("awsAccountId"),
            "region": body.get("awsRegion"),
        }
        if any(d[name] != value for name, value in stated.items()):
            self.problem(
                "digest-modified", f"digest id {d['id']}: its columns differ from its signed body", **ident
            )
            return None
        return body

    # -- records ----------------------------------------------------------------------------------------
    def groups(self, after: int, high: int | None) -> Iterator[list[dict[str, Any]]]:
        group: list[dict[str, Any]] = []
        while True:
            with self.store.read() as tx:
                rows = tx.chain_records(*self.key, after, BATCH)
            for row in rows:
                if high is not None and row["seq"] > high:
                    rows = []
                    break
                if group and row["seq"] != group[0]["seq"]:
                    yield group
                    group = []
                group.append(row)
            if len(rows) < BATCH:
                break
            after = int(rows[-1]["seq"])
            if group and group[0]["seq"] == after:  # the rest of this seq comes in the next page
                after -= 1
                group = []
        if group:
            yield group

    def check_records(self) -> None:
        first_expected = self.summary.pruned_through + 1
        begin, high = first_expected, None
        last_seq, last_hash, last_id = first_expected - 1, self.pruned_hash, 0
        if self.start is not None or self.end is not None:
            with self.store.read() as tx:
                low, high = tx.chain_seq_bounds(*self.key, self.start, self.end)
                if (self.start is not None and low is None) or (self.end is not None and high is None):
                    return
                if low is not None and low > first_expected:
                    begin = low
                    anchor = tx.chain_record(*self.key, low - 1)
                    last_seq = low - 1
                    if anchor is not None:
                        last_hash, last_id = anchor["hash"], int(anchor["id"])
                    else:
                        last_hash = ""  # the predecessor is missing: reported as deleted below
        head_seq = self.summary.head_seq
        max_id, max_seq = last_id, last_seq
        reorder: list[dict[str, Any]] = []
        modified: list[dict[str, Any]] = []
        pending = self.groups(begin - 1, high)
        group = next(pending, None)
        while group is not None:
            following = next(pending, None)
            seq = int(group[0]["seq"])
            if self.head is not None and seq > head_seq:
                for row in group:
                    self.inserted(row, f"seq {seq} is past the chain head's {head_seq}")
                group = following
                continue
            gap = seq > last_seq + 1
            if gap:
                self.deleted(last_seq + 1, seq - 1, last_id, group[0])
            nexts = {row["prev_hash"] for row in following or []}

            ranked = sorted(group, key=lambda row: _score(row, seq, last_hash, nexts), reverse=True)
            genuine = ranked[0]
            for row in ranked[1:]:
                self.inserted(row, f"a second record with seq {seq} (the chain's is id {genuine['id']})")
            self.summary.records += 1
            if self.summary.first_seq is None:
                self.summary.first_seq = seq
            self.summary.last_seq = seq
            self_ok, links, _, _ = _score(genuine, seq, last_hash, nexts)
            if not self_ok:
                modified.append(genuine)
            elif not links and not gap and last_hash != "":
                self.problem(
                    "modified",
                    f"record id {genuine['id']} (seq {seq}): its prev_hash does not name its predecessor",
                    seqs=[seq],
                    record_ids=[int(genuine["id"])],
                    event_ids=[genuine["event_id"]],
                )
            signed = self.signed_hash.get(seq)
            if signed is not None and signed[1] != genuine["hash"]:
                self.problem(
                    "rewritten",
                    f"record id {genuine['id']} (seq {seq}) does not have the hash digest {signed[0]} signed:"
                    f" records up to seq {seq} were rewritten",
                    seqs=[seq],
                    record_ids=[int(genuine["id"])],
                    event_ids=[genuine["event_id"]],
                    digest_numbers=[signed[0]],
                )
            row_id = int(genuine["id"])
            if row_id < max_id:
                if not reorder:
                    reorder.append({"id": max_id, "seq": max_seq, "event_id": None})
                reorder.append(genuine)
            else:
                self.reordered(reorder)
                reorder = []
                max_id, max_seq = row_id, seq
            last_seq, last_hash, last_id = seq, genuine["hash"], row_id
            group = following
        self.reordered(reorder)
        self.modified(modified)
        if high is None and self.head is not None and last_seq < head_seq:
            self.deleted(last_seq + 1, head_seq, last_id, None)
        with self.store.read() as tx:
            for row in tx.unchained_records(*self.key):
                self.inserted(row, f"record id {row['id']} has no place in the chain (no seq)")
        self.summary.undigested = max(0, head_seq - self.digested_through)

    def inserted(self, row: dict[str, Any], detail: str) -> None:
        seqs = [int(row["seq"])] if row.get("seq") is not None else []
        self.problem("inserted", detail, seqs=seqs, record_ids=[int(row["id"])], event_ids=[row["event_id"]])

    def deleted(self, first: int, last: int, before_id: int, after: dict[str, Any] | None) -> None:
        ids = [i for i in (before_id or None, int(after["id"]) if after else None) if i is not None]
        where = f"before record id {after['id']}" if after else "at the end of the chain"
        self.problem(
            "deleted",
            f"records with seq {first}..{last} missing ({where})",
            seqs=list(range(first, min(last, first + MAX_LISTED - 1) + 1)),
            first_seq=first,
            last_seq=last,
            record_ids=ids,
        )

    def reordered(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        with self.store.read() as tx:
            moved = tx.chain_record(*self.key, int(rows[0]["seq"]))
        first = moved if moved is not None else rows[0]
        listed = [first, *rows[1:]]
        self.problem(
            "reordered",
            f"records with seq {rows[0]['seq']}..{rows[-1]['seq']} are not in commit order (ids "
            + ", ".join(str(r["id"]) for r in listed[:MAX_LISTED])
            + ")",
            seqs=[int(r["seq"]) for r in listed],
            first_seq=int(rows[0]["seq"]),
            last_seq=int(rows[-1]["seq"]),
            record_ids=[int(r["id"]) for r in listed],
            event_ids=[r["event_id"] for r in listed if r.get("event_id")],
        )

    def modified(self, rows: list[dict[str, Any]]) -> None:
        """Report records whose hash does not match their content; two whose contents were exchanged
        (each matching the other's place) as one reordering."""
        paired: set[int] = set()
        if len(rows) <= MAX_LISTED:
            for i, a in enumerate(rows):
                for b in rows[i + 1 :]:
                    if id(a) in paired or id(b) in paired:
                        continue
                    if (
                        record_hash(b["prev_hash"], int(b["seq"]), a) == b["hash"]
                        and record_hash(a["prev_hash"], int(a["seq"]), b) == a["hash"]
                    ):
                        paired |= {id(a), id(b)}
                        self.problem(
                            "reordered",
                            f"records id {a['id']} (seq {a['seq']}) and id {b['id']} (seq {b['seq']}) "
                            "exchanged their contents",
                            seqs=[int(a["seq"]), int(b["seq"])],
                            record_ids=[int(a["id"]), int(b["id"])],
                            event_ids=[a["event_id"], b["event_id"]],
                        )
        for row in rows:
            if id(row) not in paired:
                self.problem(
                    "modified",
                    f"record id {row['id']} (seq {row['seq']}): its hash does not match its content",
                    seqs=[int(row["seq"])],
                    record_ids=[int(row["id"])],
                    event_ids=[row["event_id"]],
                )

    def run(self) -> None:
        self.check_digests()
        self.check_records()
