"""Settings of a server or CLI invocation: flags first, then ``OPENKMS_*`` environment variables.

A few settings have no flag and are read only from the environment, once, when a command makes its
settings (:func:`environment_settings`); nothing else in the package reads the environment for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openkms.arns import is_region

DEFAULT_PORT = 8730
DEFAULT_REGION = "us-east-1"
# Threads of a server process running requests (the database connection pool is sized from it).
WORKER_THREADS = 16
CONSOLE_IDLE_TIMEOUT = 1800.0  # 30 minutes
CONSOLE_SESSION_LIFETIME = 12 * 3600.0
#: The settings read only from the environment, by the variable that sets each.
ENVIRONMENT_ONLY = {
    "OPENKMS_KEYPAIR_POOL": "keypair_pool",
    "OPENKMS_CONSOLE_IDLE_TIMEOUT": "console_idle_timeout",
    "OPENKMS_CONSOLE_SESSION_LIFETIME": "console_session_lifetime",
    # Seconds between the background jobs' ticks (key deletion and rotation, re-sealing after a root key
    # rotation, housekeeping).
    "OPENKMS_SCHEDULER_INTERVAL": "scheduler_interval",
    # Seconds between the signed digests: of the audit chains (service/trail/digests.py; also how often
    # retention, --audit-retention-days, prunes) and of the exported digest files (--audit-export-dir;
    # CloudTrail's hour).
    "OPENKMS_AUDIT_DIGEST_INTERVAL": "audit_digest_interval",
    # The audit export (--audit-export-dir): seconds between log files (CloudTrail's 5 minutes), and the
    # exporters' lease (another process takes the export over when the holder has not renewed it for
    # this long).
    "OPENKMS_AUDIT_EXPORT_INTERVAL": "audit_export_interval",
    "OPENKMS_AUDIT_EXPORT_LEASE": "audit_export_lease",
    # Retention keeps the records of this many seconds before the oldest not yet exported (calls still
    # running when the export read the trail).
    "OPENKMS_AUDIT_EXPORT_MARGIN": "audit_export_margin",
}


@dataclass
class Settings:
    data_dir: Path = Path("./openkms-data")
    database_url: str | None = None
    root_key_file: Path | None = None
    # The root of trust (openkms.service.trust): file, pkcs11 or shamir, chosen at the first start and
    # recorded with the keyring (None: as recorded, ``file`` for a new installation); the PKCS#11
    # token's module, labels and PIN for ``pkcs11``.
    root_key_source: str | None = None
    pkcs11_module: str | None = None
    pkcs11_token_label: str | None = None
    pkcs11_key_label: str | None = None
    pkcs11_pin: str | None = field(default=None, repr=False)
    # Shares of a ``shamir`` installation for the tools working on the data offline (``--unseal-share``,
    # cli/options.py); the server never takes them here, only through ``POST /sys/unseal``.
    unseal_shares: list[str] = field(default_factory=list, repr=False)
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    regions: list[str] = field(default_factory=list)  # empty: answer every well-formed region
    account_id: str | None = None
    scheduler_interval: float = 1.0
    # The audit trail: seconds between signed digests, and the days records are kept (None: forever).
    audit_digest_interval: float = 3600.0
    audit_retention_days: float | None = None
    # Keys (with their unsealed material) one process keeps in memory, least recently used evicted.
    key_cache_size: int = 10_000
    # The audit trail as CloudTrail log and digest files in this directory (None: off), and each record
    # as a JSON line on standard output (openkms.audit.export, openkms.audit.writer).
    audit_export_dir: str | None = None
    audit_export_interval: float = 300.0
    audit_export_lease: float = 60.0
    audit_export_margin: float = 60.0
    audit_stdout: bool = False
    # The network edge (server/edge.py): trusted proxies' networks and the quotas document
    # ("aws-default" or a file's path) with the number of processes sharing the budgets.
    trusted_proxies: list[str] = field(default_factory=list)
    request_quotas: str | None = None
    quota_processes: int = 1
    # Seconds a new multi-Region replica stays Creating, and the keys of an UpdatePrimaryRegion stay
    # Updating, before the background job ends the state (AWS: "a few seconds").
    multi_region_delay: float = 1.0
    # The sizes of the pre-generated RSA key-pair pool, as ``OPENKMS_KEYPAIR_POOL`` gives them (parsed by
    # crypto/keypair_pool.targets_from_env when the runtime starts the pool; None: the default sizes).
    keypair_pool: str | None = None
    # Console sessions end after this many seconds without a request, or this long after sign-in.
    console_idle_timeout: float = CONSOLE_IDLE_TIMEOUT
    console_session_lifetime: float = CONSOLE_SESSION_LIFETIME
    # The XKS proxy (server/xks_app.py): seconds a call may wait for the database before it is answered
    # DependencyTimeoutException.
    xks_timeout: float = 1.0
    # External key stores (service/kms/xks_client.py): seconds a call to an XKS proxy may take (AWS's
    # 250 ms), and PEM CA bundles trusted for proxies besides the system's store and this data
    # directory's --tls-self-signed CA (tls/ca.pem).
    xks_client_timeout: float = 0.25
    xks_ca_bundles: list[str] = field(default_factory=list)

    @property
    def root_key_path(self) -> Path:
        return self.root_key_file or self.data_dir / "root.key"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'openkms.db').resolve()}"

    def region_ok(self, region: str) -> bool:
        if self.regions:
            return region in self.regions
        return is_region(region)


def environment_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """The :data:`ENVIRONMENT_ONLY` settings that ``environ`` sets, as keyword arguments of
    :class:`Settings` (a timeout that is not a number raises ValueError)."""
    values: dict[str, Any] = {}
    for variable, name in ENVIRONMENT_ONLY.items():
        value = environ.get(variable)
        if value is None:
            continue
        if name == "keypair_pool":
            values[name] = value
            continue
        try:
            values[name] = float(value)
        except ValueError:
            raise ValueError(f"{variable}: expected a number of seconds, got {value!r}") from None
    return values
