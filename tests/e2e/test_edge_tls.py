"""TLS at the edge: ``openkms serve --tls-self-signed`` verified by boto3, the AWS CLI and
``openssl s_client`` with the generated CA only; a wrong CA refused by the client; mutual TLS (no
certificate, another CA's, an expired one refused); certificate reload on SIGHUP; plain HTTP refused
on a non-loopback address; the console's Secure cookie over TLS."""

from __future__ import annotations

import datetime as dt
import http.client
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import OPENKMS, REGION, Server, free_port, launch

# --- certificates the tests make themselves (a client CA, client certificates, another CA) ---------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(directory: Path, cn: str) -> tuple[Path, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{cn}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, cert, key


def make_leaf(
    directory: Path,
    cn: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    *,
    expired: bool = False,
    server_names: list[str] | None = None,
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    start, end = (
        (now - dt.timedelta(days=10), now - dt.timedelta(days=1))
        if expired
        else (
            now - dt.timedelta(days=1),
            now + dt.timedelta(days=10),
        )
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )
    if server_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in server_names]), critical=False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    cert = builder.sign(ca[1], hashes.SHA256())
    cert_path, key_path = directory / f"{cn}.pem", directory / f"{cn}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    os.chmod(key_path, 0o600)
    return cert_path, key_path


def tls_server(workdir: Path, *args: str) -> Server:
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="tls-"))
    server = Server(data_dir=data_dir, database_url=None, extra_args=["--tls-self-signed", *args])
    server.ca_bundle = str(data_dir / "tls" / "ca.pem")
    server.start()
    creds = server.new_account()
    server.account_id, server.access_key, server.secret_key = (
        creds["AccountId"],
        creds["AccessKeyId"],
        creds["SecretAccessKey"],
    )
    return server


@pytest.fixture(scope="module")
def tls(workdir: Path) -> Iterator[Server]:
    server = tls_server(workdir, "--tls-san", "kms.example.test")
    yield server
    server.stop()


def test_printed_exports_name_https_and_the_ca_bundle(tls: Server) -> None:
    assert tls.log_path is not None
    log = tls.log_path.read_text()
    assert f"openkms listening on https://127.0.0.1:{tls.port}" in log
    assert f"export AWS_ENDPOINT_URL_KMS=https://127.0.0.1:{tls.port}" in log
    assert f"export AWS_CA_BUNDLE={Path(tls.ca_bundle or '').resolve()}" in log
    saved = (tls.data_dir / "admin-credentials.env").read_text()
    assert "AWS_CA_BUNDLE=" in saved
    for name in ("ca-key.pem", "server-key.pem"):
        assert (tls.data_dir / "tls" / name).stat().st_mode & 0o777 == 0o600


def test_boto3_verifies_the_server_with_the_generated_ca(tls: Server) -> None:
    kms = tls.client()
    key = kms.create_key(Description="over tls")["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key, Plaintext=b"secret")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"


def test_aws_cli_verifies_with_aws_ca_bundle(tls: Server) -> None:
    out = tls.aws("kms", "create-key", "--description", "cli over tls")
    assert '"KeyId"' in out.stdout
    assert "--no-verify-ssl" not in " ".join(out.args)


def test_a_client_trusting_another_ca_refuses_the_server(tls: Server, tmp_path: Path) -> None:
    other, _, _ = make_ca(tmp_path, "unrelated-ca")
    kms = boto3.client(
        "kms",
        endpoint_url=tls.endpoint,
        region_name=REGION,
        aws_access_key_id=tls.access_key,
        aws_secret_access_key=tls.secret_key,
        verify=str(other),
        config=Config(retries={"max_attempts": 1}),
    )
    with pytest.raises(botocore.exceptions.SSLError):
        kms.list_keys()
    env = {**tls.cli_env(), "AWS_CA_BUNDLE": str(other)}
    result = subprocess.run(
        [OPENKMS.replace("openkms", "aws"), "kms", "list-keys", "--endpoint-url", tls.endpoint],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode != 0
    assert "SSL" in result.stderr or "certificate" in result.stderr


def _s_client(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-verify_return_error", *args],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
    )


def negotiated(result: subprocess.CompletedProcess[str]) -> str | None:
    """The protocol and cipher of a completed, verified handshake; None when it failed."""
    match = re.search(r"New, (TLSv1\.[0-3]), Cipher is (\S+)", result.stdout)
    if match is None or match.group(2) == "(NONE)" or "Verify return code: 0 (ok)" not in result.stdout:
        return None
    return f"{match.group(1)} {match.group(2)}"


def test_openssl_s_client_verifies_names_and_versions(tls: Server) -> None:
    assert tls.ca_bundle is not None
    ok = _s_client(tls.port, "-CAfile", tls.ca_bundle, "-servername", "localhost")
    assert ok.returncode == 0, ok.stderr
    assert negotiated(ok) is not None and negotiated(ok).startswith("TLSv1.3")  # type: ignore[union-attr]
    for name in ("localhost", "kms.example.test"):
        named = _s_client(tls.port, "-CAfile", tls.ca_bundle, "-verify_hostname", name)
        assert negotiated(named) is not None, name
    wrong = _s_client(tls.port, "-CAfile", tls.ca_bundle, "-verify_hostname", "evil.example")
    assert negotiated(wrong) is None
    ip = _s_client(tls.port, "-CAfile", tls.ca_bundle, "-verify_ip", "127.0.0.1")
    assert negotiated(ip) is not None
    tls12 = negotiated(_s_client(tls.port, "-CAfile", tls.ca_bundle, "-tls1_2"))
    assert tls12 is not None and tls12.startswith("TLSv1.2 ECDHE-")  # forward-secret suites only
    assert negotiated(_s_client(tls.port, "-CAfile", tls.ca_bundle, "-tls1_1")) is None  # TLS 1.1 refused
    weak = _s_client(tls.port, "-CAfile", tls.ca_bundle, "-tls1_2", "-cipher", "AES128-SHA")
    assert negotiated(weak) is None  # no RSA key exchange, no CBC-SHA1


def test_the_certificate_is_kept_across_restarts_and_reloaded_on_sighup(workdir: Path) -> None:
    server = tls_server(workdir)
    try:
        assert server.ca_bundle is not None
        first = (server.data_dir / "tls" / "server.pem").read_bytes()
        server.restart()
        assert (server.data_dir / "tls" / "server.pem").read_bytes() == first
        # An open keep-alive connection, then a new certificate for the same CA and a SIGHUP.
        ctx = ssl.create_default_context(cafile=server.ca_bundle)
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=10)
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b'{"status":"ok"}'
        ca_cert = x509.load_pem_x509_certificate((server.data_dir / "tls" / "ca.pem").read_bytes())
        ca_key = serialization.load_pem_private_key(
            (server.data_dir / "tls" / "ca-key.pem").read_bytes(), password=None
        )
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        tmp = Path(tempfile.mkdtemp(dir=workdir))
        cert, key = make_leaf(tmp, "reloaded", (ca_cert, ca_key), server_names=["localhost"])
        os.replace(cert, server.data_dir / "tls" / "server.pem")
        os.replace(key, server.data_dir / "tls" / "server-key.pem")
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        subject = ""
        while time.time() < deadline:
            with (
                socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
                ctx.wrap_socket(raw, server_hostname="localhost") as wrapped,
            ):
                der = wrapped.getpeercert(binary_form=True)
            assert der is not None
            subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
            if subject == "CN=reloaded":
                break
            time.sleep(0.1)
        assert subject == "CN=reloaded"
        # The connection opened before the reload still works.
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b'{"status":"ok"}'
        conn.close()
        assert server.proc.poll() is None
    finally:
        server.stop()


def test_mutual_tls_refuses_missing_foreign_and_expired_client_certificates(
    workdir: Path, tmp_path: Path
) -> None:
    ca_path, ca_cert, ca_key = make_ca(tmp_path, "client-ca")
    _, other_cert, other_key = make_ca(tmp_path, "other-ca")
    good = make_leaf(tmp_path, "good-client", (ca_cert, ca_key))
    expired = make_leaf(tmp_path, "expired-client", (ca_cert, ca_key), expired=True)
    foreign = make_leaf(tmp_path, "foreign-client", (other_cert, other_key))
    server = tls_server(workdir, "--tls-client-ca", str(ca_path))
    try:

        def client(cert: tuple[Path, Path] | None) -> object:
            config = Config(
                retries={"max_attempts": 1},
                client_cert=(str(cert[0]), str(cert[1])) if cert else None,
            )
            return boto3.client(
                "kms",
                endpoint_url=server.endpoint,
                region_name=REGION,
                aws_access_key_id=server.access_key,
                aws_secret_access_key=server.secret_key,
                verify=server.ca_bundle,
                config=config,
            )

        assert "Keys" in client(good).list_keys()  # type: ignore[attr-defined]
        for cert in (None, expired, foreign):
            with pytest.raises(
                (
                    botocore.exceptions.SSLError,
                    botocore.exceptions.ConnectionClosedError,
                    botocore.exceptions.EndpointConnectionError,
                )
            ):
                client(cert).list_keys()  # type: ignore[attr-defined]
        assert server.ca_bundle is not None
        # Without a certificate the server's alert ends the connection (TLS 1.3: at the first read).
        plain = ssl.create_default_context(cafile=server.ca_bundle)
        try:
            with (
                socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
                plain.wrap_socket(raw, server_hostname="localhost") as wrapped,
            ):
                wrapped.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                data = wrapped.recv(100)
        except (ssl.SSLError, ConnectionError):
            data = b""
        assert data == b""  # no answer: the connection ended with the handshake's alert
        # A good certificate without SigV4 is still refused: mutual TLS is in addition to signatures.
        ctx = ssl.create_default_context(cafile=server.ca_bundle)
        ctx.load_cert_chain(str(good[0]), str(good[1]))
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=10)
        conn.request(
            "POST",
            "/",
            body=b"{}",
            headers={"X-Amz-Target": "TrentService.ListKeys", "Content-Type": "application/x-amz-json-1.1"},
        )
        answer = conn.getresponse()
        assert answer.status == 400
        assert b"MissingAuthenticationTokenException" in answer.read()
        conn.close()
    finally:
        server.stop()


def _serve(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPENKMS, "serve", "--data-dir", str(data_dir), *args], capture_output=True, text=True, timeout=30
    )


def test_plain_http_on_a_non_loopback_address_is_refused(workdir: Path) -> None:
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="insecure-"))
    refused = _serve("--host", "0.0.0.0", "--port", str(free_port()), data_dir=data_dir)  # noqa: S104
    assert refused.returncode != 0
    assert "refusing to serve plain HTTP on 0.0.0.0" in refused.stderr
    assert "--insecure-http" in refused.stderr
    assert not (data_dir / "openkms.db").exists()  # refused before anything was opened
    server = Server(
        data_dir=data_dir,
        database_url=None,
        extra_args=["--host", "0.0.0.0", "--insecure-http"],  # noqa: S104
    )
    server.start()
    try:
        assert server.log_path is not None
        assert f"http://0.0.0.0:{server.port}" in server.log_path.read_text()
    finally:
        server.stop()
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="newcomer-"))  # a first start, as a newcomer's
    tls_ok = Server(
        data_dir=data_dir,
        database_url=None,
        extra_args=["--host", "0.0.0.0", "--tls-self-signed"],  # noqa: S104
    )
    tls_ok.ca_bundle = str(data_dir / "tls" / "ca.pem")
    tls_ok.start()
    try:
        # The newcomer's path: paste the printed exports into another shell, use boto3 and the CLI.
        assert tls_ok.log_path is not None
        exports = dict(
            line.removeprefix("export ").split("=", 1)
            for line in tls_ok.log_path.read_text().splitlines()
            if line.startswith("export ")
        )
        assert exports["AWS_ENDPOINT_URL_KMS"] == f"https://127.0.0.1:{tls_ok.port}"
        assert exports["AWS_CA_BUNDLE"] == str((data_dir / "tls" / "ca.pem").resolve())
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"} <= set(exports)
        env = {
            **os.environ,
            **exports,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }
        out = subprocess.run(
            [OPENKMS.replace("openkms", "aws"), "kms", "list-keys", "--output", "json"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        assert '"Keys"' in out.stdout
        code = "import boto3; print(boto3.client('kms').create_key()['KeyMetadata']['Enabled'])"
        made = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        assert made.stdout.strip() == "True"
    finally:
        tls_ok.stop()


def test_console_cookie_is_secure_over_tls(tls: Server) -> None:
    assert tls.ca_bundle is not None
    ctx = ssl.create_default_context(cafile=tls.ca_bundle)
    conn = http.client.HTTPSConnection("127.0.0.1", tls.port, context=ctx, timeout=10)
    conn.request("GET", "/console/signin")
    page = conn.getresponse()
    page.read()
    cookies = [v for k, v in page.getheaders() if k.lower() == "set-cookie"]
    assert cookies and all("Secure" in c for c in cookies)
    conn.close()


def test_launch_helper_still_serves_plain_http_on_loopback(workdir: Path) -> None:
    server = launch(Path(tempfile.mkdtemp(dir=workdir, prefix="plain-")), None)
    try:
        assert server.endpoint.startswith("http://127.0.0.1:")
        assert "Keys" in server.client().list_keys()
    finally:
        server.stop()
