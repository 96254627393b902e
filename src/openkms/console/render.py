"""Templates (Jinja2, autoescaped, shipped in the package) and the words the console shows for the
API's values."""

from __future__ import annotations

import datetime as dt
from typing import Any

import jinja2

from openkms.console.regions import COMMON_REGIONS, region_label

STATE_LABELS = {
    "Enabled": "Enabled",
    "Disabled": "Disabled",
    "PendingDeletion": "Pending deletion",
    "PendingImport": "Pending import",
    "PendingReplicaDeletion": "Pending replica deletion",
    "Unavailable": "Unavailable",
    "Creating": "Creating",
    "Updating": "Updating",
}
ORIGIN_LABELS = {
    "AWS_KMS": "AWS KMS",
    "EXTERNAL": "External (Import key material)",
    "AWS_CLOUDHSM": "AWS CloudHSM key store",
    "EXTERNAL_KEY_STORE": "External key store",
}
USAGE_LABELS = {
    "ENCRYPT_DECRYPT": "Encrypt and decrypt",
    "SIGN_VERIFY": "Sign and verify",
    "GENERATE_VERIFY_MAC": "Generate and verify MAC",
    "KEY_AGREEMENT": "Key agreement",
}
MATERIAL_STATE_LABELS = {
    "CURRENT": "Current",
    "NON_CURRENT": "Non-current",
    "PENDING_ROTATION": "Pending rotation",
}
IMPORT_STATE_LABELS = {"IMPORTED": "Imported", "PENDING_IMPORT": "Pending import"}


def key_type(metadata: dict[str, Any]) -> str:
    spec = str(metadata.get("KeySpec", "SYMMETRIC_DEFAULT"))
    return "Symmetric" if spec == "SYMMETRIC_DEFAULT" or spec.startswith("HMAC_") else "Asymmetric"


def format_time(value: Any) -> str:
    """Epoch seconds (as the API's JSON gives dates) in a readable UTC form; "" for no value."""
    if isinstance(value, bool) or not isinstance(value, int | float | str) or value == "":
        return ""
    try:
        moment = dt.datetime.fromtimestamp(float(value), dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return str(value)
    return moment.strftime("%b %d, %Y %H:%M:%S UTC")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("openkms.console", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["time"] = format_time
    env.filters["state"] = lambda s: STATE_LABELS.get(str(s), str(s))
    env.filters["origin"] = lambda s: ORIGIN_LABELS.get(str(s), str(s))
    env.filters["usage"] = lambda s: USAGE_LABELS.get(str(s), str(s))
    env.filters["material_state"] = lambda s: MATERIAL_STATE_LABELS.get(str(s), str(s))
    env.filters["import_state"] = lambda s: IMPORT_STATE_LABELS.get(str(s), str(s or ""))
    env.filters["key_type"] = key_type
    env.filters["region_label"] = region_label
    env.filters["region_name"] = lambda r: COMMON_REGIONS.get(str(r), "")
    # The shared macros, for every template as ``m`` (an import per template per render costs more).
    env.globals["m"] = env.get_template("_macros.html").module
    return env


# Shared by every console on purpose: the templates are files of the package, compiled once (Jinja2's
# template cache is a pure memo of them); the environment holds no runtime's data.
ENV = _environment()


def compile_templates() -> None:
    """Compile every template now (the tests do: a template that does not compile fails them). The server
    does not: each template is compiled on the first request that needs it, a few milliseconds once,
    rather than ~150 ms for all of them before the first answer."""
    for name in ENV.list_templates(extensions=["html"]):
        ENV.get_template(name)


def render(name: str, **context: Any) -> str:
    return ENV.get_template(name).render(**context)
