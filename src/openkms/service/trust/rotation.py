"""Online rotation of the root key's keyring: a new data-encryption key version for new seals, every
stored sealed value re-sealed under it in the background, then the old versions destroyed.

- :func:`start` adds the version (``Keyring.with_new_version``) and marks the keyring row ``running``
  with the number of values to re-seal. The write announces a keyring change, so every process reloads
  the keyring and seals under the new version from then on. A rotation already running is not started
  again (:class:`RotationRunning`); ``openkms operator rotate-root-key`` then resumes it.
- A :class:`Resealer` walks :data:`~openkms.service.trust.sealed_columns.SEALED_COLUMNS` in key order a
  batch at a time (:func:`reseal_batch`) and replaces each value under an old version by its re-sealed
  self with a compare and set: a value written meanwhile wins (it was sealed under the new version by a
  process that reloaded, or it is found again by a later pass). It re-seals with the keyring stored in
  the row (unwrapped by itself), never with a process's loaded one, so it cannot seal under an old
  version while its process has yet to reload. It starts :data:`PROPAGATION_SECONDS` after the start,
  so that processes have loaded the new version before they meet a value sealed under it (one that
  meets such a value sooner, a key another process made, reloads the keyring then). Progress is
  counted in the row without announcing anything. Its cursor lives in memory: after a crash (kill -9)
  the row still says ``running`` and the next resealer walks again from the start, skipping values
  already re-sealed with a read each. Several resealers (the command and every server's
  ``reseal-root-key`` job) may work at once; the compare and set keeps them from undoing each other.
- :func:`finish`: once a *clean* pass (one that met no value to re-seal, while no resealer re-sealed
  one, lasting at least :data:`SETTLE_SECONDS`) has ended at least :data:`GRACE_SECONDS` after the
  start, a final scan counts the values under any version but the new one; none left, the old versions
  are removed from the keyring and the row marked ``done`` (announced: every process drops them).

The grace period is how long a process may keep sealing under the old version after the start: the
time for the change to reach it (SQLite's change feed polls every 0.2 s, PostgreSQL's NOTIFY arrives at
once) and for requests sealed before it arrived to commit. Its limit: a process cut off from the change
feed (or the database) for longer than the grace period, that then writes a value sealed under a
version destroyed meanwhile, leaves a value nothing can open. Nodes that lose their change feed
reconnect and reload the keyring before serving changes again (``on_reset``), so this needs a partition
that keeps a process writing to the database while missing its notifications for that long, or a
process whose reload failed (its PKCS#11 token unreachable at that moment: logged as an error, the
process keeps the keyring it had).

The settle time covers the other way a value can come back under an old version: a transaction that
read a row (key material it changes the state of, on PostgreSQL's read committed isolation) before the
row was re-sealed and writes it back whole after. The final scan finds such a value if it is written
before it; one written after needs a transaction open longer than the settle time across the re-seal.

The time is the wall clock of the process finishing compared with ``rotation_started`` written by the
one starting: processes sharing a database are assumed to agree on the time within a second or two.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from openkms.crypto.envelope import Kek, Keyring, RootKey, SealError, sealed_version
from openkms.service.trust import keyring
from openkms.service.trust.sealed_columns import SEALED_COLUMNS
from openkms.storage.store import KeyringRow, Store

log = logging.getLogger("openkms.trust.rotation")

#: Seconds after the start before old versions may be destroyed: how long a process may still seal
#: under the old version (see the module's documentation).
GRACE_SECONDS = 10.0
#: Seconds after the start before values are re-sealed: every process has loaded the new version by
#: then, so none meets a value sealed under a version it does not have yet.
PROPAGATION_SECONDS = 1.0
#: Seconds a pass that finds nothing to re-seal must last before old versions are destroyed: longer than
#: any transaction that read a value before it was re-sealed and may write it back unchanged.
SETTLE_SECONDS = 3.0
BATCH = 200


class RotationError(Exception):
    """The rotation cannot go on (a value no version of the keyring opens, a keyring changed under it)."""


class RotationRunning(RotationError):
    """A rotation is running already (resume it instead of starting another)."""


def _prefix(version: int) -> bytes:
    return b"\x02" + struct.pack(">I", version)


def remaining(store: Store, version: int) -> int:
    """How many stored values are sealed under another version than ``version``."""
    with store.read() as tx:
        return sum(
            tx.count_sealed(c.table, c.column) - tx.count_sealed(c.table, c.column, _prefix(version))
            for c in SEALED_COLUMNS
        )


def current(store: Store) -> KeyringRow:
    row = keyring.stored(store)
    if row is None:
        raise keyring.RootOfTrustError("this installation has no keyring yet (it was never started)")
    return row


def active_version(row: KeyringRow, kek: Kek) -> int:
    """The version the keyring of ``row`` seals new values under."""
    return keyring.unwrap(row, kek).active


def start(store: Store, kek: Kek, now: float) -> KeyringRow:
    """Add a keyring version for new seals and mark the rotation running (announced: every process
    reloads). Raises :class:`RotationRunning` when one is running already."""

    def change(ring: Keyring, row: KeyringRow) -> tuple[Keyring, dict[str, Any]]:
        if row.rotation_state == "running":
            raise RotationRunning("a root key rotation is already running")
        new = ring.with_new_version()
        return new, {
            "rotation_state": "running",
            "rotation_started": now,
            "rotation_resealed": 0,
            "rotation_total": remaining(store, new.active),
        }

    row = keyring.update(store, kek, change, now)
    log.info("root key rotation started: %d values to re-seal", row.rotation_total)
    return row


@dataclass
class Cursor:
    """Where a walk of the sealed columns is: the column's index and the last key done in it."""

    column: int = 0
    after: tuple[str, ...] | None = None

    @property
    def ended(self) -> bool:
        return self.column >= len(SEALED_COLUMNS)


@dataclass(frozen=True)
class Batch:
    resealed: int  # values replaced by their re-sealed selves
    lost: int  # values changed by another write between the read and the replace


def reseal_batch(store: Store, root: RootKey, cursor: Cursor, limit: int = BATCH) -> Batch:
    """Re-seal under ``root``'s active version up to ``limit`` values of the cursor's column after it,
    advancing it (to the next column at the end of one). Raises :class:`RotationError` for a value the
    keyring does not open (the rotation cannot destroy a version such a value may need)."""
    if cursor.ended:
        return Batch(0, 0)
    column = SEALED_COLUMNS[cursor.column]
    with store.read() as tx:
        rows = tx.sealed_values(column.table, column.keys, column.column, cursor.after, limit)
    if len(rows) < limit:
        cursor.column, cursor.after = cursor.column + 1, None
    else:
        cursor.after = rows[-1][0]
    replacements = []
    for key, sealed in rows:
        try:
            new = root.reseal(column.purpose, column.ident_of(key), sealed)
        except SealError:
            raise RotationError(
                f"the value of {column.table}.{column.column} for {'/'.join(key)} (version "
                f"{sealed_version(sealed)}) does not open under the keyring; the rotation cannot finish"
            ) from None
        if new is not None:
            replacements.append((key, sealed, new))
    if not replacements:
        return Batch(0, 0)
    done = 0
    with store.write() as tx:
        for key, old, new in replacements:
            done += tx.replace_sealed(column.table, column.keys, column.column, key, old, new)
        if done:
            tx.add_rotation_resealed(done)
    return Batch(done, len(replacements) - done)


class _Abandoned(Exception):
    pass


def finish(store: Store, kek: Kek, active: int, now: float) -> bool:
    """Destroy every version but ``active`` and mark the rotation done, if no stored value is sealed
    under another version (False: some are; or the rotation is no longer the one re-sealing to
    ``active``)."""
    if remaining(store, active) != 0:
        return False

    def change(ring: Keyring, row: KeyringRow) -> tuple[Keyring, dict[str, Any]]:
        if row.rotation_state != "running" or ring.active != active:
            raise _Abandoned()
        old = set(ring.keys) - {active}
        return ring.without(old), {"rotation_state": "done", "rotation_resealed": row.rotation_total}

    try:
        keyring.update(store, kek, change, now)
    except _Abandoned:
        return False
    log.info("root key rotation done: keyring version %d only", active)
    return True


@dataclass(frozen=True)
class Step:
    """What a :meth:`Resealer.step` saw: the row after it, and whether it had nothing to do yet (waiting
    for the new version to propagate, or for the grace period or a clean pass to end)."""

    row: KeyringRow | None
    idle: bool

    @property
    def running(self) -> bool:
        return self.row is not None and self.row.rotation_state == "running"


@dataclass
class _Pass:
    started: float
    mark: int  # the row's count of re-sealed values when the pass began
    clean: bool = True  # no value under another version met yet


class Resealer:
    """Carries a running rotation forward one batch at a time (see the module's documentation).

    ``kek`` gives the root key's holder (None: the process is sealed, nothing is done); ``now`` the
    wall clock."""

    def __init__(self, store: Store, kek: Callable[[], Kek | None], now: Callable[[], float]) -> None:
        self._store = store
        self._kek = kek
        self._now = now
        self._generation: int | None = None
        self._root: RootKey | None = None
        self._cursor = Cursor()
        self._pass: _Pass | None = None

    def _new_pass(self) -> None:
        self._cursor = Cursor()
        self._pass = None

    def step(self, limit: int = BATCH) -> Step:
        row = keyring.stored(self._store)
        if row is None or row.rotation_state != "running":
            return Step(row, idle=True)
        kek = self._kek()
        if kek is None:
            return Step(row, idle=True)
        if row.generation != self._generation or self._root is None:
            # The keyring changed (this rotation's start, a rewrap): walk again with the stored one.
            self._root = RootKey.from_keyring(keyring.unwrap(row, kek))
            self._generation = row.generation
            self._new_pass()
        now = self._now()
        started = row.rotation_started or 0.0
        if now < started + PROPAGATION_SECONDS:
            return Step(row, idle=True)
        if self._pass is None:
            self._pass = _Pass(now, row.rotation_resealed)
        if not self._cursor.ended:
            batch = reseal_batch(self._store, self._root, self._cursor, limit)
            if batch.resealed or batch.lost:
                self._pass.clean = False
            return Step(keyring.stored(self._store), idle=False)
        # A pass has ended. Finish after a clean one: it met nothing to re-seal, nobody re-sealed a value
        # while it ran, and it lasted SETTLE_SECONDS (a transaction that read a value before its last
        # re-seal has ended) and ended after the grace period (no process seals under an old version).
        if not self._pass.clean or row.rotation_resealed != self._pass.mark:
            self._new_pass()
            return Step(row, idle=False)
        if now < started + GRACE_SECONDS or now < self._pass.started + SETTLE_SECONDS:
            return Step(row, idle=True)
        finished = finish(self._store, kek, self._root.keyring.active, now)
        if not finished:
            self._new_pass()
        return Step(keyring.stored(self._store), idle=False)

    def work(self, seconds: float, limit: int = BATCH) -> None:
        """Steps for up to about ``seconds`` (a background job's share of a tick)."""
        deadline = self._now() + seconds
        while True:
            step = self.step(limit)
            if not step.running or step.idle or self._now() >= deadline:
                return
