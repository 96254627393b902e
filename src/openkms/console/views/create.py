"""The create-key wizard, step by step as AWS's console: configure key, add labels, key administrators,
key users, review (with the key policy shown and editable), then *Finish*.

The wizard keeps no server-side state: each step's form carries the choices of the other steps as
hidden fields, so that it works without JavaScript, with the browser's back button, and on any
server process. Nothing is created before *Finish*: CreateKey with the reviewed policy, then
CreateAlias, both through the API as the signed-in principal.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import RedirectResponse, Response

from openkms.auth.policy import build_console_key_policy
from openkms.console.api import ApiError
from openkms.console.http import PREFIX, whole_number
from openkms.console.page import Page, api_error
from openkms.console.policy import console_key_type
from openkms.console.views import keystores
from openkms.console.views.keys import show_key
from openkms.console.views.labels import alias_problem, alias_taken, check_tags
from openkms.errors import InternalError

STEPS = [
    "Configure key",
    "Add labels",
    "Define key administrative permissions",
    "Define key usage permissions",
    "Review",
]
KEY_TYPES = [("SYMMETRIC", "Symmetric"), ("ASYMMETRIC", "Asymmetric")]
KEY_USAGES: dict[str, list[str]] = {
    "SYMMETRIC": ["ENCRYPT_DECRYPT", "GENERATE_VERIFY_MAC"],
    "ASYMMETRIC": ["ENCRYPT_DECRYPT", "SIGN_VERIFY", "KEY_AGREEMENT"],
}
USAGE_CHOICES = [
    ("ENCRYPT_DECRYPT", "Encrypt and decrypt"),
    ("GENERATE_VERIFY_MAC", "Generate and verify MAC"),
    ("SIGN_VERIFY", "Sign and verify"),
    ("KEY_AGREEMENT", "Key agreement"),
]
_RSA = ["RSA_2048", "RSA_3072", "RSA_4096"]
_NIST = ["ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"]
KEY_SPECS: dict[tuple[str, str], list[str]] = {
    ("SYMMETRIC", "ENCRYPT_DECRYPT"): ["SYMMETRIC_DEFAULT"],
    ("SYMMETRIC", "GENERATE_VERIFY_MAC"): ["HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512"],
    ("ASYMMETRIC", "ENCRYPT_DECRYPT"): _RSA,
    ("ASYMMETRIC", "SIGN_VERIFY"): [
        *_RSA,
        *_NIST,
        "ECC_SECG_P256K1",
        "ECC_NIST_EDWARDS25519",
        "ML_DSA_44",
        "ML_DSA_65",
        "ML_DSA_87",
    ],
    ("ASYMMETRIC", "KEY_AGREEMENT"): _NIST,
}
SPEC_ORDER = list(dict.fromkeys(s for specs in KEY_SPECS.values() for s in specs))
ACCOUNT_ID = re.compile(r"^\d{12}$")
XKS_KEY_ID = re.compile(r"^[a-zA-Z0-9_.-]+$")
ORIGINS = ("AWS_KMS", "EXTERNAL", "EXTERNAL_KEY_STORE")


def spec_choices() -> list[dict[str, Any]]:
    """Every key spec with the key type:usage pairs that allow it (the page shows the allowed ones)."""
    return [
        {
            "spec": spec,
            "allowed": " ".join(f"{t}:{u}" for (t, u), specs in KEY_SPECS.items() if spec in specs),
        }
        for spec in SPEC_ORDER
    ]


@dataclass
class Wizard:
    key_type: str = "SYMMETRIC"
    key_usage: str = "ENCRYPT_DECRYPT"
    key_spec: str = "SYMMETRIC_DEFAULT"
    origin: str = "AWS_KMS"
    acknowledge: bool = False
    custom_key_store_id: str = ""
    xks_key_id: str = ""
    multi_region: bool = False
    alias: str = ""
    description: str = ""
    tags: list[list[str]] = field(default_factory=list)
    admins: list[str] = field(default_factory=list)
    admin_delete: bool = True
    users: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)

    @classmethod
    def from_form(cls, get: Callable[[str], str], get_all: Callable[[str], list[str]]) -> Wizard:
        keys, values = get_all("tag_key"), get_all("tag_value")
        return cls(
            key_type=get("key_type") or "SYMMETRIC",
            key_usage=get("key_usage") or "ENCRYPT_DECRYPT",
            key_spec=get("key_spec"),
            origin=get("origin") or "AWS_KMS",
            acknowledge=get("acknowledge") == "yes",
            custom_key_store_id=get("custom_key_store_id").strip(),
            xks_key_id=get("xks_key_id").strip(),
            multi_region=get("regionality") == "MULTI",
            alias=get("alias").strip(),
            description=get("description"),
            tags=[[k, values[i] if i < len(values) else ""] for i, k in enumerate(keys)],
            admins=list(dict.fromkeys(a for a in get_all("admin") if a)),
            admin_delete=get("admin_delete") == "yes",
            users=list(dict.fromkeys(u for u in get_all("user") if u)),
            accounts=get_all("account"),
        )

    def hidden(self, step: int) -> list[tuple[str, str]]:
        """The choices of the steps other than ``step``, as hidden form fields."""
        out: list[tuple[str, str]] = []
        if step != 1:
            out += [
                ("key_type", self.key_type),
                ("key_usage", self.key_usage),
                ("key_spec", self.key_spec),
                ("origin", self.origin),
                ("acknowledge", "yes" if self.acknowledge else "no"),
                ("custom_key_store_id", self.custom_key_store_id),
                ("xks_key_id", self.xks_key_id),
                ("regionality", "MULTI" if self.multi_region else "SINGLE"),
            ]
        if step != 2:
            out += [("alias", self.alias), ("description", self.description)]
            for key, value in self.tags:
                out += [("tag_key", key), ("tag_value", value)]
        if step != 3:
            out += [("admin", a) for a in self.admins]
            out.append(("admin_delete", "yes" if self.admin_delete else "no"))
        if step != 4:
            out += [("user", u) for u in self.users] + [("account", a) for a in self.accounts]
        return out

    def allowed_specs(self) -> list[str]:
        return KEY_SPECS.get((self.key_type, self.key_usage), [])

    def policy(self, account_id: str) -> str:
        metadata = {"KeySpec": self.key_spec, "KeyUsage": self.key_usage}
        return build_console_key_policy(
            account_id,
            key_type=console_key_type(metadata),
            origin=self.origin,
            multi_region=self.multi_region,
            administrators=self.admins,
            allow_admin_delete=self.admin_delete,
            users=self.users,
            other_accounts=[a for a in self.accounts if a],
        )


def _check_step1(w: Wizard) -> dict[str, str]:
    errors: dict[str, str] = {}
    if w.key_type not in KEY_USAGES:
        errors["key_type"] = "Choose a key type."
        return errors
    if w.key_usage not in KEY_USAGES[w.key_type]:
        errors["key_usage"] = "Choose a key usage that this key type allows."
        return errors
    allowed = w.allowed_specs()
    if w.key_spec not in allowed:
        if len(allowed) == 1:
            w.key_spec = allowed[0]
        else:
            errors["key_spec"] = "Choose a key spec that this key usage allows."
    if w.origin not in ORIGINS:
        errors["origin"] = "Choose a key material origin."
    elif w.origin == "EXTERNAL" and not w.acknowledge:
        errors["acknowledge"] = (
            "To create a key for imported key material, confirm that you understand the security, "
            "availability, and durability implications of using an imported key."
        )
    elif w.origin == "EXTERNAL_KEY_STORE":
        errors.update(_check_external_key_store(w))
    return errors


def _check_external_key_store(w: Wizard) -> dict[str, str]:
    """A key in an external key store: symmetric encryption only, single-Region, a store and an
    external key chosen (the service checks that the store is connected and the key usable)."""
    errors: dict[str, str] = {}
    if (w.key_type, w.key_usage) != ("SYMMETRIC", "ENCRYPT_DECRYPT"):
        errors["origin"] = (
            "Keys in an external key store are symmetric encryption keys: choose the key type Symmetric "
            "and the key usage Encrypt and decrypt."
        )
    if w.multi_region:
        errors["regionality"] = "Keys in an external key store are single-Region keys."
    if not w.custom_key_store_id or len(w.custom_key_store_id) > 64:
        errors["custom_key_store_id"] = "Choose a connected external key store."
    if not w.xks_key_id:
        errors["xks_key_id"] = "Enter the ID of the external key, as the external key manager knows it."
    elif len(w.xks_key_id) > 128 or not XKS_KEY_ID.match(w.xks_key_id):
        errors["xks_key_id"] = (
            "The external key ID can have up to 128 letters, numbers and the characters - _ . (no spaces)."
        )
    return errors


async def _check_step2(page: Page, w: Wizard) -> dict[str, str]:
    errors: dict[str, str] = {}
    w.alias = w.alias.removeprefix("alias/")
    problem = alias_problem(w.alias)
    if problem is not None:
        errors["alias"] = problem
    elif await alias_taken(page.api, w.alias):
        errors["alias"] = "An alias with this name already exists. Enter a different alias."
    if len(w.description) > 8192:
        errors["description"] = "The description can have up to 8192 characters."
    w.tags = check_tags(w.tags, errors)
    return errors


def _check_step4(w: Wizard) -> dict[str, str]:
    errors: dict[str, str] = {}
    w.accounts = [a.strip() for a in w.accounts if a.strip()]
    for i, account in enumerate(w.accounts):
        if not ACCOUNT_ID.match(account):
            errors[f"account_{i}"] = "Enter a 12-digit AWS account ID."
    return errors


def _add_arn(values: list[str], arn: str, errors: dict[str, str], name: str) -> None:
    arn = arn.strip()
    if not arn.startswith("arn:") or (":iam::" not in arn and ":sts::" not in arn):
        errors[name] = "Enter the ARN of an IAM user or role, such as arn:aws:iam::111122223333:user/Alice."
    elif arn not in values:
        values.append(arn)


async def _render(
    page: Page, w: Wizard, step: int, errors: dict[str, str], *, status: int = 200, **extra: Any
) -> Response:
    context: dict[str, Any] = {}
    if step in (1, 5) and (step == 1 or w.origin == "EXTERNAL_KEY_STORE"):
        try:
            stores = await keystores.list_stores(page.api)
            context["key_stores"] = [s for s in stores if s.get("ConnectionState") == "CONNECTED"]
        except ApiError as exc:
            context.update(key_stores=[], key_stores_error=api_error(exc))
    if step in (3, 4):
        principals, problem = await page.api.iam_principals()
        context.update(principals=principals, iam_error=api_error(problem) if problem else None)
    if step == 5 and "policy" not in extra:
        if page.principal is None:  # the wizard is a signed-in view
            raise InternalError("the key wizard without a signed-in principal")
        extra["policy"] = w.policy(page.principal.account_id)
    return page.render(
        "create.html",
        status=status,
        w=w,
        step=step,
        steps=STEPS,
        hidden=w.hidden(step),
        errors=errors,
        key_types=KEY_TYPES,
        usage_choices=USAGE_CHOICES,
        key_usages=KEY_USAGES,
        spec_choices=spec_choices(),
        **context,
        **extra,
    )


async def create_form(page: Page) -> Response:
    return await _render(page, Wizard(), 1, {})


async def create_submit(page: Page) -> Response:
    request = page.request
    w = Wizard.from_form(request.field, request.fields)
    step = request.field("step")
    number = whole_number(step)
    current = number if number is not None and 1 <= number <= 5 else 1
    action = request.field("action") or "next"
    errors: dict[str, str] = {}
    if action == "previous":
        return await _render(page, w, max(1, current - 1), {})
    if action == "add_tag":
        w.tags.append(["", ""])
        return await _render(page, w, 2, {}, focus=f"tag_key_{len(w.tags) - 1}")
    if action.startswith("remove_tag:"):
        index = whole_number(action.partition(":")[2])
        if index is not None and index < len(w.tags):
            w.tags.pop(index)
        return await _render(page, w, 2, {})
    if action == "add_admin":
        _add_arn(w.admins, request.field("admin_arn"), errors, "admin_arn")
        return await _render(page, w, 3, errors, status=400 if errors else 200)
    if action == "add_user":
        _add_arn(w.users, request.field("user_arn"), errors, "user_arn")
        return await _render(page, w, 4, errors, status=400 if errors else 200)
    if action == "add_account":
        w.accounts.append("")
        return await _render(page, w, 4, {}, focus=f"account_{len(w.accounts) - 1}")
    if action.startswith("remove_account:"):
        index = whole_number(action.partition(":")[2])
        if index is not None and index < len(w.accounts):
            w.accounts.pop(index)
        return await _render(page, w, 4, {})
    # Next or Finish: every step up to this one must be complete (the hidden fields could be stale).
    for number in range(1, current + 1):
        if number == 1:
            errors = _check_step1(w)
        elif number == 2:
            errors = await _check_step2(page, w)
        elif number == 4:
            errors = _check_step4(w)
        if errors:
            return await _render(page, w, number, errors, status=400)
    if action == "finish" and current == 5:
        return await _finish(page, w, request.field("policy").replace("\r\n", "\n"))
    return await _render(page, w, min(current + 1, 5), {})


async def _finish(page: Page, w: Wizard, policy: str) -> Response:
    api = page.api
    if not policy.strip():
        return await _render(page, w, 5, {"finish": "Enter a key policy."}, status=400, policy=policy)
    try:
        created = await api.kms(
            "CreateKey",
            Policy=policy,
            Description=w.description,
            KeyUsage=w.key_usage,
            KeySpec=w.key_spec,
            Origin=w.origin,
            MultiRegion=True if w.multi_region else None,
            CustomKeyStoreId=w.custom_key_store_id if w.origin == "EXTERNAL_KEY_STORE" else None,
            XksKeyId=w.xks_key_id if w.origin == "EXTERNAL_KEY_STORE" else None,
            Tags=[{"TagKey": k, "TagValue": v} for k, v in w.tags] or None,
        )
    except ApiError as exc:
        return await _render(page, w, 5, {}, status=exc.status, policy=policy, finish_error=api_error(exc))
    key_id = created["KeyMetadata"]["KeyId"]
    try:
        await api.kms("CreateAlias", AliasName="alias/" + w.alias, TargetKeyId=key_id)
    except ApiError as exc:
        return await show_key(
            page, key_id, "aliases", status=exc.status, errors={"alias_add": api_error(exc)}
        )
    return RedirectResponse(f"{PREFIX}/keys/{key_id}?flash=created", 303)
