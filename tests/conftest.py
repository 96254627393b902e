"""Shared fixtures: real ``openkms serve`` processes on free ports, against SQLite and PostgreSQL.

Nothing of the project is mocked: tests talk to the server over HTTP with boto3, the AWS CLI and
openssl. PostgreSQL tests need ``OPENKMS_TEST_DATABASE_URL`` (the README's test command sets it up
by starting the machine's PostgreSQL); under CI its absence is an error, never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest
from botocore.config import Config

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
OPENKMS = str(BIN / "openkms")
REGION = "us-east-1"
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_admin_url() -> str | None:
    url = os.environ.get("OPENKMS_TEST_DATABASE_URL")
    if not url and os.environ.get("CI"):
        raise RuntimeError(
            "OPENKMS_TEST_DATABASE_URL must be set under CI: PostgreSQL tests may not be skipped"
        )
    return url


def create_pg_database() -> str:
    """A new, empty database on the test PostgreSQL server; returns its URL."""
    import psycopg

    admin = pg_admin_url()
    if admin is None:
        pytest.skip("OPENKMS_TEST_DATABASE_URL is not set (the README's test command sets it)")
    name = "openkms_t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin.rpartition("/")
    return f"{base}/{name}"


def drop_pg_database(url: str) -> None:
    import psycopg

    admin = pg_admin_url()
    assert admin is not None
    name = url.rpartition("/")[2]
    # An autovacuum worker on the database has no role, and PostgreSQL 15 refuses to terminate it
    # unless the role is in pg_signal_backend (the test command grants it); it leaves within moments,
    # so a refusal is retried rather than failing the teardown.
    for attempt in range(50):
        try:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except psycopg.errors.InsufficientPrivilege:
            if attempt == 49:
                raise
            time.sleep(0.1)


@dataclass
class Server:
    """One ``openkms serve`` subprocess and the credentials of its first account."""

    data_dir: Path
    database_url: str | None
    port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    account_id: str = ""
    access_key: str = ""
    secret_key: str = ""
    log_path: Path | None = None
    # Set for a server started with TLS: the CA clients verify it with (boto3 verify=, AWS_CA_BUNDLE).
    ca_bundle: str | None = None
    # What a test module made once for this server (see ``once``): it lives and dies with the server,
    # so a later server can never be handed an earlier one's accounts (an id() or a port can be reused).
    made: dict[str, Any] = field(default_factory=dict)

    def once(self, what: str, make: Callable[[], T]) -> T:
        """``make()`` the first time ``what`` is asked of this server, the same value afterwards."""
        if what not in self.made:
            self.made[what] = make()
        value: T = self.made[what]
        return value

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.ca_bundle else 'http'}://127.0.0.1:{self.port}"

    def data_args(self) -> list[str]:
        args = ["--data-dir", str(self.data_dir)]
        if self.database_url:
            args += ["--database-url", self.database_url]
        return args

    def start(self) -> None:
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(
            [OPENKMS, "serve", "--port", str(self.port), *self.data_args(), *self.extra_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"openkms exited: {self.log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"openkms did not start: {self.log_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def admin(self, *args: str) -> Any:
        """Run ``openkms admin …`` on this server's data; JSON output parsed."""
        out = subprocess.run(
            [OPENKMS, "admin", *args, *self.data_args(), "--json"],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
        ).stdout
        return json.loads(out)

    def new_account(self, account_id: str | None = None) -> dict[str, str]:
        args = ["create-account"] + (["--account-id", account_id] if account_id else [])
        result: dict[str, str] = self.admin(*args)
        return result

    def client(
        self,
        service: str = "kms",
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str = REGION,
        **config: Any,
    ) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=region,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(**{"retries": {"max_attempts": 1}, **config}),
            verify=self.ca_bundle if self.ca_bundle else None,
        )

    def cli_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL_KMS": self.endpoint,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            **({"AWS_CA_BUNDLE": self.ca_bundle} if self.ca_bundle else {}),
        }

    def aws(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the AWS CLI against this server (``aws kms … --endpoint-url``)."""
        return subprocess.run(
            [str(BIN / "aws"), *args, "--endpoint-url", self.endpoint, "--output", "json"],
            capture_output=True,
            text=True,
            env=self.cli_env(),
            check=check,
        )


def launch(data_dir: Path, database_url: str | None, **kw: Any) -> Server:
    server = Server(data_dir=data_dir, database_url=database_url, **kw)
    server.start()
    creds = server.new_account()
    server.account_id = creds["AccountId"]
    server.access_key = creds["AccessKeyId"]
    server.secret_key = creds["SecretAccessKey"]
    return server


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="openkms-tests-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _new_server(workdir: Path, backend: str, **kw: Any) -> tuple[Server, str | None]:
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix=f"{backend}-"))
    url = create_pg_database() if backend == "postgres" else None
    return launch(data_dir, url, **kw), url


@pytest.fixture(scope="session")
def server(workdir: Path, backend: str) -> Iterator[Server]:
    """A server shared by the tests of one backend (tests create their own keys)."""
    srv, url = _new_server(workdir, backend)
    yield srv
    srv.stop()
    if url:
        drop_pg_database(url)


@pytest.fixture
def own_server(workdir: Path, backend: str) -> Iterator[Server]:
    """A server of the test's own, for restarts, crashes and clock changes."""
    srv, url = _new_server(workdir, backend)
    yield srv
    srv.stop()
    if url:
        drop_pg_database(url)


@pytest.fixture(scope="module")
def twin(server: Server) -> Iterator[Server]:
    """A second ``openkms serve`` process on the shared server's database and root key."""
    other = Server(data_dir=server.data_dir, database_url=server.database_url)
    other.start()
    other.account_id, other.access_key, other.secret_key = (
        server.account_id,
        server.access_key,
        server.secret_key,
    )
    yield other
    other.stop()


@pytest.fixture
def kms(server: Server) -> Any:
    return server.client()
