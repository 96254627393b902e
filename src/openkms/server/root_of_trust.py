"""Opening the barrier at start: the root key's holder named by the settings (or recorded with the
keyring) unwraps the stored keyring into the process's :class:`~openkms.crypto.envelope.RootKey`.

- ``file``: a 32-byte file (``--root-key-file``, default ``<data-dir>/root.key``), made at the first start;
  an installation older than keyrings adopts its file (checked against a row it sealed) as version 1.
- ``pkcs11``: a non-extractable AES-256 key in a PKCS#11 token (:mod:`openkms.crypto.pkcs11`), made in
  the token at the first start when its label is new.
- ``shamir``: nothing on disk; the process starts sealed until enough shares are given
  (:mod:`openkms.server.unseal`). ``openkms operator init`` makes such an installation
  (:func:`init_shamir`); tools working on the data offline open it with the shares of
  ``Settings.unseal_shares`` (``--unseal-share``).

:class:`Trust` keeps what the process opened the keyring with, to reload it when another process
changes it (a root key rotation's new version), as the change feed says or as soon as a stored value
names a version it has not loaded yet.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from openkms.clock import Clock, SystemClock
from openkms.config import Settings
from openkms.crypto import shamir
from openkms.crypto.envelope import ROOT_KEY_BYTES, AesKek, Kek, Keyring, RootKey, read_root_key_file
from openkms.service.trust import keyring as trust
from openkms.service.trust.keyring import RootOfTrustError
from openkms.storage.store import KeyringRow, Store

log = logging.getLogger("openkms.trust")

RELOAD_INTERVAL = 0.2  # seconds: the shortest time between reloads for values of an unknown version


@dataclass
class Trust:
    """The process's barrier and what opened it (``kek``: None while sealed)."""

    store: Store
    root: RootKey
    source: str
    config: dict[str, Any] = field(default_factory=dict)
    kek: Kek | None = None

    _reloading: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _reloaded: float = field(default=float("-inf"), init=False, repr=False)

    def __post_init__(self) -> None:
        self.root.on_unknown_version(self._reload_for_new_version)

    @property
    def sealed(self) -> bool:
        return self.root.sealed

    def _reload_for_new_version(self) -> None:
        """A stored value names a keyring version this process has not loaded (sealed by another process
        that reloaded a rotation's new version before this one heard of it): reload now, once for all
        the requests meeting it together, and at most every :data:`RELOAD_INTERVAL` seconds."""
        with self._reloading:
            if time.monotonic() - self._reloaded >= RELOAD_INTERVAL:
                self.reload()
                self._reloaded = time.monotonic()

    def open_with(self, kek: Kek) -> None:
        """Unseal: open the stored keyring with ``kek`` (RootOfTrustError: it does not open it)."""
        ring = trust.open_keyring(self.store, kek)
        self.kek = kek
        self.root.load(ring)

    def seal(self) -> None:
        self.kek = None
        self.root.drop()

    def reload(self) -> None:
        """Another process changed the keyring: load it again (nothing to do while sealed)."""
        kek = self.kek
        if kek is not None:
            trust.reload(self.store, self.root, kek)


def file_kek(settings: Settings, create: bool) -> AesKek:
    path = settings.root_key_path
    try:
        return AesKek(read_root_key_file(path, create=create), source="file")
    except FileNotFoundError:
        raise RootOfTrustError(
            f"the root key file {path} does not exist (this installation's root of trust is a file: "
            "give its path with --root-key-file)"
        ) from None
    except (PermissionError, ValueError) as exc:
        raise RootOfTrustError(str(exc)) from None


def pkcs11_kek(settings: Settings, config: dict[str, Any], create: bool) -> Kek:
    """The PKCS#11 token's key: the settings' module, labels and PIN (labels default to the recorded
    ones)."""
    # Late: the PKCS#11 library is loaded by installations whose root of trust is a token only.
    from openkms.crypto.pkcs11 import Pkcs11Kek

    module = settings.pkcs11_module or config.get("module")
    token_label = settings.pkcs11_token_label or config.get("token_label")
    key_label = settings.pkcs11_key_label or config.get("key_label") or "openkms-root"
    if not module or not token_label:
        raise RootOfTrustError("the pkcs11 root of trust needs --pkcs11-module and --pkcs11-token-label")
    if settings.pkcs11_pin is None:
        raise RootOfTrustError(
            "the pkcs11 root of trust needs the token's PIN (--pkcs11-pin-file or OPENKMS_PKCS11_PIN)"
        )
    with token_errors():
        return Pkcs11Kek(str(module), str(token_label), str(key_label), settings.pkcs11_pin, create=create)


@contextmanager
def token_errors() -> Iterator[None]:
    """A PKCS#11 token failing (its module, its session, its key) as a :class:`RootOfTrustError`."""
    from openkms.crypto.pkcs11 import Pkcs11Error

    try:
        yield
    except Pkcs11Error as exc:
        raise RootOfTrustError(str(exc)) from None


def pkcs11_config(settings: Settings, kek: Kek) -> dict[str, Any]:
    return {
        "module": settings.pkcs11_module,
        "token_label": settings.pkcs11_token_label,
        "key_label": getattr(kek, "key_label", settings.pkcs11_key_label),
    }


def threshold_of(config: dict[str, Any]) -> int:
    """The number of shares that rebuild a ``shamir`` installation's root key (as recorded)."""
    value = config.get("threshold")
    return value if isinstance(value, int) and value >= 1 else 1


def shamir_kek(shares: Sequence[shamir.Share]) -> AesKek:
    """The root key rebuilt from ``shares`` (checked only by opening the keyring with it)."""
    try:
        raw = shamir.combine(shares)
    except shamir.ShareError as exc:
        raise RootOfTrustError(str(exc)) from None
    if len(raw) != ROOT_KEY_BYTES:
        raise RootOfTrustError("these shares are not of this installation's root key")
    return AesKek(raw, source="shamir")


def kek_from_share_texts(texts: Sequence[str], config: dict[str, Any]) -> AesKek:
    """The root key of a ``shamir`` installation from shares in their text form (offline tools)."""
    try:
        shares = [shamir.Share.from_text(text) for text in texts]
    except shamir.ShareError as exc:
        raise RootOfTrustError(str(exc)) from None
    threshold = threshold_of(config)
    if len({s.x for s in shares}) < threshold:
        raise RootOfTrustError(f"this installation needs {threshold} distinct shares, got {len(shares)}")
    return shamir_kek(shares)


def init_shamir(store: Store, shares: int, threshold: int, now: float) -> tuple[list[str], Trust]:
    """Make a new installation sealed by Shamir shares: a random root key split into ``shares`` shares
    (their text forms, returned once and kept nowhere) wrapping a new keyring, and its open barrier.
    Refuses a store that has a keyring or anything sealed already."""
    shamir.check_parameters(shares, threshold)
    if trust.stored(store) is not None or trust.has_sealed_rows(store):
        raise RootOfTrustError(
            "this installation is initialized already (it has a keyring or sealed data): "
            "openkms operator rekey changes its root of trust"
        )
    raw = os.urandom(ROOT_KEY_BYTES)
    texts = [share.to_text() for share in shamir.split(raw, shares, threshold)]
    kek = AesKek(raw, source="shamir")
    config = {"shares": shares, "threshold": threshold}
    ring = trust.create_keyring(store, kek, Keyring.new(), config, now)
    return texts, _opened(store, kek, ring, config)


def _check_source(settings: Settings, row: KeyringRow) -> None:
    wanted = settings.root_key_source
    if wanted is not None and wanted != row.source:
        raise RootOfTrustError(
            f"this installation's root of trust is {row.source}, not {wanted} "
            "(openkms operator rekey moves it to another)"
        )


def open_trust(store: Store, settings: Settings, clock: Clock | None = None) -> Trust:
    """The barrier of ``store``'s installation, opened (or sealed, for ``shamir``); makes the keyring on
    the first start. Raises :class:`RootOfTrustError` with the reason the process cannot start."""
    now = (clock or SystemClock()).now()
    row = trust.stored(store)
    if row is None:
        return _first_start(store, settings, now)
    _check_source(settings, row)
    config = trust.config_of(row)
    result = Trust(store, RootKey.sealed_barrier(), row.source, config)
    if row.source == "shamir":
        if settings.unseal_shares:  # an offline tool given the shares
            result.open_with(kek_from_share_texts(settings.unseal_shares, config))
        return result  # else sealed until unsealed with shares
    if row.source == "pkcs11":
        kek = pkcs11_kek(settings, config, create=False)
        with token_errors():
            result.open_with(kek)
        return result
    result.open_with(file_kek(settings, create=False))
    return result


def _first_start(store: Store, settings: Settings, now: float) -> Trust:
    source = settings.root_key_source or "file"
    if source == "shamir":
        raise RootOfTrustError(
            "an installation sealed by Shamir shares is made with "
            "`openkms operator init --key-shares N --key-threshold T` (it prints the shares once)"
        )
    legacy = trust.has_sealed_rows(store)
    if source == "pkcs11":
        if legacy:
            raise RootOfTrustError(
                "this installation holds rows sealed under its root key file from before keyrings "
                "existed: start it once with that file (--root-key-source file), then move the root key "
                "into the token with `openkms operator rekey`"
            )
        kek = pkcs11_kek(settings, {}, create=True)
        config = pkcs11_config(settings, kek)
        with token_errors():
            ring = trust.create_keyring(store, kek, Keyring.new(), config, now)
        return _opened(store, kek, ring, config)
    kek_file = file_kek(settings, create=not legacy)
    if legacy:
        # Rows sealed before keyrings existed: the file is the installation's first keyring version.
        raw = read_root_key_file(settings.root_key_path, create=False)
        trust.check_legacy_root_key(store, raw)
        ring = Keyring.adopted(raw)
        log.info("adopting the root key file as the keyring's first version")
    else:
        ring = Keyring.new()
    ring = trust.create_keyring(store, kek_file, ring, {}, now)
    return _opened(store, kek_file, ring, {})


def _opened(store: Store, kek: Kek, ring: Keyring, config: dict[str, Any]) -> Trust:
    result = Trust(store, RootKey.from_keyring(ring), kek.source, config, kek)
    return result
