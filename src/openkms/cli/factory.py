"""The application of one worker process of ``openkms serve --workers N``: each worker builds its own
runtime (store, caches, audit writer, background jobs) from the settings the parent process passed in
the environment; the workers behave as one service like several servers on one database do.

It lives beside ``cli/serve.py`` (which wires the same application for one process) because it mounts
the console on the API: ``server/`` is the layer below ``console/`` and does not import it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from openkms.config import Settings
from openkms.console import mount
from openkms.server import logs
from openkms.server.app import KmsApp
from openkms.server.edge import ASGIApp, behind_proxies
from openkms.server.runtime import build_runtime

SETTINGS_ENV = "OPENKMS_WORKER_SETTINGS"


def export_settings(settings: Settings) -> None:
    """Hand the settings to the worker processes (inherited through the environment)."""
    values = asdict(settings)
    values["data_dir"] = str(settings.data_dir)
    values["root_key_file"] = str(settings.root_key_file) if settings.root_key_file else None
    os.environ[SETTINGS_ENV] = json.dumps(values)


def create_app() -> ASGIApp:
    logs.configure_worker()
    values = json.loads(os.environ[SETTINGS_ENV])
    values["data_dir"] = Path(values["data_dir"])
    if values.get("root_key_file"):
        values["root_key_file"] = Path(values["root_key_file"])
    app = KmsApp(build_runtime(Settings(**values)))
    mount(app)
    return behind_proxies(app, app.settings.trusted_proxies)
