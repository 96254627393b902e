"""Settings of a server or CLI invocation: flags first, then ``OPENKMS_*`` environment variables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from openkms.arns import is_region

DEFAULT_PORT = 8730
DEFAULT_REGION = "us-east-1"
# Threads of a server process running requests (the database connection pool is sized from it).
WORKER_THREADS = 16


@dataclass
class Settings:
    data_dir: Path = Path("./openkms-data")
    database_url: str | None = None
    root_key_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    regions: list[str] = field(default_factory=list)  # empty: answer every well-formed region
    account_id: str | None = None
    scheduler_interval: float = 1.0
    # The network edge (server/edge.py): trusted proxies' networks and the quotas document
    # ("aws-default" or a file's path) with the number of processes sharing the budgets.
    trusted_proxies: list[str] = field(default_factory=list)
    request_quotas: str | None = None
    quota_processes: int = 1
    # The XKS proxy (server/xks_app.py): seconds a call may wait for the database before it is answered
    # DependencyTimeoutException.
    xks_timeout: float = 1.0

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
