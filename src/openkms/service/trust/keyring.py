"""The stored keyring: made at an installation's first start (or adopted from the root key file of an
installation older than keyrings), opened with the root key's holder at every start, reloaded when
another process changes it (a rotation's new version), and re-wrapped under another holder (``rekey``)
without re-sealing a row.

Every refusal is a :class:`RootOfTrustError` with a message an operator can act on; a wrong root key is
told apart from a damaged row only as far as AES-GCM can: neither opens the keyring.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from openkms.crypto.envelope import Kek, Keyring, RootKey, SealError, sealed_version
from openkms.service.trust.sealed_columns import SEALED_COLUMNS
from openkms.storage.store import KeyringRow, Store

log = logging.getLogger("openkms.trust")

SOURCES = ("file", "pkcs11", "shamir")
WRONG_ROOT_KEY = (
    "the root key does not open this installation's keyring: this is not the root key file, token key "
    "or set of shares the installation was made with"
)


class RootOfTrustError(Exception):
    """The keyring cannot be made or opened (a wrong root key, a missing holder, a mismatched source)."""


def stored(store: Store) -> KeyringRow | None:
    with store.read() as tx:
        return tx.get_keyring()


def config_of(row: KeyringRow) -> dict[str, Any]:
    value = json.loads(row.config)
    return value if isinstance(value, dict) else {}


def unwrap(row: KeyringRow, kek: Kek) -> Keyring:
    try:
        return Keyring.from_bytes(kek.unwrap(row.wrapped))
    except SealError:
        raise RootOfTrustError(WRONG_ROOT_KEY) from None


def open_keyring(store: Store, kek: Kek) -> Keyring:
    """The stored keyring unwrapped by ``kek``."""
    row = stored(store)
    if row is None:
        raise RootOfTrustError("this installation has no keyring yet (it was never started)")
    return unwrap(row, kek)


def has_sealed_rows(store: Store) -> bool:
    """Whether anything is stored sealed (an installation older than keyrings, when it has no keyring)."""
    with store.read() as tx:
        return any(tx.sealed_values(c.table, c.keys, c.column, None, 1) for c in SEALED_COLUMNS)


def check_legacy_root_key(store: Store, raw: bytes) -> None:
    """Refuse to adopt ``raw`` as the root key of rows sealed before keyrings unless it opens one."""
    probe = RootKey(raw)
    with store.read() as tx:
        for column in SEALED_COLUMNS:
            for key, sealed in tx.sealed_values(column.table, column.keys, column.column, None, 20):
                if sealed_version(sealed) != 1:
                    continue
                try:
                    probe.unseal(column.purpose, column.ident_of(key), sealed)
                except SealError:
                    raise RootOfTrustError(WRONG_ROOT_KEY) from None
                return


def create_keyring(store: Store, kek: Kek, ring: Keyring, config: dict[str, Any], now: float) -> Keyring:
    """Store ``ring`` wrapped by ``kek``; when another process stored one first, that one (opened by
    ``kek``) is the installation's."""
    row = KeyringRow(
        source=kek.source,
        config=json.dumps(config, sort_keys=True),
        wrapped=kek.wrap(ring.to_bytes()),
        generation=1,
        updated_at=now,
    )
    with store.write() as tx:
        made = tx.insert_keyring(row)
    if made:
        log.info("made the keyring (root of trust: %s)", kek.source)
        return ring
    return open_keyring(store, kek)


def update(store: Store, kek: Kek, change: Any, now: float) -> KeyringRow:
    """Apply ``change(ring, row) -> (new ring or None, row changes)`` to the stored keyring under a
    compare and set, retried when another process wrote in between; returns the row written."""
    for _ in range(50):
        row = stored(store)
        if row is None:
            raise RootOfTrustError("this installation has no keyring yet (it was never started)")
        ring = unwrap(row, kek)
        new_ring, changes = change(ring, row)
        new_row = row.but(generation=row.generation + 1, updated_at=now, **changes)
        if new_ring is not None:
            new_row = new_row.but(wrapped=kek.wrap(new_ring.to_bytes()))
        with store.write() as tx:
            if tx.update_keyring(row.generation, new_row):
                return new_row
    raise RootOfTrustError("the keyring kept changing under this update; try again")


def rewrap(store: Store, old: Kek, new: Kek, config: dict[str, Any], now: float) -> KeyringRow:
    """Wrap the keyring under ``new`` (another source, other shares) instead of ``old``: no sealed row
    changes, and every process keeps its open keyring (only a restart or an unseal needs ``new``)."""

    def change(ring: Keyring, row: KeyringRow) -> tuple[None, dict[str, Any]]:
        return None, {
            "wrapped": new.wrap(ring.to_bytes()),
            "source": new.source,
            "config": json.dumps(config, sort_keys=True),
        }

    return update(store, old, change, now)


def reload(store: Store, root: RootKey, kek: Kek) -> None:
    """Load the stored keyring into ``root`` again (another process changed it); keeps the open one when
    the stored one cannot be read (logged: a process cannot lose its keyring to a bad write)."""
    try:
        root.load(open_keyring(store, kek))
    except RootOfTrustError as exc:
        # Expected after `operator rekey` moved the keyring to another root of trust: this process keeps
        # serving with the keyring it opened and needs the new root of trust at its next start.
        log.warning("could not reload the keyring (%s); keeping the one loaded", exc)
    except Exception:
        log.error("could not reload the keyring; keeping the one loaded", exc_info=True)
