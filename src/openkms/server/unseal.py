"""Unsealing a ``shamir`` installation's server: the shares given so far, held in this process's memory
only (never logged, never stored), combined once there are the threshold's number of distinct ones.

The combination is checked by opening the stored keyring with it: shares that do not open it (one of
another installation, a mistyped one that still passed its checksum) reset the progress, and the
operator starts over. Sealing forgets the keyring and every secret cached from it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from openkms.crypto.shamir import Share, ShareError
from openkms.server.root_of_trust import Trust, shamir_kek, threshold_of
from openkms.service.trust.keyring import RootOfTrustError

SEALED_MESSAGE = (
    "The service is sealed: its keys cannot be used until it is unsealed with enough of its Shamir "
    "shares (openkms operator unseal)."
)


@dataclass(frozen=True)
class UnsealRefused(Exception):
    """A share refused (malformed, given twice) or shares that do not open the keyring (progress reset)."""

    message: str
    status: int = 400


class Unsealer:
    """The shares given to this process so far. ``on_sealed`` clears what the process cached from the
    keyring (keys, credentials, signing keys)."""

    def __init__(self, trust: Trust, on_sealed: Callable[[], None]) -> None:
        self.trust = trust
        self._on_sealed = on_sealed
        self._lock = threading.Lock()
        self._shares: dict[int, Share] = {}

    @property
    def threshold(self) -> int:
        return threshold_of(self.trust.config)

    def status(self) -> dict[str, Any]:
        return {
            "sealed": self.trust.sealed,
            "progress": len(self._shares),
            "threshold": self.threshold if self.trust.source == "shamir" else None,
        }

    def submit(self, text: str) -> dict[str, Any]:
        """Take one share (its text form); unseal when it completes the threshold. Blocking (the keyring
        is read from the database): run it off the event loop."""
        if self.trust.source != "shamir":
            raise UnsealRefused("this installation is not sealed by Shamir shares", 400)
        try:
            share = Share.from_text(text)
        except ShareError as exc:
            raise UnsealRefused(str(exc)) from None
        with self._lock:
            if not self.trust.sealed:
                return self.status()
            if share.x in self._shares:
                raise UnsealRefused("this share was given already (each share counts once)")
            if self._shares and len(next(iter(self._shares.values())).y) != len(share.y):
                self._shares.clear()
                raise UnsealRefused("this share is not of the same set as the ones before: progress reset")
            self._shares[share.x] = share
            if len(self._shares) < self.threshold:
                return self.status()
            given = list(self._shares.values())
            self._shares.clear()
            try:
                self.trust.open_with(shamir_kek(given))
            except RootOfTrustError:
                raise UnsealRefused(
                    "these shares do not open this installation's keyring (one is of another set or "
                    "mistyped): progress reset, start again"
                ) from None
            return self.status()

    def seal(self) -> None:
        with self._lock:
            self._shares.clear()
            self.trust.seal()
            self._on_sealed()
