"""Entry point of the ``openkms`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from openkms.cli import (
    admin_iam,  # noqa: F401 - registers the IAM commands of ``openkms admin``
    admin_xks,  # noqa: F401 - registers the XKS proxy commands of ``openkms admin``
    operator_rotate,  # noqa: F401 - registers ``openkms operator rotate-root-key``
    operator_seal,  # noqa: F401 - registers init, unseal, seal, status and rekey of ``openkms operator``
)
from openkms.cli.admin import admin
from openkms.cli.audit import audit
from openkms.cli.backup import backup, migrate, restore
from openkms.cli.byok import get_parameters_for_import, import_key_material, wrap_key_material
from openkms.cli.operator import operator
from openkms.cli.options import data_options
from openkms.config import DEFAULT_PORT


@click.group()
@click.version_option(package_name="openkms")
def cli() -> None:
    """openkms: a key management service that speaks the AWS KMS API."""


def _edge_options(fn: Any) -> Any:
    """The network edge's options of ``openkms serve`` (TLS, proxies, limits, quotas)."""
    options = [
        click.option(
            "--tls-cert",
            type=click.Path(path_type=Path, dir_okay=False),
            envvar="OPENKMS_TLS_CERT",
            help="Serve HTTPS with this PEM certificate chain (with --tls-key).",
        ),
        click.option(
            "--tls-key",
            type=click.Path(path_type=Path, dir_okay=False),
            envvar="OPENKMS_TLS_KEY",
            help="The PEM private key of --tls-cert.",
        ),
        click.option(
            "--tls-self-signed",
            is_flag=True,
            envvar="OPENKMS_TLS_SELF_SIGNED",
            help="Serve HTTPS with a private CA and server certificate made in <data-dir>/tls/.",
        ),
        click.option(
            "--tls-san",
            "tls_sans",
            multiple=True,
            envvar="OPENKMS_TLS_SANS",
            help="An extra DNS name or IP address of the self-signed certificate (repeatable).",
        ),
        click.option(
            "--tls-client-ca",
            type=click.Path(path_type=Path, dir_okay=False),
            envvar="OPENKMS_TLS_CLIENT_CA",
            help="Require client certificates signed by this CA (mutual TLS, besides SigV4).",
        ),
        click.option(
            "--insecure-http",
            is_flag=True,
            envvar="OPENKMS_INSECURE_HTTP",
            help="Allow plain HTTP on a non-loopback address.",
        ),
        click.option(
            "--trusted-proxies",
            "trusted_proxies",
            multiple=True,
            envvar="OPENKMS_TRUSTED_PROXIES",
            help="CIDR[,CIDR...] of proxies whose X-Forwarded-For/-Proto and Forwarded headers "
            "are believed (default: none).",
        ),
        click.option(
            "--max-header-bytes",
            type=click.IntRange(1024, 1 << 20),
            default=16 * 1024,
            show_default=True,
            envvar="OPENKMS_MAX_HEADER_BYTES",
            help="Largest request line and header fields of a request (431 past it).",
        ),
        click.option(
            "--max-headers",
            type=click.IntRange(8, 10_000),
            default=100,
            show_default=True,
            envvar="OPENKMS_MAX_HEADERS",
            help="Most header fields in a request (431 past it).",
        ),
        click.option(
            "--header-timeout",
            type=click.FloatRange(0.1, 3600),
            default=10.0,
            show_default=True,
            envvar="OPENKMS_HEADER_TIMEOUT",
            help="Seconds to receive a request's header (408).",
        ),
        click.option(
            "--body-timeout",
            type=click.FloatRange(0.1, 3600),
            default=30.0,
            show_default=True,
            envvar="OPENKMS_BODY_TIMEOUT",
            help="Seconds to receive a request's body (408).",
        ),
        click.option(
            "--keep-alive-timeout",
            type=click.IntRange(1, 3600),
            default=5,
            show_default=True,
            envvar="OPENKMS_KEEP_ALIVE_TIMEOUT",
            help="Idle seconds before a kept-aliveconnection closes.",
        ),
        click.option(
            "--max-connections",
            type=click.IntRange(1, 1_000_000),
            default=1024,
            show_default=True,
            envvar="OPENKMS_MAX_CONNECTIONS",
            help="Open connections per process; past it new ones are answered 503 and closed.",
        ),
        click.option(
            "--request-quotas",
            envvar="OPENKMS_REQUEST_QUOTAS",
            help="Request quotas (ThrottlingException): a TOML/JSON file, or aws-default. Off by default.",
        ),
        click.option(
            "--xks-timeout",
            type=click.FloatRange(0.01, 60),
            default=1.0,
            show_default=True,
            envvar="OPENKMS_XKS_TIMEOUT",
            help="Seconds an XKS proxy call may wait for the database (DependencyTimeoutException).",
        ),
        click.option(
            "--xks-client-timeout",
            type=click.FloatRange(0.01, 60),
            default=0.25,
            show_default=True,
            envvar="OPENKMS_XKS_CLIENT_TIMEOUT",
            help="Seconds a call to an external key store's XKS proxy may take (AWS's 250 ms).",
        ),
        click.option(
            "--xks-ca-bundle",
            "xks_ca_bundles",
            multiple=True,
            type=click.Path(exists=True, dir_okay=False),
            help="PEM CA certificates trusted for XKS proxies (repeatable), besides the system's store and "
            "this data directory's --tls-self-signed CA.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="OPENKMS_HOST")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, envvar="OPENKMS_PORT")
@click.option(
    "--region",
    "regions",
    multiple=True,
    envvar="OPENKMS_REGIONS",
    help="Answer only for this region (repeatable). Default: every well-formed region.",
)
@click.option(
    "--account-id", envvar="OPENKMS_ACCOUNT_ID", help="Account id of the default account (first start)."
)
@click.option("--log-level", default="warning", show_default=True, envvar="OPENKMS_LOG_LEVEL")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="OPENKMS_LOG_FORMAT",
    help="Logs on standard error: lines of text, or one JSON object per line.",
)
@click.option(
    "--metrics-listen",
    metavar="[HOST:]PORT",
    envvar="OPENKMS_METRICS_LISTEN",
    help="Serve Prometheus metrics at /metrics on this address (host 127.0.0.1 unless given; TLS when "
    "the API serves TLS). Off by default; one process only (--workers 1).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    envvar="OPENKMS_WORKERS",
    help="Server processes on this port (one per core; they share the database like separate servers).",
)
@click.option(
    "--multi-region-delay",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0, 86400),
    envvar="OPENKMS_MULTI_REGION_DELAY",
    help="Seconds a new multi-Region replica stays Creating, and the keys of UpdatePrimaryRegion Updating.",
)
@click.option(
    "--audit-export-dir",
    type=click.Path(file_okay=False),
    envvar="OPENKMS_AUDIT_EXPORT_DIR",
    help="Write the audit trail here as CloudTrail log files (every 5 minutes per account and Region) "
    "and signed digest files (hourly), laid out as CloudTrail's S3 bucket.",
)
@click.option(
    "--audit-stdout",
    is_flag=True,
    envvar="OPENKMS_AUDIT_STDOUT",
    help="Also write each audit record as one JSON line to standard output (for log shippers).",
)
@click.option(
    "--audit-retention-days",
    type=click.FloatRange(0, min_open=True),
    envvar="OPENKMS_AUDIT_RETENTION_DAYS",
    help="Prune audit records older than this many days (once a signed digest covers them), leaving a "
    "signed retention marker. Default: keep every record.",
)
@click.option(
    "--key-cache-size",
    type=click.IntRange(1, 10_000_000),
    default=10_000,
    show_default=True,
    envvar="OPENKMS_KEY_CACHE_SIZE",
    help="Keys one process keeps in memory with their unsealed material; past it the least recently "
    "used is dropped (and loaded again from the database when next used).",
)
@_edge_options
@data_options
def serve(
    host: str,
    port: int,
    regions: tuple[str, ...],
    account_id: str | None,
    log_level: str,
    log_format: str,
    metrics_listen: str | None,
    workers: int,
    multi_region_delay: float,
    audit_export_dir: str | None,
    audit_stdout: bool,
    audit_retention_days: float | None,
    key_cache_size: int,
    data_dir: Path,
    database_url: str | None,
    root_key_file: Path | None,
    **edge: Any,
) -> None:
    """Start the service."""
    # Late: serve's imports (uvicorn, the ASGI apps, the console, ~0.1 s) are for `openkms serve` only.
    from openkms.cli.serve import run_server

    run_server(
        host=host,
        port=port,
        regions=regions,
        account_id=account_id,
        log_level=log_level,
        log_format=log_format,
        metrics_listen=metrics_listen,
        workers=workers,
        multi_region_delay=multi_region_delay,
        audit_export_dir=audit_export_dir,
        audit_stdout=audit_stdout,
        audit_retention_days=audit_retention_days,
        key_cache_size=key_cache_size,
        data_dir=data_dir,
        database_url=database_url,
        root_key_file=root_key_file,
        **edge,
    )


cli.add_command(admin)
cli.add_command(operator)
cli.add_command(audit)
cli.add_command(backup)
cli.add_command(restore)
cli.add_command(migrate)
cli.add_command(import_key_material)
cli.add_command(get_parameters_for_import)
cli.add_command(wrap_key_material)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
