"""Benchmark targets: start (or attach to) openkms and moto on loopback, and clean up.

Servers started here run in their own session (process group) with output sent
to a log file in a temporary directory; ``ExitStack`` callbacks terminate the
group (SIGTERM, then SIGKILL) and remove the directory, also on Ctrl-C or error.
Only loopback endpoints are accepted.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

STARTUP_TIMEOUT_S = 60.0


@dataclass
class Target:
    """A KMS endpoint to measure."""

    name: str
    host: str
    port: int
    access_key: str
    secret_key: str
    pid: int | None = None  # server process we started (for CPU accounting), None if external
    command: list[str] = field(default_factory=list)
    log_path: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def parse_loopback_endpoint(url: str) -> tuple[str, int]:
    """Return (host IP, port) of an ``http://`` loopback URL; refuse anything else."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http":
        raise ValueError(f"{url}: only plain http:// endpoints are supported")
    if not parts.hostname or not parts.port:
        raise ValueError(f"{url}: need http://HOST:PORT")
    addr = socket.getaddrinfo(parts.hostname, parts.port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    if not ipaddress.ip_address(addr).is_loopback:
        raise ValueError(f"{url}: only loopback endpoints are allowed (resolved to {addr})")
    return str(addr), parts.port


def http_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if something at host:port answers a request with any HTTP response."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
            return sock.recv(5) == b"HTTP/"
    except OSError:
        return False


def wait_until_answers(host: str, port: int, proc: subprocess.Popen[bytes] | None, what: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before answering")
        if http_answers(host, port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer on {host}:{port} within {STARTUP_TIMEOUT_S:.0f} s")


def log_tail(path: Path | None, lines: int = 20) -> str:
    if path is None or not path.exists():
        return ""
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the process group we created for ``proc`` (its pid is the group id)."""
    if proc.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(grace)
            break
        except subprocess.TimeoutExpired:
            continue
    # reap any stragglers left in the group (e.g. server worker processes)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _spawn(stack: contextlib.ExitStack, cmd: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    log = stack.enter_context(log_path.open("wb"))
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    stack.callback(_stop_process, proc)
    return proc


def _bin(name: str) -> Path:
    """The console script ``name`` next to this interpreter (the venv's bin/)."""
    return Path(sys.executable).parent / name


def start_moto(stack: contextlib.ExitStack, workdir: Path) -> Target:
    port = free_port()
    script = _bin("moto_server")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "moto.server"]
    cmd += ["-H", "127.0.0.1", "-p", str(port)]
    log_path = workdir / "moto.log"
    proc = _spawn(stack, cmd, log_path)
    try:
        wait_until_answers("127.0.0.1", port, proc, "moto_server")
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}\n{log_tail(log_path)}") from None
    return Target("moto", "127.0.0.1", port, "testing", "testing", proc.pid, cmd, log_path)


def start_bare(stack: contextlib.ExitStack, workdir: Path, prefix: str = "") -> Target:
    """Start ``bare_asgi.py`` (uvicorn answering a fixed body; see its docstring) on a free port, behind
    ``prefix`` (e.g. ``taskset -c 0``)."""
    port = free_port()
    script = Path(__file__).with_name("bare_asgi.py")
    cmd = [*shlex.split(prefix), sys.executable, str(script), "--port", str(port)]
    log_path = workdir / "bare.log"
    proc = _spawn(stack, cmd, log_path)
    try:
        wait_until_answers("127.0.0.1", port, proc, "bare ASGI app")
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}\n{log_tail(log_path)}") from None
    return Target("bare", "127.0.0.1", port, "testing", "testing", proc.pid, cmd, log_path)


def openkms_command(override: str | None = None) -> list[str]:
    """How to run openkms: ``override`` (shell-quoted), else this venv's bin/openkms, else ``-m openkms``."""
    if override:
        return shlex.split(override)
    script = _bin("openkms")
    return [str(script)] if script.exists() else [sys.executable, "-m", "openkms"]


# ``serve`` options that ``admin`` needs too, so that both open the same store.
_SHARED_DATA_OPTIONS = ("--database-url", "--root-key-file")


def shared_data_args(serve_args: list[str]) -> list[str]:
    """The store-selecting options (``--database-url``, ``--root-key-file``) among ``serve_args``."""
    out: list[str] = []
    for n, arg in enumerate(serve_args):
        name = arg.split("=", 1)[0]
        if name not in _SHARED_DATA_OPTIONS:
            continue
        if "=" in arg:
            out.append(arg)
        elif n + 1 < len(serve_args):
            out += [arg, serve_args[n + 1]]
    return out


def start_openkms(
    stack: contextlib.ExitStack,
    workdir: Path,
    serve_args: str = "",
    admin_args: str | None = None,
    command: str | None = None,
) -> Target:
    """Start ``openkms serve`` on a free loopback port with a fresh data dir, and create an account.

    ``admin_args`` defaults to the ``--database-url``/``--root-key-file`` options found in ``serve_args``.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="data-", dir=workdir))
    port = free_port()
    base = openkms_command(command)
    cmd = [*base, "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
    extra = shlex.split(serve_args)
    cmd += extra
    admin_extra = shared_data_args(extra) if admin_args is None else shlex.split(admin_args)
    log_path = workdir / "openkms.log"
    proc = _spawn(stack, cmd, log_path)
    try:
        wait_until_answers("127.0.0.1", port, proc, "openkms serve")
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}\ncommand: {shlex.join(cmd)}\n{log_tail(log_path)}") from None
    admin = [
        *base,
        "admin",
        "create-account",
        "--data-dir",
        str(data_dir),
        "--json",
        *admin_extra,
    ]
    out = subprocess.run(admin, capture_output=True, text=True, timeout=STARTUP_TIMEOUT_S, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{shlex.join(admin)} failed ({out.returncode}):\n{out.stderr.strip()}")
    account = _parse_account(out.stdout)
    return Target(
        "openkms",
        "127.0.0.1",
        port,
        account["AccessKeyId"],
        account["SecretAccessKey"],
        proc.pid,
        cmd,
        log_path,
    )


def _parse_account(stdout: str) -> dict[str, str]:
    """Read the JSON object printed by ``openkms admin create-account --json``."""
    candidates = [stdout.strip(), *(line.strip() for line in reversed(stdout.splitlines()))]
    for text in candidates:
        if not text.startswith("{"):
            continue
        try:
            obj = json.loads(text)
        except ValueError:
            continue
        if isinstance(obj, dict) and "AccessKeyId" in obj and "SecretAccessKey" in obj:
            return {str(k): str(v) for k, v in obj.items()}
    raise RuntimeError(f"cannot find AccessKeyId/SecretAccessKey in create-account output:\n{stdout[:500]}")


def external_target(name: str, url: str, access_key: str, secret_key: str) -> Target:
    host, port = parse_loopback_endpoint(url)
    if not http_answers(host, port, timeout=3.0):
        raise RuntimeError(f"{name} endpoint {url} does not answer HTTP")
    return Target(name, host, port, access_key, secret_key)


# --------------------------------------------------------------------------- server CPU


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, utime+stime seconds) of a process from /proc, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _CLK_TCK


def process_tree_cpu(pid: int) -> float | None:
    """CPU seconds used so far by ``pid`` and its live descendants (Linux /proc), or None."""
    if _proc_stat(pid) is None:
        return None
    children: dict[int, list[int]] = {}
    stats: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        st = _proc_stat(int(entry.name))
        if st is not None:
            children.setdefault(st[0], []).append(int(entry.name))
            stats[int(entry.name)] = st[1]
    total, todo = 0.0, [pid]
    while todo:
        cur = todo.pop()
        total += stats.get(cur, 0.0)
        todo.extend(children.get(cur, []))
    return total


# --------------------------------------------------------------------------- server memory


def process_tree_pids(pid: int) -> list[int]:
    """``pid`` and its live descendants (Linux /proc), ``pid`` first; empty if it is gone."""
    if _proc_stat(pid) is None:
        return []
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        st = _proc_stat(int(entry.name))
        if st is not None:
            children.setdefault(st[0], []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        cur = todo.pop(0)
        out.append(cur)
        todo.extend(children.get(cur, []))
    return out


def proc_status_kib(pid: int, field_name: str) -> int | None:
    """A ``kB`` field of /proc/PID/status (``VmRSS``, ``VmHWM``, ``RssAnon``…) in KiB, or None."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return None


def process_tree_rss_kib(pid: int) -> int | None:
    """Resident set size (``VmRSS``) of ``pid`` plus its live descendants in KiB, or None if it is gone."""
    pids = process_tree_pids(pid)
    if not pids:
        return None
    return sum(proc_status_kib(p, "VmRSS") or 0 for p in pids)


# --------------------------------------------------------------------------- server metrics

_METRIC_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)")


def scrape_metrics(port: int, host: str = "127.0.0.1") -> dict[str, float]:
    """A server's ``--metrics-listen`` page as ``{'name{labels}': value}`` (labels as printed); empty if
    it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        match = _METRIC_SAMPLE.match(line)
        if match and not line.startswith("#"):
            out[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return out
