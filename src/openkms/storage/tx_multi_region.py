"""Transaction methods for multi-Region keys (migration 7): which keys form a set of related
multi-Region keys, which Region holds the set's primary key, and which keys are in a transient state
(Creating, Updating) since when.

A set is the keys of one account with one ``mrk-`` key id, one per Region, each also a row of ``keys``.
The records :meth:`fill_multi_region` completes carry the set (``KeyRecord.primary_region`` and
``replica_regions``); a change to the set is a change of every key in it (their cache entries hold it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from openkms.domain.model import KeyRecord
from openkms.storage import schema as t
from openkms.storage.tx_base import TxBase

_MRK = t.multi_region_keys


class MultiRegionTx(TxBase):
    def fill_multi_region(self, records: Sequence[KeyRecord]) -> None:
        """Set ``primary_region`` and ``replica_regions`` of the multi-Region keys among ``records``
        (one query for all of them; none when there is none)."""
        wanted = {(r.account_id, r.key_id) for r in records if r.multi_region}
        if not wanted:
            return
        sets = self._sets(wanted)
        for record in records:
            if not record.multi_region:
                continue
            rows = sets.get((record.account_id, record.key_id), {})
            primary = rows.get(record.region, record.region)  # a key without a row: its own primary
            record.primary_region = primary
            record.replica_regions = tuple(sorted(r for r in rows if r != primary))

    def _sets(self, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
        """(account, key id) -> {region: the primary Region its row names}."""
        pairs = set(wanted)
        q = sa.select(_MRK.c.region, _MRK.c.key_id, _MRK.c.account_id, _MRK.c.primary_region).where(
            _MRK.c.key_id.in_(sorted({k for _, k in pairs}))
        )
        found: dict[tuple[str, str], dict[str, str]] = {}
        for r in self.conn.execute(q):
            if (r.account_id, r.key_id) in pairs:
                found.setdefault((r.account_id, r.key_id), {})[r.region] = r.primary_region
        return found

    def related_regions(self, account_id: str, key_id: str) -> dict[str, str]:
        """Region -> the primary Region its row names, for every key of the set."""
        return self._sets([(account_id, key_id)]).get((account_id, key_id), {})

    def insert_multi_region_key(
        self, key: KeyRecord, primary_region: str, sync_since: float | None = None
    ) -> None:
        """The row of a new multi-Region key (a primary made by CreateKey, or a replica): every key of
        its set sees the set change."""
        self.conn.execute(
            _MRK.insert().values(
                region=key.region,
                key_id=key.key_id,
                account_id=key.account_id,
                primary_region=primary_region,
                sync_since=sync_since,
            )
        )
        self.set_changed(key.account_id, key.key_id)

    def set_primary_region(self, account_id: str, key_id: str, primary_region: str) -> None:
        """Make ``primary_region`` the set's primary Region (UpdatePrimaryRegion)."""
        self.conn.execute(
            _MRK.update()
            .where(_MRK.c.account_id == account_id, _MRK.c.key_id == key_id)
            .values(primary_region=primary_region)
        )
        self.set_changed(account_id, key_id)

    def set_sync_since(self, region: str, key_id: str, since: float | None) -> None:
        """Mark a key as in a transient state since ``since`` (None: no longer in one)."""
        self.conn.execute(
            _MRK.update().where(_MRK.c.region == region, _MRK.c.key_id == key_id).values(sync_since=since)
        )
        self.changed("key", f"{region}/{key_id}")

    def syncs_due(self, started_before: float, limit: int = 100) -> list[tuple[str, str, str]]:
        """(account, key id, region) of the keys in a transient state since ``started_before`` or
        earlier, oldest first."""
        q = (
            sa.select(_MRK.c.account_id, _MRK.c.key_id, _MRK.c.region)
            .where(_MRK.c.sync_since.is_not(None), _MRK.c.sync_since <= started_before)
            .order_by(_MRK.c.sync_since)
            .limit(limit)
        )
        return [(r.account_id, r.key_id, r.region) for r in self.conn.execute(q)]

    def sync_since(self, region: str, key_id: str) -> float | None:
        r = self.conn.execute(
            sa.select(_MRK.c.sync_since).where(_MRK.c.region == region, _MRK.c.key_id == key_id)
        ).first()
        return None if r is None else r.sync_since

    def delete_multi_region_key(self, region: str, key_id: str) -> None:
        """Forget a deleted key's row (the rest of its set sees the set change)."""
        r = self.conn.execute(
            sa.select(_MRK.c.account_id).where(_MRK.c.region == region, _MRK.c.key_id == key_id)
        ).first()
        if r is None:
            return
        self.conn.execute(_MRK.delete().where(_MRK.c.region == region, _MRK.c.key_id == key_id))
        self.set_changed(r.account_id, key_id)

    def set_changed(self, account_id: str, key_id: str) -> None:
        """Every key of the set changes: each cache entry holds the set."""
        for region in self.related_regions(account_id, key_id):
            self.changed("key", f"{region}/{key_id}")
