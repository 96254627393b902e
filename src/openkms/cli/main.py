"""Entry point of the ``openkms`` command."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from openkms.cli import admin_iam  # noqa: F401 - registers the IAM commands of ``openkms admin``
from openkms.cli.admin import admin
from openkms.cli.audit import audit
from openkms.cli.byok import get_parameters_for_import, import_key_material, wrap_key_material
from openkms.cli.options import data_options, settings_from
from openkms.config import DEFAULT_PORT, DEFAULT_REGION


@click.group()
@click.version_option(package_name="openkms")
def cli() -> None:
    """openkms: a key management service that speaks the AWS KMS API."""


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
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    envvar="OPENKMS_WORKERS",
    help="Server processes on this port (one per core; they share the database like separate servers).",
)
@data_options
def serve(
    host: str,
    port: int,
    regions: tuple[str, ...],
    account_id: str | None,
    log_level: str,
    workers: int,
    data_dir: Path,
    database_url: str | None,
    root_key_file: Path | None,
) -> None:
    """Start the service."""
    import uvicorn

    from openkms.server.app import KmsApp
    from openkms.server.runtime import bootstrap, build_runtime, export_lines, write_credentials_file

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = settings_from(
        data_dir,
        database_url,
        root_key_file,
        host=host,
        port=port,
        regions=list(regions),
        account_id=account_id,
    )
    runtime = build_runtime(settings)
    endpoint = f"http://{host}:{port}"
    region = regions[0] if regions else DEFAULT_REGION
    new = bootstrap(runtime)
    click.echo(f"openkms listening on {endpoint} ({runtime.store.backend})")
    if new is not None:
        lines = export_lines(new, endpoint, region)
        if database_url is None:
            path = write_credentials_file(data_dir, lines)
            click.echo(f"Created account {new.account_id} and its administrator key (also saved in {path}):")
        else:
            click.echo(f"Created account {new.account_id} and its administrator key:")
        for line in lines:
            click.echo(line)
    elif database_url is None and (data_dir / "admin-credentials.env").exists():
        click.echo(f"Credentials of the first account: source {data_dir / 'admin-credentials.env'}")
    sys.stdout.flush()
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "access_log": False,
        "log_level": log_level,
        "server_header": False,
        "date_header": False,
    }
    if workers > 1:
        from openkms.server.factory import export_settings

        runtime.store.close()  # each worker opens its own
        export_settings(settings)
        uvicorn.run("openkms.server.factory:create_app", factory=True, workers=workers, **options)
        return
    app = KmsApp(runtime)
    from openkms.console import mount

    mount(app)  # the web console at /console/ on the same port
    uvicorn.Server(uvicorn.Config(app, **options)).run()


cli.add_command(admin)
cli.add_command(audit)
cli.add_command(import_key_material)
cli.add_command(get_parameters_for_import)
cli.add_command(wrap_key_material)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
