"""Files on disk: whatever the umask, a new data directory is 0700 and the database, its WAL and
every key or credential file 0600; a data directory open to others is warned about."""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import OPENKMS, Server, free_port


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_are_private_whatever_the_umask(workdir: Path) -> None:
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="files-")) / "data"
    server = Server(data_dir=data_dir, database_url=None, extra_args=["--tls-self-signed"])
    server.ca_bundle = str(data_dir / "tls" / "ca.pem")
    old = os.umask(0)  # the server inherits a umask that would make everything world-writable
    try:
        server.start()
    finally:
        os.umask(old)
    try:
        creds = server.new_account()
        server.access_key, server.secret_key = creds["AccessKeyId"], creds["SecretAccessKey"]
        server.client().create_key()  # the database and its WAL have been written
        assert _mode(data_dir) == 0o700
        for name in ("openkms.db", "openkms.db-wal", "root.key", "admin-credentials.env"):
            assert _mode(data_dir / name) == 0o600, name
        assert _mode(data_dir / "tls") == 0o700
        for name in ("ca-key.pem", "server-key.pem"):
            assert _mode(data_dir / "tls" / name) == 0o600, name
    finally:
        server.stop()


def test_a_data_directory_open_to_others_is_warned_about(workdir: Path) -> None:
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="files-open-"))
    os.chmod(data_dir, 0o755)  # noqa: S103 - the permissive mode is the case under test
    server = Server(data_dir=data_dir, database_url=None)
    server.start()
    try:
        assert server.log_path is not None
        assert f"data directory {data_dir} is open to other users (mode 0o755)" in server.log_path.read_text()
    finally:
        server.stop()


def test_a_root_key_readable_by_others_refuses_to_start(workdir: Path) -> None:
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="files-key-"))
    (data_dir / "root.key").write_bytes(os.urandom(32))
    os.chmod(data_dir / "root.key", 0o644)
    result = subprocess.run(
        [OPENKMS, "serve", "--data-dir", str(data_dir), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "must not be readable by others" in result.stderr
