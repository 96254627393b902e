"""Metrics and structured logs of ``openkms serve``: ``--metrics-listen`` serves Prometheus's text format
(parsed here with prometheus_client's own parser) with the requests by API, operation and outcome, their
latency, throttled calls, edge refusals, the audit writer, the caches, the key-pair pool, the change
feed and the keys by state, on SQLite and PostgreSQL; ``--log-format json`` writes only JSON lines on
standard error, none holding the secret access key, a plaintext or imported key material, while the
first start's credentials stay plain text on standard output. ``--metrics-listen`` is refused with
several workers and, over plain HTTP, on a non-loopback host; with TLS it serves HTTPS."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import OPENKMS, Server, create_pg_database, drop_pg_database, free_port
from tests.e2e.console.http import ConsoleHttp
from tests.e2e.importing import import_material
from tests.e2e.util import raw_call

NO_RETRY = {"mode": "standard", "total_max_attempts": 1}  # max_attempts=1 still retries once
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class LoggedServer(Server):
    """A server whose standard output and standard error are files of their own."""

    metrics_port: int = field(default_factory=free_port)
    out_path: Path | None = None
    err_path: Path | None = None

    def start(self) -> None:
        self.out_path = self.data_dir.parent / f"server-{self.port}.out"
        self.err_path = self.data_dir.parent / f"server-{self.port}.err"
        self.log_path = self.err_path
        out, err = open(self.out_path, "ab"), open(self.err_path, "ab")  # noqa: SIM115 - the child's
        self.proc = subprocess.Popen(
            [OPENKMS, "serve", "--port", str(self.port), *self.data_args(), *self.extra_args],
            stdout=out,
            stderr=err,
            env={**os.environ, **self.env},
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"openkms exited: {self.err_path.read_text()}")
            try:  # both ports open (no scrape: it would cache the key counts for 10 s)
                for port in (self.metrics_port, self.port):
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"openkms did not start: {self.err_path.read_text()}")

    def scrape(self) -> Samples:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            assert resp.status == 200
            text = resp.read().decode()
        return parse(text)


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def calls(samples: Samples, api: str, operation: str, outcome: str = "ok") -> float:
    return value(samples, "openkms_requests_total", api=api, operation=operation, outcome=outcome)


def has(samples: Samples, name: str) -> bool:
    return any(key[0] == name for key in samples)


@pytest.fixture(scope="module")
def served(workdir: Path, backend: str) -> Iterator[LoggedServer]:
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix=f"metrics-{backend}-"))
    quotas = data_dir.parent / f"{data_dir.name}-quotas.toml"
    quotas.write_text("[quotas]\nDescribeKey = 2\n")
    url = create_pg_database() if backend == "postgres" else None
    server = LoggedServer(data_dir=data_dir, database_url=url)
    server.extra_args = [
        "--metrics-listen",
        f"127.0.0.1:{server.metrics_port}",
        "--log-format",
        "json",
        "--log-level",
        "debug",
        "--request-quotas",
        str(quotas),
        "--max-header-bytes",
        "4096",
    ]
    server.start()
    creds = server.new_account()
    server.account_id, server.access_key = creds["AccountId"], creds["AccessKeyId"]
    server.secret_key = creds["SecretAccessKey"]
    yield server
    server.stop()
    if url:
        drop_pg_database(url)


def test_requests_keys_and_runtime_are_measured(served: LoggedServer, backend: str) -> None:
    kms = served.client(retries=NO_RETRY)
    keys = [kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(4)]
    kms.disable_key(KeyId=keys[1])
    kms.schedule_key_deletion(KeyId=keys[2], PendingWindowInDays=7)
    blobs = [kms.encrypt(KeyId=keys[0], Plaintext=f"metric-{i}".encode())["CiphertextBlob"] for i in range(5)]
    for blob in blobs:
        kms.decrypt(CiphertextBlob=blob)
    with pytest.raises(ClientError):
        kms.encrypt(KeyId=keys[1], Plaintext=b"x")  # DisabledException
    with pytest.raises(ClientError):
        kms.decrypt(CiphertextBlob=b"\x01" * 64)  # InvalidCiphertextException
    assert raw_call(served, "NoSuchOperation", {}).status == 404
    kms.generate_data_key_pair(KeyId=keys[0], KeyPairSpec="RSA_2048")  # from the pre-generated pool
    throttled = 0
    for _ in range(12):  # DescribeKey = 2 per second
        try:
            kms.describe_key(KeyId=keys[0])
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ThrottlingException"
            throttled += 1
    assert throttled > 0
    served.client("iam").list_users()
    served.client("sts").get_caller_identity()
    xks = urllib.request.Request(f"{served.endpoint}/xks/nothing", data=b"{}", method="POST")  # noqa: S310
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(xks, timeout=5)  # noqa: S310 - http://127.0.0.1
    console = ConsoleHttp(served.endpoint)
    assert console.sign_in(served.access_key, served.secret_key).status == 303
    assert console.get("/console/keys").status == 200  # ListKeys through the console
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
    conn.request("GET", "/", headers={"X-Padding": "p" * 8000})  # past --max-header-bytes
    assert conn.getresponse().status == 431
    conn.close()
    time.sleep(0.5)  # the audit writer's batch (50 ms) and the change feed's poll (200 ms)
    # A lookup once every write above has come back through the change feed: a key loaded while an
    # invalidation raced with it is not cached (keycache.py's epoch), so this one is the entry counted.
    kms.get_key_rotation_status(KeyId=keys[0])
    time.sleep(0.1)

    m = served.scrape()
    # The README's scrape: curl shows the same series.
    url = f"http://127.0.0.1:{served.metrics_port}/metrics"
    curled = parse(
        subprocess.run(["curl", "--silent", url], capture_output=True, text=True, check=True).stdout
    )
    assert {name for name, _ in curled} == {name for name, _ in m}
    assert calls(m, "kms", "Encrypt") == 5
    assert calls(m, "kms", "Decrypt") == 5
    assert calls(m, "kms", "CreateKey") == 4
    assert calls(m, "kms", "Encrypt", "DisabledException") == 1
    assert calls(m, "kms", "Decrypt", "InvalidCiphertextException") == 1
    assert calls(m, "kms", "Unknown", "UnknownOperationException") == 1
    assert calls(m, "kms", "DescribeKey") == 12 - throttled
    assert calls(m, "kms", "DescribeKey", "ThrottlingException") == throttled
    # The console's DescribeKey calls (its key list) share the account's quota.
    console_throttled = calls(m, "console", "DescribeKey", "ThrottlingException")
    assert value(m, "openkms_throttled_requests_total", group="DescribeKey") == throttled + console_throttled
    assert calls(m, "console", "ListKeys") >= 1
    assert calls(m, "kms", "ListKeys") == 0
    assert calls(m, "iam", "ListUsers", "ok") == 1
    assert calls(m, "sts", "GetCallerIdentity", "ok") == 1
    xks_calls = [
        v for (n, labels), v in m.items() if n == "openkms_requests_total" and ("api", "xks") in labels
    ]
    assert sum(xks_calls) == 1
    assert value(m, "openkms_edge_rejections_total", status="431") == 1
    # Latency: one observation per call, in seconds.
    latency = {"api": "kms", "operation": "Encrypt"}
    assert value(m, "openkms_request_duration_seconds_count", **latency) == 6
    assert 0 < value(m, "openkms_request_duration_seconds_sum", **latency) < 6 * 5
    assert value(m, "openkms_request_duration_seconds_bucket", le="+Inf", **latency) == 6
    # The audit writer stored the records of all these calls.
    assert value(m, "openkms_audit_records_written_total") >= 30
    assert value(m, "openkms_audit_write_duration_seconds_count") > 0
    assert value(m, "openkms_audit_queue_depth") >= 0 and has(m, "openkms_audit_queue_depth")
    # Caches: keys and credentials are looked up and mostly found.
    assert value(m, "openkms_cache_entries", cache="keys") >= 1
    assert value(m, "openkms_cache_entries", cache="credentials") >= 1
    assert value(m, "openkms_cache_lookups_total", cache="keys", result="hit") >= 10
    assert value(m, "openkms_cache_lookups_total", cache="credentials", result="hit") >= 30
    assert 0.5 < value(m, "openkms_cache_hit_ratio", cache="credentials") <= 1
    # The key-pair pool handed out one RSA_2048 pair.
    assert value(m, "openkms_keypair_pool_takes_total", result="hit") == 1
    assert value(m, "openkms_keypair_pool_target", spec="RSA_2048") == 4
    assert 0 <= value(m, "openkms_keypair_pool_available", spec="RSA_2048") <= 4
    # The change feed delivered the changes (this process's own on SQLite; NOTIFY on PostgreSQL).
    assert value(m, "openkms_change_feed_connected") == 1
    assert value(m, "openkms_change_feed_changes_total") > 0
    assert 0 <= value(m, "openkms_change_feed_seconds_since_delivery") < 60
    if backend == "sqlite":
        assert 0 <= value(m, "openkms_change_feed_lag_seconds") < 5
    assert value(m, "openkms_sealed") == 0
    # Keys by state: the counts of a moment ago (at most KEY_COUNT_TTL = 10 s old).
    assert value(m, "openkms_keys", state="Enabled") == 2
    assert value(m, "openkms_keys", state="Disabled") == 1
    assert value(m, "openkms_keys", state="PendingDeletion") == 1
    assert value(m, "openkms_keys", state="Unavailable") == 0

    # A change shows in the key counts within the 10 s they are reused.
    kms.disable_key(KeyId=keys[3])
    deadline = time.time() + 15
    while time.time() < deadline:
        m = served.scrape()
        if value(m, "openkms_keys", state="Disabled") == 2:
            break
        time.sleep(0.5)
    assert value(m, "openkms_keys", state="Disabled") == 2
    assert value(m, "openkms_keys", state="Enabled") == 1


def test_json_log_holds_no_secret(served: LoggedServer) -> None:
    kms = served.client(retries=NO_RETRY)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    plaintexts = [os.urandom(24) for _ in range(3)]
    for plaintext in plaintexts:
        blob = kms.encrypt(KeyId=key, Plaintext=plaintext)["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext
    data_key = kms.generate_data_key(KeyId=key, KeySpec="AES_256")["Plaintext"]
    external = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    material = os.urandom(32)
    import_material(kms, external, material)
    blob = kms.encrypt(KeyId=external, Plaintext=plaintexts[0])["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintexts[0]
    with pytest.raises(ClientError):  # a failed signature: the secret must not be echoed either
        served.client(secret_key="wrong" + served.secret_key[5:]).list_keys()
    served.stop()  # flush and close the log (the fixture's server is not used after this test)

    assert served.out_path is not None and served.err_path is not None
    out = served.out_path.read_text()
    # The first start's credentials are plain text on standard output (a line per export).
    first_secret = next(
        line.split("=", 1)[1] for line in out.splitlines() if line.startswith("export AWS_SECRET_ACCESS_KEY=")
    )
    assert "metrics at http://127.0.0.1:" in out
    err = served.err_path.read_text()
    lines = err.splitlines()
    assert lines, "the debug-level log is empty"
    loggers = set()
    for line in lines:
        record = json.loads(line)  # every line is one JSON object
        assert isinstance(record, dict)
        assert {"time", "level", "logger", "message"} <= record.keys()
        loggers.add(record["logger"])
    assert any(name.startswith("uvicorn") for name in loggers)
    secrets = [served.secret_key, first_secret, data_key, material, *plaintexts]
    for secret in secrets:
        forms = [secret] if isinstance(secret, str) else [secret.hex(), base64.b64encode(secret).decode()]
        for form in forms:
            assert form not in err
            assert form not in out or secret == first_secret


def test_metrics_listen_refusals_and_tls(workdir: Path) -> None:
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="metrics-refused-"))
    base = [OPENKMS, "serve", "--data-dir", str(data_dir), "--port", str(free_port())]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], capture_output=True, text=True, check=False)

    several = subprocess.run(
        [*base, "--workers", "2", "--metrics-listen", "9"], capture_output=True, text=True
    )
    assert several.returncode == 2
    assert "--metrics-listen serves the metrics of one process: use --workers 1" in several.stderr
    public = run("--metrics-listen", "0.0.0.0:9100")
    assert public.returncode == 2
    assert "refusing to serve metrics over plain HTTP on 0.0.0.0" in public.stderr
    bad = run("--metrics-listen", "localhost:http")
    assert bad.returncode == 2 and "--metrics-listen" in bad.stderr

    # With TLS the metrics port speaks HTTPS with the API's certificate (any host).
    port, metrics_port = free_port(), free_port()
    command = [OPENKMS, "serve", "--data-dir", str(data_dir), "--port", str(port), "--tls-self-signed"]
    proc = subprocess.Popen(
        [*command, "--metrics-listen", f"0.0.0.0:{metrics_port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        ca = data_dir / "tls" / "ca.pem"
        context = ssl.create_default_context(cafile=str(ca)) if ca.exists() else None
        deadline, text = time.time() + 30, ""
        while time.time() < deadline and not text:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                context = context or ssl.create_default_context(cafile=str(ca))
                url = f"https://127.0.0.1:{metrics_port}/metrics"
                with urllib.request.urlopen(url, timeout=2, context=context) as resp:
                    text = resp.read().decode()
            except (OSError, ssl.SSLError):
                time.sleep(0.1)
        families = {f.name for f in text_string_to_metric_families(text)}
        assert {"openkms_requests", "openkms_keys", "openkms_audit_queue_depth"} <= families
        url = f"https://127.0.0.1:{metrics_port}/metrics"
        curled = subprocess.run(
            ["curl", "--silent", "--cacert", str(ca), url], capture_output=True, text=True, check=True
        )
        assert "openkms_keys{" in curled.stdout
        with pytest.raises((OSError, http.client.HTTPException)):  # no plain HTTP on the TLS port
            urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).read()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def test_json_log_of_workers(workdir: Path) -> None:
    """With ``--workers 2`` the supervisor's and each worker's lines are JSON, told apart by process."""
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="metrics-workers-"))
    server = LoggedServer(data_dir=data_dir, database_url=None)
    server.extra_args = ["--workers", "2", "--log-format", "json", "--log-level", "info"]
    server.metrics_port = server.port  # no metrics with several workers: wait for the API port only
    server.start()
    try:
        creds = server.new_account()
        server.access_key, server.secret_key = creds["AccessKeyId"], creds["SecretAccessKey"]
        kms = server.client()
        for _ in range(4):
            kms.list_keys()
    finally:
        server.stop()
    assert server.err_path is not None
    records = [json.loads(line) for line in server.err_path.read_text().splitlines()]
    assert len({r["process"] for r in records}) == 3  # the supervisor and two workers
    messages = [r["message"] for r in records]
    assert any(m.startswith("Started parent process") for m in messages)
    assert sum(m.startswith("Started server process") for m in messages) == 2
    assert not any(r["logger"] == "uvicorn.access" for r in records)  # access logs stay off


def test_key_cache_size_bounds_the_keys_in_memory(workdir: Path) -> None:
    """``--key-cache-size 3``: six keys used, three in memory, the least recently used dropped first
    (a key used again stays; a dropped one is loaded again and answers as before)."""
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="key-cache-"))
    server = LoggedServer(data_dir=data_dir, database_url=None)
    server.extra_args = ["--metrics-listen", f"127.0.0.1:{server.metrics_port}", "--key-cache-size", "3"]
    server.start()
    try:
        creds = server.new_account()
        server.account_id, server.access_key = creds["AccountId"], creds["AccessKeyId"]
        server.secret_key = creds["SecretAccessKey"]
        kms = server.client(retries=NO_RETRY)
        keys = [kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(6)]
        time.sleep(0.5)  # the change feed's poll has seen every CreateKey (no invalidation races)
        blobs = {key: kms.encrypt(KeyId=key, Plaintext=b"lru")["CiphertextBlob"] for key in keys[:3]}

        def misses() -> float:
            return value(server.scrape(), "openkms_cache_lookups_total", cache="keys", result="miss")

        assert value(server.scrape(), "openkms_cache_entries", cache="keys") == 3
        before = misses()
        kms.encrypt(KeyId=keys[0], Plaintext=b"lru")  # keys[0] is now the most recently used
        assert misses() == before  # a hit
        for key in keys[3:5]:  # two more keys: keys[1] and keys[2] are dropped, keys[0] stays
            kms.encrypt(KeyId=key, Plaintext=b"lru")
        assert value(server.scrape(), "openkms_cache_entries", cache="keys") == 3
        before = misses()
        kms.encrypt(KeyId=keys[0], Plaintext=b"lru")
        assert misses() == before  # still cached
        assert kms.decrypt(CiphertextBlob=blobs[keys[1]])["Plaintext"] == b"lru"  # loaded again
        assert misses() > before
        assert value(server.scrape(), "openkms_cache_entries", cache="keys") == 3
    finally:
        server.stop()
