"""The console's HTTP layer on Starlette: a request as the views read it, the console's cookies, and
the security headers on every answer.

A POST's body is read through the shared bounded reader (:func:`openkms.server.authn.read_body`, at
most :data:`MAX_FORM_BODY` bytes) and parsed by Starlette's form parsers (python-multipart) within
the console's limits: at most :data:`MAX_FIELDS` fields (urlencoded) or parts (multipart), a
multipart body complete up to its closing delimiter. A form that cannot be read is answered 400, one
past a limit 413, before any view runs.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, cast

from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, Headers, QueryParams
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.requests import Request, cookie_parser
from starlette.responses import Response
from starlette.types import ASGIApp, Message

from openkms.console import PREFIX as PREFIX  # the console's modules import it from here
from openkms.server.authn import BodyTooLarge, Receive, Scope, Send, read_body

STATIC_PREFIX = f"{PREFIX}/static/"

#: Every form body (a key policy is at most 32 KiB, three times that when percent-encoded; wrapped
#: key material and import tokens are at most 6 KiB each).
MAX_FORM_BODY = 128 * 1024
#: Fields of a urlencoded form, parts (fields and files together) of a multipart one.
MAX_FIELDS = 1000
MAX_QUERY_FIELDS = 100

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
#: The static files (stylesheet, script) may be cached for an hour; every other answer never.
STATIC_HEADERS = [
    (name, b"public, max-age=3600" if name == b"cache-control" else value) for name, value in SECURITY_HEADERS
]
#: RFC 6265's spelling (Starlette's type admits only the lower-case one, and writes what it is given).
SAME_SITE = cast(Literal["strict"], "Strict")
#: Every ASCII character: :func:`urllib.parse.quote` with these safe escapes only the others.
_ASCII = "".join(map(chr, range(128)))

UNREADABLE = "The form could not be read."
TOO_LARGE = "The form is too large."


class BadRequest(Exception):
    """The request cannot be read (too large, malformed form); answered 400/413 without details."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Upload:
    """A file of a multipart form, its bytes exactly as sent."""

    filename: str
    content_type: str
    data: bytes = field(repr=False)


@dataclass
class ConsoleRequest:
    """What the views read of a request: its query (the first non-empty value of each parameter), its
    cookies, where it comes from, and a POST's form fields and files."""

    http: Request = field(repr=False)
    form: dict[str, list[str]] = field(default_factory=dict, repr=False)
    files: dict[str, Upload] = field(default_factory=dict, repr=False)

    @property
    def method(self) -> str:
        return str(self.http.scope["method"])

    @property
    def path(self) -> str:
        return request_path(self.http)

    @property
    def query(self) -> QueryParams:
        return self.http.query_params

    @cached_property
    def cookies(self) -> dict[str, str]:
        return parse_cookies(self.header("cookie", "; "))

    @property
    def client_ip(self) -> str:
        client = self.http.client
        return client.host if client else "127.0.0.1"

    @property
    def scheme(self) -> str:
        return str(self.http.scope.get("scheme", "http"))

    @property
    def secure(self) -> bool:
        return self.scheme == "https"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.header('host') or ''}"

    def header(self, name: str, separator: str = ", ") -> str | None:
        """A header's value, the values of a repeated header joined; None if it was not sent."""
        values = self.http.headers.getlist(name)
        return separator.join(values) if values else None

    def arg(self, name: str, default: str = "") -> str:
        for value in self.query.getlist(name):
            if value:  # a parameter without a value is as if it were not given
                return value
        return default

    def field(self, name: str, default: str = "") -> str:
        values = self.form.get(name)
        return values[0] if values else default

    def fields(self, name: str) -> list[str]:
        return list(self.form.get(name, []))


def request_path(http: Request) -> str:
    """The request's path as the server decoded it, with the console's prefix."""
    return str(http.scope["path"])


def whole_number(text: str, max_digits: int = 18) -> int | None:
    """A whole number of at most ``max_digits`` decimal digits (of any script), else None.

    Form values and query parameters are read with this, not ``str.isdigit`` and ``int``: ``isdigit``
    admits superscripts, which ``int`` refuses, and ``int`` refuses more than 4300 digits."""
    if 0 < len(text) <= max_digits and text.isdecimal():
        return int(text)
    return None


def parse_cookies(header: str | None) -> dict[str, str]:
    """The cookies of a ``Cookie`` header as Starlette reads them, except that the first of duplicate
    names wins (Starlette keeps the last)."""
    cookies: dict[str, str] = {}
    for part in (header or "").split(";"):
        for name, value in cookie_parser(part).items():
            cookies.setdefault(name, value)
    return cookies


def set_cookie(
    response: Response, name: str, value: str, *, secure: bool, max_age: int | None = None
) -> None:
    """A console cookie: HttpOnly, SameSite=Strict, for the console's paths, Secure over HTTPS; without
    ``max_age`` it ends with the browser session."""
    response.set_cookie(
        name, value, max_age=max_age, path=PREFIX, secure=secure, httponly=True, samesite=SAME_SITE
    )


def delete_cookie(response: Response, name: str, *, secure: bool) -> None:
    response.delete_cookie(name, path=PREFIX, secure=secure, httponly=True, samesite=SAME_SITE)


async def read_request(http: Request) -> ConsoleRequest:
    """The request with its form read (for a POST); raises BadRequest."""
    request = ConsoleRequest(http)
    # As ``urllib.parse.parse_qs(max_num_fields=...)`` counts: one more than the separators.
    if http.scope.get("query_string", b"").count(b"&") >= MAX_QUERY_FIELDS:
        raise BadRequest(400, "The address has too many parameters.")
    if request.method == "POST":
        request.form, request.files = await read_form(http)
    return request


async def read_form(http: Request) -> tuple[dict[str, list[str]], dict[str, Upload]]:
    """A POST's form: text fields (each name's values in order) and files (the last of a name)."""
    headers = http.headers
    declared = whole_number(headers.get("content-length", ""), 30)
    if declared is not None and declared > MAX_FORM_BODY:
        raise BadRequest(413, TOO_LARGE)
    try:
        body = await read_body(cast(Receive, http.receive), MAX_FORM_BODY)  # the server's own receive
    except BodyTooLarge:
        raise BadRequest(413, TOO_LARGE) from None
    content_type, _ = parse_options_header(headers.get("content-type"))
    if content_type == b"application/x-www-form-urlencoded":
        form = await _urlencoded(headers, body)
    elif content_type == b"multipart/form-data":
        form = await _multipart(headers, body)
    elif body:
        raise BadRequest(400, UNREADABLE)
    else:
        return {}, {}
    fields: dict[str, list[str]] = {}
    files: dict[str, Upload] = {}
    try:
        for name, value in form.multi_items():
            if isinstance(value, str):
                fields.setdefault(name, []).append(value)
                continue
            data = await value.read()
            if name and (value.filename or data):  # a file input with no file chosen sends neither
                files[name] = Upload(
                    value.filename or "", value.headers.get("content-type", "application/octet-stream"), data
                )
    finally:
        await form.close()
    return fields, files


async def _once(body: bytes) -> AsyncGenerator[bytes, None]:
    yield body


async def _urlencoded(headers: Headers, body: bytes) -> FormData:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(400, UNREADABLE) from None
    if not text.isascii():  # Starlette reads the body as Latin-1: escape UTF-8 sent unescaped
        body = urllib.parse.quote(text, safe=_ASCII).encode("ascii")
    parser = FormParser(headers, _once(body), max_fields=MAX_FIELDS, max_part_size=MAX_FORM_BODY)
    try:
        return await parser.parse()
    except MultiPartException:  # past the number of fields
        raise BadRequest(400, UNREADABLE) from None


class _MultiPartParser(MultiPartParser):
    """Starlette's multipart parser, counting fields and files together and noting whether the body
    reached its closing delimiter (python-multipart accepts a body cut short as the parts so far)."""

    def __init__(self, headers: Headers, body: bytes) -> None:
        super().__init__(
            headers, _once(body), max_files=MAX_FIELDS, max_fields=MAX_FIELDS, max_part_size=MAX_FORM_BODY
        )
        self.parts = 0
        self.complete = False

    def on_headers_finished(self) -> None:
        self.parts += 1
        if self.parts > MAX_FIELDS:
            raise BadRequest(413, TOO_LARGE)
        super().on_headers_finished()

    def on_end(self) -> None:
        self.complete = True


async def _multipart(headers: Headers, body: bytes) -> FormData:
    parser = _MultiPartParser(headers, body)
    try:
        form = await parser.parse()
    except MultiPartException:  # no boundary, malformed, a part without a name
        raise BadRequest(400, UNREADABLE) from None
    if not parser.complete:
        await form.close()
        raise BadRequest(400, UNREADABLE)
    return form


class SecurityHeaders:
    """ASGI middleware adding the console's security headers to every answer; the console's entry
    from the server (whose ASGI messages are dicts) into Starlette."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        static = str(scope["path"]).startswith(STATIC_PREFIX)

        async def send_secured(message: Message) -> None:
            out = dict(message)
            if out["type"] == "http.response.start":
                cacheable = static and out["status"] < 400
                out["headers"] = [
                    *out.get("headers", ()),
                    *(STATIC_HEADERS if cacheable else SECURITY_HEADERS),
                ]
            await send(out)

        await self.app(scope, receive, send_secured)
