"""Wiring: builds the store, root key, caches, audit writer, change feed and scheduler from settings,
and bootstraps the default account on first start."""

from __future__ import annotations

import functools
import logging
import os
import ssl
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from openkms.audit.cloudtrail_files import DigestSigner
from openkms.audit.export import ContinuousExport
from openkms.audit.writer import AuditWriter, LineSink
from openkms.auth.policy import PolicyCache
from openkms.clock import Clock, SystemClock, clock_from_env
from openkms.config import DEFAULT_REGION, Settings
from openkms.crypto.envelope import RootKey
from openkms.crypto.keypair_pool import KeyPairPool, targets_from_env
from openkms.domain.quotas import QuotaTable, aws_default, parse_quotas
from openkms.scheduler.runner import Scheduler
from openkms.server.root_of_trust import Trust, open_trust
from openkms.service.identity import principals
from openkms.service.identity.credentials import CredentialCache
from openkms.service.identity.policies import IdentityPolicyCache
from openkms.service.identity.principals import NewAccessKey
from openkms.service.kms import importing, keys, multi_region, rotation
from openkms.service.kms.authz import KmsAuthorizer
from openkms.service.kms.core import KmsCore
from openkms.service.kms.keycache import KeyCache
from openkms.service.kms.xks_client import XksClient, trust_context
from openkms.service.trail import digests as trail_digests
from openkms.service.trail import signing as trail_signing
from openkms.service.trail.digests import ExportedUntil
from openkms.service.trust import rotation as root_rotation
from openkms.service.trust.keyring import RootOfTrustError
from openkms.storage.store import ChangeFeed, Store

log = logging.getLogger("openkms.runtime")

CREDENTIALS_FILE = "admin-credentials.env"
DB_FILE = "openkms.db"
SESSION_RETENTION = 86400.0  # expired STS sessions answer ExpiredToken for a day, then are forgotten
RESEAL_SHARE = 0.5  # seconds of a scheduler tick a running root key rotation's re-sealing may take
CHANGE_RETENTION = 3600.0  # the change log keeps an hour (of wall-clock time) for other processes' feeds


@dataclass
class Runtime:
    """Everything one server process holds, built from its settings by :func:`build_runtime` (no
    module keeps state of its own beyond pure memos and the process's buffer of random bytes,
    ``crypto/randomness.py``). The caches are invalidated by the store's local changes and the change
    feed; :meth:`start` and :meth:`stop` run the threads (the key-pair pool's refill, the audit
    writer, the change feed, the scheduler).

    ``core`` (the KMS service core) holds the key cache, the key-pair pool, the listing markers' key
    and the authorizer, which reads ``policies`` (principals' identity policies) and ``documents``
    (parsed policy documents); the IAM code gets the same two in its ``IamContext``.

    ``clock`` is the service clock, ``wall`` the real time clients sign with and other processes
    share (:mod:`openkms.clock`).

    ``observe_request`` is set when the process serves metrics (``server/metrics.py``): every entry
    point calls it once per request with the API, the operation (a modeled name or ``Unknown``), the
    outcome (``ok`` or the error code answered) and the seconds the request took."""

    settings: Settings
    store: Store
    trust: Trust  # the barrier (``trust.root``) and what opened it
    root: RootKey
    clock: Clock
    wall: Clock
    core: KmsCore
    creds: CredentialCache
    policies: IdentityPolicyCache
    documents: PolicyCache
    audit: AuditWriter
    feed: ChangeFeed
    scheduler: Scheduler
    keypairs: KeyPairPool
    started: bool = field(default=False)
    observe_request: Callable[[str, str, str, float], None] | None = None
    export: ContinuousExport | None = None  # --audit-export-dir
    # Set by the continuous audit export: the time up to which a chain's (account, Region) records were
    # exported; retention prunes nothing newer (service/trail/digests.prune_before).
    audit_exported_until: ExportedUntil | None = None

    def start(self) -> None:
        self.keypairs.start(targets_from_env(self.settings.keypair_pool))
        self.audit.start()
        self.feed.start()
        self.scheduler.start()
        self.started = True

    def stop(self) -> None:
        if not self.started:
            return
        self.scheduler.stop()
        self.keypairs.stop()
        self.feed.stop()
        self.audit.close()
        self.digest_audit()  # a clean shutdown signs what the last digest does not cover
        if self.export is not None and not self.trust.sealed:
            try:  # a clean shutdown delivers what is stored, and a digest of the files written
                self.export.run(final=True)
            except Exception:
                log.exception("audit export at shutdown failed (the next start delivers it)")
        self.store.close()
        self.started = False

    def digest_audit(self, every: float | None = None) -> None:
        """Sign a digest of every audit chain with new records (with ``every``: whose last digest is that
        many seconds old); not while sealed."""
        if self.trust.sealed:
            return
        try:
            trail_digests.make_digests(self.store, self.root, self.clock.now(), every=every)
        except Exception:
            log.exception("audit digest failed")

    def prune_audit(self) -> None:
        """Retention: prune the records older than ``--audit-retention-days`` (none when unset)."""
        days = self.settings.audit_retention_days
        if days is None or self.trust.sealed:
            return
        now = self.clock.now()
        trail_digests.prune_before(self.store, self.root, now - days * 86400, now, self.audit_exported_until)


def prepare_data_dir(settings: Settings) -> None:
    """Every file this process creates (database, WAL, keys, certificates) is private to its user,
    whatever the umask; a new data directory is made 0700, an existing one open to others is
    warned about (and the database files in it are made 0600)."""
    os.umask(0o077)
    if settings.database_url is not None:
        return
    directory = settings.data_dir
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)
        os.chmod(directory, 0o700)
        return
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & 0o077:
        log.warning("data directory %s is open to other users (mode %s); chmod 700 it", directory, oct(mode))
    for name in (DB_FILE, DB_FILE + "-wal", DB_FILE + "-shm", DB_FILE + "-journal"):
        path = directory / name
        if path.exists() and stat.S_IMODE(path.stat().st_mode) & 0o077:
            os.chmod(path, 0o600)


def load_quotas(settings: Settings) -> QuotaTable | None:
    """The request quotas of ``--request-quotas`` (a file, or ``aws-default``); None when off."""
    value = settings.request_quotas
    if not value:
        return None
    if value == "aws-default":
        return aws_default(settings.quota_processes)
    table = parse_quotas(Path(value).read_text(encoding="utf-8"))
    if table.processes == 1 and settings.quota_processes > 1:
        table = QuotaTable(table.rates, table.by_region, settings.quota_processes)
    return table


def open_trusted_store(settings: Settings, wall: Clock | None = None) -> tuple[Store, Trust]:
    """The store (its change log stamped by ``wall``, the real clock unless given) and its barrier,
    opened unless the installation is sealed by Shamir shares (RootOfTrustError: it cannot be opened)."""
    prepare_data_dir(settings)
    store = Store(settings.db_url, wall if wall is not None else SystemClock())
    try:
        return store, open_trust(store, settings, wall)
    except BaseException:
        store.close()
        raise


def open_store(settings: Settings, wall: Clock | None = None) -> tuple[Store, RootKey]:
    """The store and its open barrier, for tools working on the data directly (RootOfTrustError when it
    cannot be opened, or is sealed)."""
    store, trust = open_trusted_store(settings, wall)
    if trust.sealed:
        store.close()
        raise RootOfTrustError(
            "this installation is sealed by Shamir shares: give enough of its shares with --unseal-share "
            "(repeatable; --unseal-share - reads them from standard input, one a line)"
        )
    return store, trust.root


def _xks_trust(settings: Settings) -> Callable[[], ssl.SSLContext]:
    """What the XKS client trusts: the system's store, ``--xks-ca-bundle`` files and, when it exists, the
    CA ``--tls-self-signed`` made in this data directory (so openkms servers sharing it trust each other).

    The bundles are read now, so that a file that is not PEM stops the start; the context itself (with
    the system's store, tens of milliseconds to load) is made on the first call to a proxy."""
    own_ca = settings.data_dir / "tls" / "ca.pem"
    files = [*settings.xks_ca_bundles, *([str(own_ca)] if own_ca.is_file() else [])]
    check = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for path in files:
        check.load_verify_locations(cafile=path)
    return functools.partial(trust_context, files)


def build_runtime(settings: Settings, clock: Clock | None = None, wall: Clock | None = None) -> Runtime:
    """The runtime of ``settings``; the service clock is :func:`openkms.clock.clock_from_env`'s and the
    wall clock the system's unless given."""
    clock = clock if clock is not None else clock_from_env()
    wall = wall if wall is not None else SystemClock()
    store, trust = open_trusted_store(settings, wall)
    root = trust.root
    cache = KeyCache(settings.key_cache_size)
    keypairs = KeyPairPool()
    creds = CredentialCache(store, root)
    policies = IdentityPolicyCache(store)
    documents = PolicyCache()
    authorizer = KmsAuthorizer(store, root.token_key, policies, documents)
    xks = XksClient(timeout=settings.xks_client_timeout, trust=_xks_trust(settings), wall=wall)
    core = KmsCore(
        store=store,
        root=root,
        clock=clock,
        cache=cache,
        keypairs=keypairs,
        authorizer=authorizer,
        region_ok=settings.region_ok,
        xks=xks,
    )

    def on_changes(changes: object) -> None:
        if any(kind == "keyring" for kind, _ in changes):  # type: ignore[attr-defined]
            trust.reload()  # a rotation's new version: new seals use it at once
        cache.invalidate(changes)  # type: ignore[arg-type]
        creds.invalidate(changes)  # type: ignore[arg-type]
        policies.invalidate(changes)  # type: ignore[arg-type]

    def on_reset() -> None:
        trust.reload()
        cache.clear()
        creds.clear()
        policies.clear()

    store.add_listener(on_changes)
    feed = ChangeFeed(store, on_changes, on_reset)

    def prune() -> None:
        with store.write() as tx:
            tx.prune_changes(wall.now() - CHANGE_RETENTION)

    def purge_sessions() -> None:
        with store.write() as tx:
            tx.purge_sessions(clock.now() - SESSION_RETENTION)

    resealer = root_rotation.Resealer(store, lambda: trust.kek, wall.now)

    stuck: list[str] = []  # the reason the rotation cannot go on, logged once

    def reseal_root_key() -> None:
        # A root key rotation's background re-sealing: one read of the keyring row a tick unless one runs.
        if trust.sealed:
            return
        try:
            resealer.work(RESEAL_SHARE)
        except root_rotation.RotationError as exc:
            if str(exc) not in stuck:
                stuck.append(str(exc))
                log.error("root key rotation: %s", exc)

    export = None
    jobs = []
    if settings.audit_export_dir is not None:
        export = ContinuousExport(
            store,
            Path(settings.audit_export_dir),
            lambda region: digest_signer(store, trust, region, wall.now()),
            wall.now,
            settings.audit_digest_interval,
            settings.audit_export_lease,
            settings.audit_export_margin,
        )
        jobs.append(("audit-export", export.run, settings.audit_export_interval))

    digest_check = min(60.0, settings.audit_digest_interval)
    scheduler = Scheduler(
        [
            # Due work is checked every tick (reads only, unless something is due)...
            ("delete-keys", lambda: keys.delete_due_keys(core), 0),
            ("rotate-keys", lambda: rotation.rotate_due_keys(core), 0),
            ("expire-material", lambda: importing.expire_due_material(core), 0),
            ("sync-multi-region", lambda: multi_region.sync_due_keys(core, settings.multi_region_delay), 0),
            ("reseal-root-key", reseal_root_key, 0),
            # ...housekeeping writes once a minute.
            ("purge-import-parameters", lambda: importing.purge_import_parameters(core), 60),
            ("prune-changes", prune, 60),
            ("purge-sessions", purge_sessions, 60),
            # ...and the audit chains' signed digests, then retention (pruning digested records only).
            ("audit-digest", lambda: runtime.digest_audit(settings.audit_digest_interval), digest_check),
            ("audit-retention", lambda: runtime.prune_audit(), digest_check),
            *jobs,
        ],
        settings.scheduler_interval,
        paused=lambda: trust.sealed,  # nothing sealed can be read or written while sealed
    )
    audit = AuditWriter(store)
    if settings.audit_stdout:
        audit.on_stored = LineSink(sys.stdout.buffer)
    runtime = Runtime(
        settings=settings,
        store=store,
        trust=trust,
        root=root,
        clock=clock,
        wall=wall,
        core=core,
        creds=creds,
        policies=policies,
        documents=documents,
        audit=audit,
        feed=feed,
        scheduler=scheduler,
        keypairs=keypairs,
        export=export,
    )
    if export is not None:  # retention prunes only what the export delivered
        runtime.audit_exported_until = export.exported_until
    return runtime


def digest_signer(store: Store, trust: Trust, region: str, now: float) -> DigestSigner | None:
    """The key signing the Region's exported digest files: the audit trail's signing key of the Region
    (None while the installation is sealed)."""
    if trust.sealed:
        return None
    return trail_signing.signer(store, trust.root, region, now)


def bootstrap(runtime: Runtime) -> NewAccessKey | None:
    """Create the default account and its administrator key on the first start; None later."""
    with runtime.store.read() as tx:
        if tx.list_accounts():
            return None
    try:
        return principals.create_account(
            runtime.store, runtime.root, runtime.clock.now(), runtime.settings.account_id
        )
    except principals.PrincipalError:
        return None  # another process bootstrapped the same database a moment ago


def export_lines(new: NewAccessKey, endpoint: str, region: str = DEFAULT_REGION) -> list[str]:
    return [
        f"export AWS_ACCESS_KEY_ID={new.access_key_id}",
        f"export AWS_SECRET_ACCESS_KEY={new.secret_access_key.reveal()}",
        f"export AWS_ENDPOINT_URL_KMS={endpoint}",
        f"export AWS_DEFAULT_REGION={region}",
    ]


def write_credentials_file(data_dir: Path, lines: list[str]) -> Path:
    path = data_dir / CREDENTIALS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path
