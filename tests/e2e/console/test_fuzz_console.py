"""Robustness of the web console: malformed requests get a page in plain words or a redirect, never a
5xx or a hang, and the session keeps working.

Signed in over HTTP (no browser) with the administrator key of a fresh account, the test sends every
GET route and POST form of the console (``openkms.console.views.ROUTES``) requests generated with a
seeded ``random.Random`` (``OPENKMS_FUZZ_SEED``, ``OPENKMS_CONSOLE_FUZZ_CASES`` in all): the route's
own parameters and fields with plausible values (the account's keys of every kind and state, their
aliases, grants and key material, policies) mixed with malformed ones (empty, huge, NUL and control
characters, non-UTF-8 percent escapes, numbers in other scripts, dates out of range, duplicate
fields, unknown fields), key ids of every shape, and for the key-material upload form huge or
malformed multipart bodies. Raw requests come first: every POST without the CSRF token (the CSRF
refusal, not a 500), with a wrong token, from another origin, without a session, and the HTTP
envelope's odd cases (methods, content types, cookies, paths, sizes).

Each answer must come within ``TIMEOUT`` seconds over one keep-alive connection, with a status below
500, the console's security headers, and be an HTML page, a redirect within the console, or the zip of
import parameters. Afterwards the session still shows pages and makes changes, and signs out.
"""

from __future__ import annotations

import functools
import os
import random
import re
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from tests.conftest import REGION, Server
from tests.e2e.console.http import Answer
from tests.e2e.importing import import_material, wrap
from tests.e2e.test_fuzz_requests import JUNK_STRINGS, _policies, _server_log_tail
from tests.e2e.util import KeepAlive, NoAnswer

SEED = int(os.environ.get("OPENKMS_FUZZ_SEED", "4934995"))
CASES = int(os.environ.get("OPENKMS_CONSOLE_FUZZ_CASES", "1500"))
TIMEOUT = 10.0
FORM_CT = "application/x-www-form-urlencoded"
CSRF_REFUSAL = "The form&#39;s security token is missing or out of date"
ORIGIN_REFUSAL = "The request did not come from this console."

Pairs = list[tuple[str, str]]
ALERT = re.compile(r'class="(?:alert error|field-error)"[^>]*>(.*?)</(?:div|p)>', re.S)


class Raw(str):
    """A query or form value sent exactly as given (already percent-encoded, or deliberately not)."""


def encode(pairs: Pairs) -> str:
    return "&".join(
        f"{k if isinstance(k, Raw) else quote(k, safe='')}={v if isinstance(v, Raw) else quote(v, safe='')}"
        for k, v in pairs
    )


# --- the client ----------------------------------------------------------------------------------------


class Browser:
    """A console client without a browser over one keep-alive connection: cookies kept by hand,
    redirects not followed."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        parts = urlsplit(endpoint)
        self.http = KeepAlive(parts.hostname or "127.0.0.1", parts.port or 80, TIMEOUT)
        self.cookies: dict[str, str] = {}

    @property
    def count(self) -> int:
        return self.http.count

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        cookies: bool = True,
    ) -> Answer:
        """One request; ``cookies`` False sends and keeps none (the headers may then carry a Cookie)."""
        sent = {"Origin": self.endpoint} if method == "POST" else {}
        if cookies and self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for name, value in (headers or {}).items():
            sent.pop(name, None)
            if value is not None:
                sent[name] = value
        started = time.perf_counter()
        status, answered, data = self.http.exchange(method, path, body, sent)
        answer = Answer(status, answered, data, time.perf_counter() - started)
        if cookies:
            for cookie in answer.set_cookies():
                name, _, rest = cookie.partition("=")
                if "Max-Age=0" in cookie:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = rest.split(";", 1)[0]
        return answer

    def get(self, path: str, **kw: Any) -> Answer:
        return self.request("GET", path, **kw)

    def post(self, path: str, pairs: Pairs, headers: dict[str, str] | None = None, **kw: Any) -> Answer:
        body = encode(pairs).encode("utf-8", "surrogateescape")
        return self.request("POST", path, body, {"Content-Type": FORM_CT, **(headers or {})}, **kw)

    def post_multipart(self, path: str, body: bytes, boundary: str | None, **kw: Any) -> Answer:
        content_type = "multipart/form-data" + (f"; boundary={boundary}" if boundary is not None else "")
        return self.request("POST", path, body, {"Content-Type": content_type}, **kw)


def multipart(boundary: str, fields: Pairs, files: list[tuple[str, str, bytes]]) -> bytes:
    chunks: list[bytes] = []
    for name, value in fields:
        head = f'Content-Disposition: form-data; name="{name}"'
        chunks.append(
            f"--{boundary}\r\n{head}\r\n\r\n".encode() + value.encode("utf-8", "surrogateescape") + b"\r\n"
        )
    for name, filename, data in files:
        head = f'Content-Disposition: form-data; name="{name}"; filename="{filename}"'
        chunks.append(
            f"--{boundary}\r\n{head}\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks)


# --- judging answers -----------------------------------------------------------------------------------


@dataclass
class Outcomes:
    failures: list[str] = field(default_factory=list)
    statuses: dict[tuple[str, int], int] = field(default_factory=dict)

    def fail(self, label: str, request: str, problem: str, answer: Answer | None) -> None:
        shown = request if len(request) <= 400 else request[:400] + f"...({len(request)} characters)"
        reply = "" if answer is None else f" -> {answer.status} {answer.text[-600:]!r}"
        self.failures.append(f"{label}: {problem}\n    request: {shown!r}{reply}")


def judge(
    outcomes: Outcomes,
    label: str,
    request: str,
    answer: Answer,
    *,
    download: bool = False,
    head: bool = False,
) -> None:
    key = (label.split(" ", 2)[0] + " " + label.split(" ", 2)[1], answer.status)
    outcomes.statuses[key] = outcomes.statuses.get(key, 0) + 1
    if answer.status >= 500:
        outcomes.fail(label, request, f"HTTP {answer.status}", answer)
        return
    if not (answer.header("content-security-policy") and answer.header("x-frame-options")):
        outcomes.fail(label, request, "an answer without the console's security headers", answer)
    content_type = answer.header("content-type") or ""
    if 300 <= answer.status < 400:
        location = answer.header("location") or ""
        if not location.startswith("/console/"):
            outcomes.fail(label, request, f"a redirect to {location!r}", answer)
    elif (download and answer.status == 200 and content_type == "application/zip") or (
        head and not answer.body and content_type.startswith("text/html")
    ):
        return  # the import parameters, or a page without its body (HEAD)
    elif not content_type.startswith("text/html") or not answer.text.startswith("<!doctype html>"):
        outcomes.fail(label, request, f"not an HTML page ({content_type})", answer)


# --- the account's keys --------------------------------------------------------------------------------


@dataclass
class Pools:
    account_id: str
    keys: dict[str, str] = field(default_factory=dict)  # kind -> key id
    key_ids: list[str] = field(default_factory=list)  # the fuzzed keys, and ids of every other shape
    aliases: list[str] = field(default_factory=list)
    grant_ids: list[str] = field(default_factory=list)
    material_ids: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    arns: list[str] = field(default_factory=list)
    # (key id, import token, wrapped key material) that ImportKeyMaterial accepts
    imports: list[tuple[str, bytes, bytes]] = field(default_factory=list)


def build_pools(server: Server, account: dict[str, str]) -> Pools:
    creds = {"access_key": account["AccessKeyId"], "secret_key": account["SecretAccessKey"]}
    kms = server.client(**creds)
    principal = server.client("sts", **creds).get_caller_identity()["Arn"]
    pools = Pools(account["AccountId"])
    specs: dict[str, dict[str, Any]] = {
        "sym": {},
        "external": {"Origin": "EXTERNAL"},
        "external-pending": {"Origin": "EXTERNAL"},
        "rsa-sign": {"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"},
        "hmac": {"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"},
        "multi-region": {"MultiRegion": True},
        "disabled": {},
        "pending-deletion": {},
        "reserved": {},  # never fuzzed: the check that the session still works
    }
    for kind, spec in specs.items():
        key_id = kms.create_key(Description=f"console fuzz {kind}", **spec)["KeyMetadata"]["KeyId"]
        pools.keys[kind] = key_id
        kms.create_alias(AliasName=f"alias/cfz-{kind}", TargetKeyId=key_id)
        if kind != "reserved":
            pools.key_ids.append(key_id)
            pools.aliases.append(f"alias/cfz-{kind}")
    sym = pools.keys["sym"]
    import_material(kms, pools.keys["external"], os.urandom(32))
    kms.tag_resource(KeyId=sym, Tags=[{"TagKey": "team", "TagValue": "fuzz"}])
    kms.enable_key_rotation(KeyId=sym)
    for kind in ("sym", "external"):
        grant = kms.create_grant(KeyId=pools.keys[kind], GranteePrincipal=principal, Operations=["Decrypt"])
        pools.grant_ids.append(grant["GrantId"])
    material = kms.describe_key(KeyId=pools.keys["external"])["KeyMetadata"].get("CurrentKeyMaterialId")
    if material:
        pools.material_ids.append(material)
    for kind in ("external-pending", "external"):
        params = kms.get_parameters_for_import(
            KeyId=pools.keys[kind], WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
        )
        material = os.urandom(32)
        wrapped = wrap("RSAES_OAEP_SHA_256", params["PublicKey"], material)
        pools.imports.append((pools.keys[kind], params["ImportToken"], wrapped))
    kms.disable_key(KeyId=pools.keys["disabled"])
    kms.schedule_key_deletion(KeyId=pools.keys["pending-deletion"], PendingWindowInDays=30)
    foreign = server.client().create_key(Description="console fuzz foreign")["KeyMetadata"]["KeyId"]
    pools.key_ids += [
        foreign,
        str(uuid.uuid4()),
        "mrk-" + "0" * 32,
        "x",
        "-",
        "0" * 64,
        "A" * 64,
        "alias",
        sym.upper(),
        sym + "0",
        sym[:-1],
    ]
    pools.policies = _policies(pools.account_id, principal)
    pools.arns = [
        principal,
        f"arn:aws:iam::{pools.account_id}:root",
        f"arn:aws:iam::{pools.account_id}:user/nobody",
        f"arn:aws:iam::{pools.account_id}:role/nobody",
        "arn:aws:iam::999999999999:root",
        f"arn:aws:sts::{pools.account_id}:assumed-role/r/s",
        pools.account_id,
        "999999999999",
        "arn:",
        "*",
    ]
    return pools


# --- the generator -------------------------------------------------------------------------------------

NUMBERS = ("0", "1", "7", "30", "90", "365", "2560", "-1", " 7", "7 ", "+7", "1e3", "1.5", "0x10", "\u00b2",
           "\u0663", "\u0663\u0660", "\uff17", "9" * 30, "9" * 5000, "")  # fmt: skip
DATES = ("2030-01-31T12:00", "2030-01-31T12:00:00Z", "2030-01-31", "2030-13-45T99:99", "0001-01-01T00:00",
         "0001-01-01T00:00+14:00", "9999-12-31T23:59", "9999-12-31T23:59-14:00", "1970-01-01T00:00",
         "garbage", "", "2030-01-31T12:00+25:00", "20300131T1200",
         "\u0662\u0660\u0663\u0660-01-01")  # fmt: skip
ODD = ("<script>alert(1)</script>", "{{7*7}}", "${7*7}", "\"'><", "%00", "%", "a\\b", "\r\nX-Injected: 1",
       "../../etc/passwd", "\u202e", "\ufffe", "\U0001f600")  # fmt: skip


class Generator:
    def __init__(self, rng: random.Random, pools: Pools) -> None:
        self.rng = rng
        self.pools = pools

    def _word(self, chars: str = string.ascii_lowercase + string.digits, low: int = 1, high: int = 12) -> str:
        return "".join(self.rng.choice(chars) for _ in range(self.rng.randint(low, high)))

    def junk(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.35:
            return rng.choice(JUNK_STRINGS)
        if roll < 0.55:
            return rng.choice(ODD)
        if roll < 0.7:
            return rng.choice(NUMBERS)
        if roll < 0.8:
            return rng.choice(DATES)
        if roll < 0.87:
            return rng.choice(("x" * 20_000, "\x00" * 100, "é" * 3000, ",".join(["-"] * 2000)))
        ranges = ((0, 0x20), (0x20, 0x7F), (0x80, 0x3000))  # control, ASCII, other characters
        return "".join(chr(rng.randrange(*rng.choice(ranges))) for _ in range(rng.randint(1, 20)))

    def value(self, name: str, junk: float = 0.25) -> str:
        """A value for a field or parameter: mostly plausible, sometimes anything."""
        rng, p = self.rng, self.pools
        if rng.random() < junk:
            return self.junk()
        pick = rng.choice
        plausible: dict[str, Callable[[], str]] = {
            "filter": lambda: pick(
                (
                    "",
                    "fuzz",
                    "cfz",
                    "sym",
                    pick(p.key_ids),
                    pick(p.aliases),
                    "alias/cfz-sym",
                    "enabled",
                    "x" * 300,
                )
            ),
            "marker": lambda: pick(("", "x", self._word(), pick(p.key_ids))),
            "trail": lambda: pick(
                ("", "-", "-,-", ",".join(self._word() for _ in range(3)), "-," + pick(p.key_ids))
            ),
            "tab": lambda: pick(
                ("policy", "crypto", "tags", "rotation", "material", "aliases", "grants", "regionality", "")
            ),
            "view": lambda: pick(("default", "json", "")),
            "flash": lambda: pick(("created", "enabled", "tag_added", "material_imported", "nothing")),
            "reason": lambda: pick(("expired", "signedout", "")),
            "key_id": lambda: pick([*p.key_ids, f"arn:aws:kms:{REGION}:{p.account_id}:key/{p.key_ids[0]}"]),
            "event_name": lambda: pick(("CreateKey", "Encrypt", "ConsoleLogin", "LookupEvents", "")),
            "principal": lambda: pick(("admin", p.account_id, pick(p.arns), "")),
            "start": lambda: pick(DATES),
            "end": lambda: pick(DATES),
            "read_only": lambda: pick(("true", "false", "all", "")),
            "before": lambda: pick(("1", "100", "0", "-1", "9" * 30, "\u00b2", "")),
            "page_size": lambda: pick(("10", "25", "50", "100", "0", "\u00b2", "9" * 5000)),
            "show_origin": lambda: pick(("yes", "no", "")),
            "op": lambda: pick(
                (
                    "enable",
                    "disable",
                    "cancel_deletion",
                    "put_policy",
                    "policy_add",
                    "policy_remove",
                    "policy_admin_delete",
                    "description",
                    "tag_add",
                    "tag_remove",
                    "rotation",
                    "rotate_now",
                    "alias_add",
                    "alias_delete",
                    "grant_revoke",
                    "material_delete",
                    "update_primary",
                    "connect",
                    "disconnect",
                    "nothing",
                    "",
                )
            ),
            "role": lambda: pick(("admin", "user", "account", "", "root")),
            "arn_text": lambda: pick(p.arns),
            "arn": lambda: pick(p.arns),
            "value": lambda: pick(p.arns),
            "allow_delete": lambda: pick(("yes", "no")),
            "policy": lambda: pick(p.policies),
            "description": lambda: pick(("", "fuzz", "é" * 10, "x" * 9000)),
            "tag_key": lambda: pick(("team", "env", "", "aws:x", "k" * 129)),
            "tag_value": lambda: pick(("", "v", "v" * 257)),
            "rotation": lambda: pick(("yes", "no")),
            "rotation_period": lambda: pick(NUMBERS),
            "alias": lambda: pick(
                [*p.aliases, "alias/cfz-new-" + self._word(), "cfz-" + self._word(), "aws/x"]
            ),
            "grant_id": lambda: pick([*p.grant_ids, "0" * 64, ""]),
            "material_id": lambda: pick([*p.material_ids, "0" * 64, ""]),
            "waiting_period": lambda: pick(("7", "30", "15", *NUMBERS)),
            "confirm": lambda: pick(("yes", "yes", "no", "")),
            "wrapping_key_spec": lambda: pick(("RSA_2048", "RSA_3072", "RSA_4096", "RSA_1024", "")),
            "wrapping_algorithm": lambda: pick(
                ("RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256", "RSAES_PKCS1_V1_5", "")
            ),
            "expiration": lambda: pick(("none", "expires", "")),
            "valid_to": lambda: pick(DATES),
            "key_material_description": lambda: pick(("", "m", "x" * 300)),
            "import_type": lambda: pick(("NEW_KEY_MATERIAL", "EXISTING_KEY_MATERIAL", "OTHER", "")),
            "step": lambda: pick(("1", "2", "3", "4", "5", "0", "6", *NUMBERS)),
            "action": lambda: pick(
                (
                    "next",
                    "previous",
                    "add_tag",
                    "remove_tag:0",
                    "remove_tag:9",
                    "add_admin",
                    "add_user",
                    "add_account",
                    "remove_account:0",
                    "finish",
                    "finish",
                    "nothing",
                    "remove_tag:" + pick(NUMBERS),
                    "remove_account:" + pick(NUMBERS),
                )
            ),
            "key_type": lambda: pick(("SYMMETRIC", "ASYMMETRIC", "")),
            "key_usage": lambda: pick(
                ("ENCRYPT_DECRYPT", "GENERATE_VERIFY_MAC", "SIGN_VERIFY", "KEY_AGREEMENT")
            ),
            "key_spec": lambda: pick(
                ("SYMMETRIC_DEFAULT", "RSA_2048", "ECC_NIST_P256", "HMAC_256", "ML_DSA_44", "")
            ),
            "origin": lambda: pick(("AWS_KMS", "EXTERNAL", "EXTERNAL_KEY_STORE", "AWS_CLOUDHSM")),
            "custom_key_store_id": lambda: pick(("cks-" + "0" * 17, "", "cks-x")),
            "xks_key_id": lambda: pick(("ext-1", "", "a b", "x" * 129)),
            "replica_region": lambda: pick(("eu-west-1", "us-east-1", "ap-south-1", "xx-nowhere-1", "")),
            "primary_region": lambda: pick(("eu-west-1", "us-east-1", "xx-nowhere-1", "")),
            "name": lambda: pick(("cfz-store", "", "x" * 300)),
            "endpoint": lambda: pick(("https://127.0.0.1:1", "http://127.0.0.1", "https://", "")),
            "path": lambda: pick(("/kms/xks/v1", "/a/kms/xks/v1", "/x", "")),
            "connectivity": lambda: pick(("PUBLIC_ENDPOINT", "VPC_ENDPOINT_SERVICE", "")),
            "acknowledge": lambda: pick(("yes", "no")),
            "regionality": lambda: pick(("SINGLE", "MULTI")),
            "admin": lambda: pick(p.arns),
            "admin_delete": lambda: pick(("yes", "no")),
            "user": lambda: pick(p.arns),
            "account": lambda: pick(("", p.account_id, "999999999999", "12")),
            "admin_arn": lambda: pick(p.arns),
            "user_arn": lambda: pick(p.arns),
            "access_key_id": lambda: pick(
                ("AKIA" + "Q" * 16, "", self._word(string.ascii_uppercase, 16, 20))
            ),
            "secret_access_key": lambda: pick(("x" * 40, "Zq" * 22, "")),
            "region": lambda: pick((REGION, "eu-west-1", "", "xx-nowhere-1")),
        }
        make = plausible.get(name)
        return make() if make is not None else self.junk()

    def pairs(self, names: tuple[str, ...], repeated: tuple[str, ...] = (), wanted: float = 0.8) -> Pairs:
        """Some of the fields (each at most once, ``repeated`` ones any number of times), then defects."""
        rng = self.rng
        out: Pairs = []
        for name in names:
            if rng.random() < wanted:
                out.append((name, self.value(name)))
        for name in repeated:
            out += [(name, self.value(name)) for _ in range(rng.choice((0, 1, 2, 3, 60)))]
        roll = rng.random()
        if roll < 0.1 and out:  # a duplicate field with another value
            name, _ = rng.choice(out)
            out.append((name, self.junk()))
        elif roll < 0.2:  # unknown fields
            out += [(rng.choice(("x", "", "csrf", "op[]", "a\x00", "é")), self.junk()) for _ in range(2)]
        elif roll < 0.3 and out:  # a non-UTF-8 or malformed percent escape
            i = rng.randrange(len(out))
            out[i] = (
                out[i][0],
                Raw(quote(out[i][1], safe="") + rng.choice(("%FF", "%C3", "%ED%A0%80", "%", "%Z"))),
            )
        elif roll < 0.35:  # separators only
            out.append((Raw("&&="), Raw("=&")))
        return out

    def key_id(self) -> str:
        """Mostly one of the account's keys (the first ids of the pool), else an id of any shape."""
        mine = len(self.pools.keys) - 1
        pool = self.pools.key_ids[:mine] if self.rng.random() < 0.7 else self.pools.key_ids
        return self.rng.choice(pool)

    def key_action(self) -> Pairs:
        """A form of a key's page: an action and the fields it reads (and now and then others)."""
        rng = self.rng
        op = self.value("op", junk=0.1)
        names = {
            "put_policy": ("policy",),
            "policy_add": ("role", "arn_text", "arn"),
            "policy_remove": ("role", "value"),
            "policy_admin_delete": ("allow_delete",),
            "description": ("description",),
            "tag_add": ("tag_key", "tag_value"),
            "tag_remove": ("tag_key",),
            "rotation": ("rotation", "rotation_period"),
            "alias_add": ("alias",),
            "alias_delete": ("alias",),
            "grant_revoke": ("grant_id",),
            "material_delete": ("material_id",),
        }.get(op, ())
        fields = names + ("view",) + ((rng.choice(KEY_FIELDS),) if rng.random() < 0.2 else ())
        out: Pairs = [("op", op)] + [(name, self.value(name, junk=0.15)) for name in fields]
        tab = OP_TABS.get(op.split("_")[0], "policy")  # the tab whose form it is, where its error shows
        out.append(("tab", tab if rng.random() < 0.8 else self.value("tab")))
        if rng.random() < 0.15:
            out += self.pairs(())  # a defect
        return out


# Every route of the console (views.ROUTES), with its query parameters (GET) or form fields (POST).
GET_ROUTES: list[tuple[str, tuple[str, ...]]] = [
    ("/console/signin", ("reason",)),
    ("/console/keys", ("filter", "marker", "trail")),
    ("/console/keys/create", ()),
    ("/console/keys/{K}", ("tab", "view", "flash")),
    ("/console/keys/{K}/delete", ()),
    ("/console/keys/{K}/import", ()),
    ("/console/audit", ("key_id", "event_name", "principal", "start", "end", "read_only", "before")),
    ("/console/keys/{K}/replicate", ()),
    ("/console/keystores", ("flash",)),
    ("/console/keystores/create", ()),
    ("/console/keystores/{K}", ("flash",)),
    ("/console/keystores/{K}/edit", ()),
    ("/console/keystores/{K}/delete", ()),
]
POST_ROUTES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("/console/preferences", ("page_size", "show_origin"), ()),
    ("/console/keys/create", ("step", "action", "key_type", "key_usage", "key_spec", "origin", "acknowledge",
                              "regionality", "alias", "description", "admin_delete", "admin_arn", "user_arn",
                              "policy", "custom_key_store_id", "xks_key_id"),
     ("tag_key", "tag_value", "admin", "user", "account")),
    ("/console/keys/{K}", ("op", "tab", "view", "role", "arn_text", "arn", "value", "allow_delete", "policy",
                           "description", "tag_key", "tag_value", "rotation", "rotation_period", "alias",
                           "grant_id", "material_id", "primary_region"), ()),
    ("/console/keys/{K}/delete", ("waiting_period", "confirm"), ()),
    ("/console/keys/{K}/import/parameters", ("wrapping_key_spec", "wrapping_algorithm"), ()),
    ("/console/signin", ("access_key_id", "secret_access_key", "region"), ()),
    ("/console/keys/{K}/replicate", ("action", "alias", "description", "policy"),
     ("replica_region", "tag_key", "tag_value")),
    ("/console/keystores/create", ("name", "endpoint", "path", "access_key_id", "secret_access_key",
                                   "connectivity"), ()),
    ("/console/keystores/{K}", ("op",), ()),
    ("/console/keystores/{K}/edit", ("name", "endpoint", "path", "access_key_id", "secret_access_key"), ()),
    ("/console/keystores/{K}/delete", ("confirm",), ()),
]  # fmt: skip
KEY_FIELDS = POST_ROUTES[2][1]
OP_TABS = {"tag": "tags", "rotation": "rotation", "rotate": "material", "alias": "aliases", "grant": "grants",
           "material": "material"}  # fmt: skip
SIGNED_IN_POSTS = ["/console/signout", "/console/preferences", "/console/keys/create", "/console/keys/{K}",
                   "/console/keys/{K}/delete", "/console/keys/{K}/import",
                   "/console/keys/{K}/import/parameters", "/console/keys/{K}/replicate",
                   "/console/keystores/create", "/console/keystores/{K}", "/console/keystores/{K}/edit",
                   "/console/keystores/{K}/delete"]  # fmt: skip


# --- raw requests --------------------------------------------------------------------------------------


@dataclass
class RawCase:
    label: str
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    cookies: bool = True  # send the session's cookies (else: none, or those of ``headers``)
    expect_status: int | None = None
    expect_text: str | None = None


def _mp(boundary: str) -> dict[str, str]:
    return {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def raw_cases(pools: Pools, token: str) -> list[RawCase]:
    sym = pools.keys["sym"]
    form = {"Content-Type": FORM_CT}

    def refused(label: str, path: str, body: bytes, headers: dict[str, str] = form) -> RawCase:
        return RawCase(label, "POST", path, body, headers, expect_status=403, expect_text=CSRF_REFUSAL)

    def elsewhere(label: str, path: str, body: bytes, headers: dict[str, str]) -> RawCase:
        return RawCase(label, "POST", path, body, headers, expect_status=403, expect_text=ORIGIN_REFUSAL)

    good = f"csrf_token={quote(token)}".encode()
    cases: list[RawCase] = []
    for path in SIGNED_IN_POSTS:
        path = path.replace("{K}", sym)
        change = good + b"&op=disable"
        cases += [
            refused(f"no token {path}", path, b"op=disable&confirm=yes&waiting_period=7"),
            refused(f"wrong token {path}", path, b"op=disable&csrf_token=" + b"0" * 43),
            refused(f"empty token {path}", path, b"csrf_token=&op=disable"),
            refused(f"NUL token {path}", path, b"csrf_token=%00&op=disable"),
            refused(f"non-UTF-8 token {path}", path, b"csrf_token=%FF%FE&op=disable"),
            refused(f"a token in the query {path}", f"{path}?{good.decode()}", b"op=disable"),
            refused(f"no token, multipart {path}", path, multipart("b0", [("op", "disable")], []), _mp("b0")),
            elsewhere(f"another origin {path}", path, change, {**form, "Origin": "https://evil.example"}),
            elsewhere(f"another referer {path}", path, change,
                      {**form, "Origin": None, "Referer": "http://evil/x"}),  # type: ignore[dict-item]
            RawCase(f"no session {path}", "POST", path, change, form, cookies=False, expect_status=401),
        ]  # fmt: skip
    key = f"/console/keys/{sym}"
    up = key + "/import"
    tok = [("csrf_token", token)]
    odd_part = (
        b'--b8\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n' + token.encode() + b"\r\n"
        b'--b8\r\nContent-Disposition: form-data; name="import_token"; filename="\\"\xff\x00"\r\n'
        b"Content-Type: \xff\r\nX: \x00\r\n\r\n\x00\x01\r\n"
        b"--b8\r\nContent-Disposition: form-data\r\n\r\nx\r\n"
        b'--b8\r\nContent-Disposition: form-data; name=""\r\n\r\nx\r\n--b8--\r\n'
    )
    cases += [
        RawCase("junk session cookie", "GET", "/console/keys", cookies=False,
                headers={"Cookie": "openkms_session=%00%FF\xe9"}, expect_status=303),
        RawCase("huge cookie", "GET", "/console/keys", cookies=False,
                headers={"Cookie": "openkms_session=" + "a" * 8000}),
        RawCase("many cookies", "GET", "/console/keys", cookies=False,
                headers={"Cookie": "; ".join(f"c{i}=v" for i in range(500)) + "; openkms_session"}),
        RawCase("cookie without a value", "GET", "/console/audit", cookies=False,
                headers={"Cookie": "openkms_session"}),
        RawCase("text/plain form", "POST", key, good + b"&op=enable", {"Content-Type": "text/plain"},
                expect_status=400),
        RawCase("no content type", "POST", key, good + b"&op=enable", {}, expect_status=400),
        RawCase("raw non-UTF-8 form", "POST", key, good + b"&op=\xff\xfe", form, expect_status=400),
        RawCase("1,001 fields", "POST", key, good + b"".join(b"&f%d=1" % i for i in range(1001)), form,
                expect_status=400),
        RawCase("a 200 KB form", "POST", key, good + b"&description=" + b"x" * 200_000, form,
                expect_status=413),
        RawCase("a declared 10 MB form", "POST", key, good,
                {**form, "Content-Length": "10000000", "Connection": "close"}, expect_status=413),
        RawCase("a 1 MB multipart upload", "POST", up,
                multipart("b1", tok, [("encrypted_key_material", "m.bin", os.urandom(1 << 20))]), _mp("b1"),
                expect_status=413),
        RawCase("multipart without a boundary", "POST", up, b"--x\r\n\r\n",
                {"Content-Type": "multipart/form-data"}, expect_status=400),
        RawCase("multipart with another boundary", "POST", up, multipart("b2", tok, []), _mp("b3"),
                expect_status=400),
        RawCase("multipart without its closing delimiter", "POST", up,
                multipart("b4", tok, [])[: -len("--b4--\r\n")], _mp("b4")),
        RawCase("multipart part without headers", "POST", up, b"--b5\r\nno headers here--b5--\r\n", _mp("b5"),
                expect_status=400),
        RawCase("1,001 multipart parts", "POST", up, multipart("b6", [*tok, *[("f", "1")] * 1001], []),
                _mp("b6"), expect_status=413),
        RawCase("a boundary of 70 characters", "POST", up, multipart("b" * 70, tok, []), _mp("b" * 70)),
        RawCase("a quoted, odd boundary", "POST", up, multipart("a'()+_,-./:=?", tok, []),
                _mp("\"a'()+_,-./:=?\"")),
        RawCase("an empty multipart body", "POST", up, b"", _mp("b7"), expect_status=400),
        RawCase("a part with odd headers", "POST", up, odd_part, _mp("b8")),
        RawCase("files given as text fields", "POST", up,
                multipart("b9", [*tok, ("encrypted_key_material", "x"), ("import_token", "y")], []),
                _mp("b9"), expect_status=400),
        RawCase("a urlencoded upload", "POST", up, good + b"&encrypted_key_material=x", form,
                expect_status=400),
        RawCase("PUT", "PUT", key, good, form, expect_status=405),
        RawCase("DELETE", "DELETE", "/console/keys", expect_status=405),
        RawCase("HEAD", "HEAD", "/console/keys"),
        RawCase("OPTIONS", "OPTIONS", "/console/keys/create", expect_status=405),
        RawCase("GET a form's address", "GET", "/console/signout", expect_status=405),
        RawCase("unknown page", "GET", "/console/nowhere", expect_status=404),
        RawCase("a key id too long", "GET", "/console/keys/" + "a" * 65, expect_status=404),
        RawCase("a key id with a NUL", "GET", "/console/keys/a%00b", expect_status=404),
        RawCase("a key id with an escaped slash", "GET", "/console/keys/alias%2Fcfz-sym", expect_status=404),
        RawCase("a non-UTF-8 path", "GET", "/console/keys/%FF", expect_status=404),
        RawCase("dot segments", "GET", "/console/keys/../audit"),
        RawCase("a double slash", "GET", "/console//keys", expect_status=404),
        RawCase("a trailing slash", "GET", "/console/keys/", expect_status=404),
        RawCase("a long path", "GET", "/console/keys/" + "a/" * 2000),
        RawCase("a long query", "GET", "/console/keys?filter=" + "x" * 6000),
        RawCase("a query of escapes", "GET", "/console/audit?start=%FF%00&end=%&key_id=%ZZ&before=%C2%B2"),
        RawCase("no query value", "GET", "/console/keys?filter&marker&trail"),
        RawCase("NUL in a tag key", "POST", key, good + b"&op=tag_add&tag_key=" + b"%00" * 10, form),
        # found by this test: requests that once got a 500
        RawCase("200 query parameters", "GET", "/console/audit?" + "&".join(f"p{i}=1" for i in range(200)),
                expect_status=400),
        RawCase("a superscript page size", "POST", "/console/preferences", good + b"&page_size=%C2%B2", form,
                expect_status=303),
        RawCase("a page size of 5,000 digits", "POST", "/console/preferences",
                good + b"&page_size=" + b"9" * 5000, form, expect_status=303),
        RawCase("a superscript event id", "GET", "/console/audit?before=%C2%B2", expect_status=200),
        RawCase("an event id past 64 bits", "GET", "/console/audit?before=" + "9" * 30, expect_status=200),
        RawCase("NUL in the event filters", "GET", "/console/audit?key_id=%00&event_name=a%00&principal=%00b",
                expect_status=200),
        RawCase("a superscript waiting period", "POST", key + "/delete",
                good + b"&confirm=yes&waiting_period=%C2%B2", form, expect_status=400),
        RawCase("a rotation period in Arabic digits", "POST", key,
                good + b"&op=rotation&rotation=yes&rotation_period=%D9%A3%D9%A6%D9%A5", form,
                expect_status=303),
        RawCase("a wizard step of 5,000 digits", "POST", "/console/keys/create",
                good + b"&step=" + b"9" * 5000, form, expect_status=200),
        RawCase("a tag to remove at a superscript index", "POST", "/console/keys/create",
                good + b"&step=2&action=remove_tag:%C2%B9&tag_key=a&tag_value=b", form, expect_status=200),
    ]  # fmt: skip
    return cases


# --- the test ------------------------------------------------------------------------------------------


def test_no_console_request_gets_a_5xx_or_hangs(server: Server) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    account = server.new_account()
    pools = build_pools(server, account)
    browser = Browser(server.endpoint)
    outcomes = Outcomes()
    generator = Generator(rng, pools)
    trace: list[str] = []

    page = browser.get("/console/signin")
    answer = browser.post(
        "/console/signin",
        [
            ("csrf_token", page.csrf()),
            ("access_key_id", account["AccessKeyId"]),
            ("secret_access_key", account["SecretAccessKey"]),
            ("region", REGION),
        ],
    )
    assert answer.status == 303, answer.text
    session = browser.cookies["openkms_session"]
    token = browser.get("/console/keys").csrf()

    def send(
        label: str, request: str, call: Callable[[], Answer], *, download: bool = False
    ) -> Answer | None:
        try:
            answer = call()
        except NoAnswer as exc:
            outcomes.fail(label, request, str(exc), None)
            return None
        judge(outcomes, label, request, answer, download=download, head=request.startswith("HEAD"))
        alert = ALERT.search(answer.text)
        trace.append(f"{label} {request[:300]} -> {answer.status} {alert.group(1)[:200] if alert else ''}")
        if browser.cookies.get("openkms_session") != session:  # a page that ended the session by mistake
            outcomes.fail(label, request, "the session cookie was changed or removed", answer)
            browser.cookies["openkms_session"] = session
        return answer

    try:
        for case in raw_cases(pools, token):
            body = case.body
            shown = f"{case.method} {case.path[:200]} {(body or b'')[:200]!r}"
            call = functools.partial(
                browser.request, case.method, case.path, body, case.headers, cookies=case.cookies
            )
            reply = send(f"raw [{case.label}]", shown, call)
            if reply is None:
                continue
            if case.expect_status is not None and reply.status != case.expect_status:
                outcomes.fail(f"raw [{case.label}]", shown, f"expected HTTP {case.expect_status}", reply)
            if case.expect_text is not None and case.expect_text not in reply.text:
                outcomes.fail(f"raw [{case.label}]", shown, f"expected {case.expect_text!r}", reply)

        for _ in range(CASES):
            roll = rng.random()
            key_id = generator.key_id()
            if roll < 0.35:
                path, names = rng.choice(GET_ROUTES)
                path = path.replace("{K}", key_id)
                query = encode(generator.pairs(names))
                target = path + ("?" + query if query or rng.random() < 0.1 else "")
                send(f"GET {path.replace(key_id, '{K}')}", target, functools.partial(browser.get, target))
            elif roll < 0.85:
                path, names, repeated = rng.choice(POST_ROUTES)
                if path.endswith("/parameters") and rng.random() < 0.5:
                    key_id = pools.imports[rng.randrange(len(pools.imports))][0]
                path = path.replace("{K}", key_id)
                pairs = generator.key_action() if path.endswith(key_id) else generator.pairs(names, repeated)
                if path != "/console/signin" or rng.random() < 0.5:
                    pairs.insert(rng.randrange(len(pairs) + 1), ("csrf_token", token))
                if path == "/console/signin":  # its token comes with its own cookie
                    signin = browser.get("/console/signin")
                    pairs = [(k, signin.csrf() if k == "csrf_token" else v) for k, v in pairs]
                shown = f"POST {path} {encode(pairs)[:300]}"
                send(
                    f"POST {path.replace(key_id, '{K}')}",
                    shown,
                    functools.partial(browser.post, path, pairs),
                    download=path.endswith("/parameters"),
                )
            else:
                body, boundary, key_id = upload(generator, token, key_id)
                path = f"/console/keys/{key_id}/import"
                shown = f"POST {path} {body[:300]!r}"
                call = functools.partial(browser.post_multipart, path, body, boundary)
                send("POST /console/keys/{K}/import", shown, call)

        # The session still works: pages, a change, and signing out.
        reserved = pools.keys["reserved"]
        listing = browser.get("/console/keys")
        if listing.status != 200 or f'name="csrf_token" value="{token}"' not in listing.text:
            outcomes.fail("after the fuzz", "GET /console/keys", "the key list is not shown", listing)
        key_page = browser.get(f"/console/keys/{reserved}?tab=tags")
        if key_page.status != 200 or reserved not in key_page.text:
            outcomes.fail("after the fuzz", "GET the reserved key", "its page is not shown", key_page)
        tagged = browser.post(
            f"/console/keys/{reserved}",
            [
                ("csrf_token", token),
                ("op", "tag_add"),
                ("tab", "tags"),
                ("tag_key", "after"),
                ("tag_value", "fuzz"),
            ],
        )
        if tagged.status != 303:
            outcomes.fail("after the fuzz", "POST tag_add", "a change was not made", tagged)
        kms = server.client(access_key=account["AccessKeyId"], secret_key=account["SecretAccessKey"])
        tags = kms.list_resource_tags(KeyId=reserved)["Tags"]
        if {"TagKey": "after", "TagValue": "fuzz"} not in tags:
            outcomes.fail("after the fuzz", "ListResourceTags", f"the tag is not there: {tags}", None)
        signed_out = browser.post("/console/signout", [("csrf_token", token)])
        if signed_out.status != 303 or browser.get("/console/keys").status != 303:
            outcomes.fail(
                "after the fuzz", "POST /console/signout", "signing out did not end the session", signed_out
            )
    finally:
        browser.close()

    elapsed = time.monotonic() - started
    print(f"{browser.count} requests in {elapsed:.1f} s (seed {SEED})")
    if os.environ.get("OPENKMS_FUZZ_TRACE"):  # a directory: the statuses of each route
        backend = "sqlite" if server.database_url is None else "postgres"
        lines = (f"{route} {status} {n}" for (route, status), n in sorted(outcomes.statuses.items()))
        out = Path(os.environ["OPENKMS_FUZZ_TRACE"])
        (out / f"console-fuzz-{backend}.codes").write_text("\n".join(lines) + "\n")
        (out / f"console-fuzz-{backend}.trace").write_text("\n".join(trace) + "\n")
    assert not outcomes.failures, (
        f"{len(outcomes.failures)} of {browser.count} requests were answered wrongly (seed {SEED}):\n"
        + "\n".join(outcomes.failures)
        + _server_log_tail(server)
    )


def upload(generator: Generator, token: str, key_id: str) -> tuple[bytes, str | None, str]:
    """A key-material upload (body, boundary, key id): a plausible multipart form with real or junk
    files, or a malformed one."""
    rng = generator.rng
    boundary = "----cfz" + generator._word(string.ascii_letters + string.digits, 4, 30)
    fields = generator.pairs(("expiration", "valid_to", "key_material_description", "import_type"))
    fields.insert(0, ("csrf_token", token))
    files = []
    real = rng.random() < 0.3
    if real:
        key_id, import_token, wrapped = rng.choice(generator.pools.imports)
    for name in ("encrypted_key_material", "import_token"):
        if real and rng.random() < 0.9:
            files.append((name, "m.bin", wrapped if name == "encrypted_key_material" else import_token))
        elif rng.random() < 0.85:
            size = rng.choice((0, 1, 32, 256, 512, 4096, 140_000))
            filename = rng.choice(("m.bin", "", 'a"b.bin', "\u00e9.bin", "../../x", "x" * 300))
            files.append((name, filename, os.urandom(size)))
    if rng.random() < 0.2:
        files.append(
            rng.choice(files) if files else ("encrypted_key_material", "m", b"x")
        )  # a file sent twice
    body = multipart(boundary, [(k, str(v)) for k, v in fields], files)
    roll = rng.random()
    if roll < 0.08:
        body = body[: rng.randrange(len(body))]  # cut short
    elif roll < 0.14:
        body = body.replace(b"\r\n", b"\n")  # bare line feeds
    elif roll < 0.18:
        return body, None, key_id  # no boundary in the content type
    elif roll < 0.22:
        body = body.replace(b"Content-Disposition", b"Content-Dispositio", 1)
    elif roll < 0.25:
        body = b"preamble\r\n" + body + b"epilogue"
    return body, boundary, key_id
