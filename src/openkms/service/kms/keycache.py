"""An in-memory cache of keys (with their unsealed material) and aliases, so that cryptographic
operations need no database round trip.

Correctness rule: an entry is never older than the last change notification this process has seen.
Invalidations come from the local store at commit time and from other processes through the change
feed. A read that started before an invalidation it raced with is not cached (the ``epoch`` check).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from openkms.crypto.secret import Secret
from openkms.domain.model import KeyMaterial, KeyRecord
from openkms.storage.store import GrantRow


@dataclass(slots=True)
class LoadedKey:
    record: KeyRecord
    materials: dict[str, KeyMaterial]
    # material id -> plaintext material (present only for material that is imported / generated)
    secrets: dict[str, Secret[bytes]] = field(repr=False, default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    grants: tuple[GrantRow, ...] = ()
    # The key's condition keys for authorization (kms:KeySpec, aws:ResourceTag/…), built once.
    policy_context: dict[str, Any] | None = None
    # material id -> parsed form of the material (e.g. a private key object), filled on first use by
    # the operations that need it; dropped with the entry, so it never outlives the material.
    parsed: dict[str, object] = field(repr=False, default_factory=dict)


class KeyCache:
    """Keys by (Region, key id), at most ``max_keys`` of them (least recently used evicted first), and
    aliases."""

    def __init__(self, max_keys: int = 10_000) -> None:
        self._keys: OrderedDict[tuple[str, str], LoadedKey] = OrderedDict()
        self._aliases: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()
        self._max = max_keys
        self.epoch = 0
        self.hits = 0
        self.misses = 0
        self.alias_hits = 0
        self.alias_misses = 0

    def get_key(self, region: str, key_id: str) -> LoadedKey | None:
        k = (region, key_id)
        loaded = self._keys.get(k)
        if loaded is None:
            self.misses += 1
        else:
            self.hits += 1
            # The most recently used is evicted last. A plain try (free here), not contextlib.suppress,
            # which builds an object on every hit of this hot path.
            try:  # noqa: SIM105
                self._keys.move_to_end(k)
            except KeyError:
                pass  # invalidated meanwhile by another thread
        return loaded

    def has_key(self, region: str, key_id: str) -> bool:
        """Whether the key is cached (not counted as a lookup)."""
        return (region, key_id) in self._keys

    def sizes(self) -> tuple[int, int]:
        """The number of cached keys and aliases."""
        return len(self._keys), len(self._aliases)

    def put_key(self, loaded: LoadedKey, epoch: int) -> None:
        with self._lock:
            if epoch != self.epoch:
                return
            k = (loaded.record.region, loaded.record.key_id)
            self._keys[k] = loaded
            if len(self._keys) > self._max:
                self._keys.popitem(last=False)

    def get_alias(self, region: str, account: str, name: str) -> str | None:
        key_id = self._aliases.get((region, account, name))
        if key_id is None:
            self.alias_misses += 1
        else:
            self.alias_hits += 1
        return key_id

    def put_alias(self, region: str, account: str, name: str, key_id: str, epoch: int) -> None:
        with self._lock:
            if epoch != self.epoch:
                return
            if len(self._aliases) > self._max:
                self._aliases.clear()
            self._aliases[(region, account, name)] = key_id

    def invalidate(self, changes: Sequence[tuple[str, str]]) -> None:
        with self._lock:
            self.epoch += 1
            for kind, ident in changes:
                if kind == "key":
                    region, _, key_id = ident.partition("/")
                    self._keys.pop((region, key_id), None)
                elif kind == "alias":
                    region, _, rest = ident.partition("/")
                    account, _, name = rest.partition("/")
                    self._aliases.pop((region, account, name), None)

    def clear(self) -> None:
        with self._lock:
            self.epoch += 1
            self._keys.clear()
            self._aliases.clear()
