"""Backing up, restoring and moving an installation (``openkms backup``, ``restore``, ``migrate``): the
root of trust's side of the backup files of :mod:`openkms.storage.backup`.

A backup is made from an open installation (its root key opens the keyring: the HMAC key and the
fingerprint come from it) and written atomically (a private temporary file beside the target, renamed).
A restore checks, before writing anything: the file's SHA-256 (damage, truncation), that the root key
given opens the backup's keyring (the holder named by the backup: a root key file, a PKCS#11 token's
key, or Shamir shares), and the HMAC under the keyring's backup key (tampering); then it restores onto
an empty target in one transaction.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from openkms.config import Settings
from openkms.crypto.envelope import Kek, RootKey
from openkms.server.root_of_trust import file_kek, kek_from_share_texts, open_trust, pkcs11_kek
from openkms.server.runtime import DB_FILE, prepare_data_dir
from openkms.service.trust import keyring as trust
from openkms.service.trust.keyring import RootOfTrustError
from openkms.storage.backup import (
    FORGED,
    TAMPERED,
    BackupError,
    Check,
    Header,
    check,
    read_header,
    restore_backup,
    write_backup,
)
from openkms.storage.store import Store

__all__ = ["BackupError", "Check", "Header", "RootOfTrustError"]

Progress = Callable[[int, int], None]  # (rows done, rows in all)


@dataclass(frozen=True)
class Restored:
    header: Header
    rows: dict[str, int]


def open_source(settings: Settings) -> tuple[Store, RootKey]:
    """The installation to back up and its open barrier; never makes one (an empty target is refused)."""
    if settings.database_url is None and not (settings.data_dir / DB_FILE).exists():
        raise BackupError(f"there is no openkms installation in {settings.data_dir}")
    store = Store(settings.db_url)
    try:
        if trust.stored(store) is None:
            raise BackupError("this installation has no keyring (it was never started): nothing to back up")
        opened = open_trust(store, settings)
        if opened.sealed:
            opened.open_with(holder(settings, opened.source, opened.config))
        return store, opened.root
    except BaseException:
        store.close()
        raise


def backup_to(store: Store, root: RootKey, out: IO[bytes], progress: Progress | None = None) -> Header:
    return write_backup(store, out, key=root.backup_key(), fingerprint=root.fingerprint, progress=progress)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """A new private file (mode 0600) that replaces ``path`` only once completely written."""
    directory = path.resolve().parent
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def create(settings: Settings, out: Path, progress: Progress | None = None) -> Header:
    """Back up the installation of ``settings`` into the file ``out`` (written atomically)."""
    store, root = open_source(settings)
    try:
        with atomic_file(out) as f:
            return backup_to(store, root, f, progress)
    finally:
        store.close()


def holder(settings: Settings, source: str, config: dict[str, Any]) -> Kek:
    """The root key's holder of an installation whose root of trust is ``source`` (``config``: what
    its keyring row records), from the root key options of ``settings``."""
    if settings.root_key_source is not None and settings.root_key_source != source:
        raise RootOfTrustError(
            f"this installation's root of trust is {source}, not {settings.root_key_source}"
        )
    if source == "file":
        return file_kek(settings, create=False)
    if source == "pkcs11":
        return pkcs11_kek(settings, config, create=False)
    if source == "shamir":
        # The key rebuilt from the installation's shares, when the settings give them.
        if settings.unseal_shares:
            return kek_from_share_texts(settings.unseal_shares, config)
        raise RootOfTrustError(
            "this installation is sealed by Shamir shares: give enough of them with --unseal-share "
            "(repeatable; --unseal-share - reads them from standard input)"
        )
    raise BackupError(f"the backup names an unknown root of trust {source[:32]!r}")


def backup_kek(settings: Settings, header: Header) -> Kek:
    """What opens the backup's keyring: the root key of the source it names, from ``settings``."""
    row = header.keyring
    try:
        config = trust.config_of(row)
    except ValueError:
        raise BackupError("the backup file's header is damaged (its keyring's settings)") from None
    return holder(settings, row.source, config)


def open_backup_keyring(settings: Settings, header: Header) -> RootKey:
    """The backup's keyring opened with the root key of ``settings`` (RootOfTrustError: it does not)."""
    ring = trust.unwrap(header.keyring, backup_kek(settings, header))
    root = RootKey.from_keyring(ring)
    if root.fingerprint != header.fingerprint:
        raise BackupError("the backup's header names another installation than its keyring")
    return root


def verify(f: IO[bytes], settings: Settings) -> tuple[Header, Check]:
    """The header of the backup ``f`` once its SHA-256, its keyring (opened by the root key of
    ``settings``) and its HMAC are checked; raises with the first that fails."""
    f.seek(0)
    header = read_header(f)
    refusal: RootOfTrustError | None = None
    key: bytes | None = None
    try:
        key = open_backup_keyring(settings, header).backup_key()
    except RootOfTrustError as exc:
        refusal = exc
    f.seek(0)
    _, result = check(f, key)
    if not result.sha256_ok:
        raise BackupError(TAMPERED)
    if refusal is not None:
        raise refusal
    if not result.hmac_ok:
        raise BackupError(FORGED)
    return header, result


def restore(settings: Settings, f: IO[bytes], progress: Progress | None = None) -> Restored:
    """Restore the backup ``f`` onto the empty installation of ``settings`` (its data directory or
    database), checked first: nothing is written unless the file is intact and the root key opens it."""
    header, result = verify(f, settings)
    prepare_data_dir(settings)
    total = header.total_rows
    f.seek(0)
    rows = restore_backup(
        settings.db_url,
        f,
        header=header,
        want_sha256=result.sha256,
        progress=None if progress is None else (lambda done: progress(done, total)),
    )
    return Restored(header, rows)


def migrate(source: Settings, target: Settings, progress: Progress | None = None) -> Restored:
    """Move the installation of ``source`` onto the empty one of ``target`` (a backup and a restore
    through a private temporary file, deleted when done)."""
    store, root = open_source(source)
    try:
        with tempfile.TemporaryFile() as f:
            backup_to(store, root, f, None if progress is None else (lambda d, t: progress(d, 2 * t)))
            store.close()
            f.seek(0)
            total = read_header(f).total_rows
            return restore(target, f, None if progress is None else (lambda d, t: progress(total + d, 2 * t)))
    finally:
        store.close()
