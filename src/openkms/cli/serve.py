"""``openkms serve``: settings from the command line, the first start's credentials, TLS material,
logging (text or JSON), the metrics endpoint, and the uvicorn server (one process, or ``--workers N``
sharing the port) behind openkms's edge."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import uvicorn
from uvicorn.supervisors import Multiprocess

from openkms.cli.factory import export_settings
from openkms.cli.options import settings_from
from openkms.clock import SystemClock
from openkms.config import DEFAULT_REGION, environment_settings
from openkms.console import mount
from openkms.crypto.certificates import ensure_self_signed
from openkms.domain.quotas import QuotaDocumentError
from openkms.server import logs
from openkms.server.app import KmsApp
from openkms.server.edge import EdgeConfig, behind_proxies, is_loopback
from openkms.server.limits import EdgeLimits
from openkms.server.proxies import parse_networks
from openkms.server.runtime import (
    bootstrap,
    build_runtime,
    export_lines,
    load_quotas,
    prepare_data_dir,
    write_credentials_file,
)
from openkms.server.tls import TlsConfig
from openkms.service.trust.keyring import RootOfTrustError

if TYPE_CHECKING:
    from openkms.server.metrics import MetricsListen


def _tls_config(
    data_dir: Path,
    cert: Path | None,
    key: Path | None,
    self_signed: bool,
    sans: tuple[str, ...],
    client_ca: Path | None,
) -> TlsConfig | None:
    if self_signed and (cert or key):
        raise click.UsageError("--tls-self-signed makes its own certificate: give it or --tls-cert, not both")
    if bool(cert) != bool(key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if self_signed:
        names = [n for value in sans for n in value.split(",")]
        files = ensure_self_signed(data_dir / "tls", names, now=SystemClock().now())
        return TlsConfig(files.server_cert, files.server_key, client_ca, files.ca_cert)
    if cert and key:
        return TlsConfig(cert, key, client_ca)
    if client_ca:
        raise click.UsageError("--tls-client-ca needs TLS (--tls-cert/--tls-key or --tls-self-signed)")
    return None


def run_server(
    *,
    host: str,
    port: int,
    regions: tuple[str, ...],
    account_id: str | None,
    log_level: str,
    workers: int,
    multi_region_delay: float,
    data_dir: Path,
    database_url: str | None,
    root_key_file: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_self_signed: bool,
    tls_sans: tuple[str, ...],
    tls_client_ca: Path | None,
    insecure_http: bool,
    trusted_proxies: tuple[str, ...],
    max_header_bytes: int,
    max_headers: int,
    header_timeout: float,
    body_timeout: float,
    keep_alive_timeout: int,
    max_connections: int,
    request_quotas: str | None,
    xks_timeout: float,
    xks_client_timeout: float = 0.25,
    xks_ca_bundles: tuple[str, ...] = (),
    log_format: str = "text",
    metrics_listen: str | None = None,
    audit_export_dir: str | None = None,
    audit_stdout: bool = False,
    audit_retention_days: float | None = None,
    key_cache_size: int = 10_000,
) -> None:
    logs.configure(log_level, log_format)
    # A rejected upload is answered 400 by the console; the parser's own warning about it is noise.
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    try:
        parse_networks(trusted_proxies)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--trusted-proxies") from None
    try:
        from_environment = environment_settings(os.environ)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    settings = settings_from(
        data_dir,
        database_url,
        root_key_file,
        host=host,
        port=port,
        regions=list(regions),
        account_id=account_id,
        trusted_proxies=list(trusted_proxies),
        request_quotas=request_quotas,
        quota_processes=workers,
        multi_region_delay=multi_region_delay,
        audit_retention_days=audit_retention_days,
        key_cache_size=key_cache_size,
        **from_environment,
        xks_timeout=xks_timeout,
        xks_client_timeout=xks_client_timeout,
        xks_ca_bundles=list(xks_ca_bundles),
        audit_export_dir=str(Path(audit_export_dir).resolve()) if audit_export_dir else None,
        audit_stdout=audit_stdout,
    )

    if settings.unseal_shares:
        raise click.UsageError(
            "openkms serve takes no shares (a process's command line is visible to every user of the "
            "machine): start it, then give them with openkms operator unseal"
        )
    prepare_data_dir(settings)
    tls = _tls_config(data_dir, tls_cert, tls_key, tls_self_signed, tls_sans, tls_client_ca)
    if tls is None and not is_loopback(host) and not insecure_http:
        raise click.UsageError(
            f"refusing to serve plain HTTP on {host}: responses carry plaintext data keys and anyone on the "
            "network could read them. Serve TLS (--tls-cert/--tls-key or --tls-self-signed), or pass "
            "--insecure-http if a TLS proxy in front of openkms is the only way in."
        )
    listen = _metrics_listen(metrics_listen, workers, tls, insecure_http)
    try:
        load_quotas(settings)
    except (OSError, QuotaDocumentError) as exc:
        raise click.BadParameter(str(exc), param_hint="--request-quotas") from None
    limits = EdgeLimits(
        max_header_bytes=max_header_bytes,
        max_headers=max_headers,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        keep_alive_timeout=keep_alive_timeout,
        max_connections=max_connections,
    )
    try:
        runtime = build_runtime(settings)
    except RootOfTrustError as exc:
        raise click.ClickException(f"cannot open the keyring: {exc}") from None
    if workers > 1 and runtime.trust.source == "shamir":
        runtime.store.close()
        raise click.UsageError(
            "an installation sealed by Shamir shares serves one process per server (--workers 1): each "
            "process is unsealed on its own; run several servers on the database instead"
        )
    scheme = "https" if tls else "http"
    shown_host = f"[{host}]" if ":" in host else host
    listening = f"{scheme}://{shown_host}:{port}"
    # Clients on this machine reach a wildcard address at the loopback one, which the self-signed
    # certificate names (other machines use a --tls-san name).
    client_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else shown_host  # noqa: S104
    endpoint = f"{scheme}://{client_host}:{port}"
    region = regions[0] if regions else DEFAULT_REGION
    new = None if runtime.trust.sealed else bootstrap(runtime)
    sealed = " (sealed: unseal with openkms operator unseal)" if runtime.trust.sealed else ""
    click.echo(f"openkms listening on {listening} ({runtime.store.backend}){sealed}")
    extra = [f"export AWS_CA_BUNDLE={tls.ca_bundle.resolve()}"] if tls and tls.ca_bundle else []
    if new is not None:
        lines = export_lines(new, endpoint, region) + extra
        if database_url is None:
            path = write_credentials_file(data_dir, lines)
            click.echo(f"Created account {new.account_id} and its administrator key (also saved in {path}):")
        else:
            click.echo(f"Created account {new.account_id} and its administrator key:")
        for line in lines:
            click.echo(line)
    else:
        if database_url is None and (data_dir / "admin-credentials.env").exists():
            click.echo(f"Credentials of the first account: source {data_dir / 'admin-credentials.env'}")
        for line in [f"export AWS_ENDPOINT_URL_KMS={endpoint}", *extra] if extra else []:
            click.echo(line)
    sys.stdout.flush()
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "lifespan": "on",
        "access_log": False,
        "log_level": log_level,
        "server_header": False,
        "date_header": False,
    }
    if log_format == "json":
        options["log_config"] = None  # uvicorn's loggers reach the root's JSON handler
    if workers > 1:
        runtime.store.close()  # each worker opens its own
        export_settings(settings)
        os.environ[logs.WORKER_ENV] = f"{log_format}:{log_level}"
        config = EdgeConfig(
            "openkms.cli.factory:create_app",
            factory=True,
            workers=workers,
            tls=tls,
            limits=limits,
            **options,
        )
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    app = KmsApp(runtime)
    mount(app)  # the web console at /console/ on the same port
    served = behind_proxies(app, settings.trusted_proxies)
    config = EdgeConfig(served, tls=tls, limits=limits, **options)
    exporter = None
    if listen is not None:
        from openkms.server.metrics import serve_metrics  # late: prometheus_client only when asked

        try:
            exporter = serve_metrics(app, listen, tls, config.openkms_rejections)
        except OSError as exc:
            runtime.store.close()
            raise click.ClickException(
                f"cannot serve metrics on {metrics_listen}: {exc.strerror or exc}"
            ) from None
        shown = f"[{listen.host}]" if ":" in listen.host else listen.host
        click.echo(f"metrics at {scheme}://{shown}:{listen.port}/metrics")
        sys.stdout.flush()
    server = uvicorn.Server(config)
    try:
        server.run()
    finally:
        if exporter is not None:
            exporter.stop()
    if not server.started:
        sys.exit(3)


def _metrics_listen(
    value: str | None, workers: int, tls: TlsConfig | None, insecure_http: bool
) -> MetricsListen | None:
    """The parsed ``--metrics-listen`` (None when off), refused with several workers (each process has
    its own metrics and they cannot share one port) and, without TLS, on a non-loopback host unless
    ``--insecure-http`` (as the API port)."""
    if value is None or not value.strip():
        return None
    from openkms.server.metrics import MetricsListen  # late: prometheus_client only when asked

    try:
        listen = MetricsListen.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--metrics-listen") from None
    if workers > 1:
        raise click.UsageError(
            "--metrics-listen serves the metrics of one process: use --workers 1 with it (run several "
            "servers on the database, each with its own --metrics-listen, to scale out)"
        )
    if tls is None and not is_loopback(listen.host) and not insecure_http:
        raise click.UsageError(
            f"refusing to serve metrics over plain HTTP on {listen.host}: serve the API with TLS (the "
            "metrics port then uses the same certificate), listen on a loopback address, or pass "
            "--insecure-http"
        )
    return listen
