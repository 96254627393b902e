"""The little HTTP layer of the console: a request read from ASGI (bounded body, urlencoded or
multipart form, cookies) and a response with the console's security headers."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from openkms.server.authn import BodyTooLarge, read_body

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

#: Every form body (a key policy is at most 32 KiB, three times that when percent-encoded; wrapped
#: key material and import tokens are at most 6 KiB each).
MAX_FORM_BODY = 128 * 1024
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


class BadRequest(Exception):
    """The request cannot be read (too large, malformed form); answered 400/413 without details."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Upload:
    filename: str
    content_type: str
    data: bytes = field(repr=False)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    cookies: dict[str, str]
    client_ip: str
    scheme: str
    form: dict[str, list[str]] = field(default_factory=dict, repr=False)
    files: dict[str, Upload] = field(default_factory=dict, repr=False)

    @property
    def secure(self) -> bool:
        return self.scheme == "https"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.headers.get('host', '')}"

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default

    def field(self, name: str, default: str = "") -> str:
        values = self.form.get(name)
        return values[0] if values else default

    def fields(self, name: str) -> list[str]:
        return list(self.form.get(name, []))


def whole_number(text: str, max_digits: int = 18) -> int | None:
    """A whole number of at most ``max_digits`` decimal digits (of any script), else None.

    Form values and query parameters are read with this, not ``str.isdigit`` and ``int``: ``isdigit``
    admits superscripts, which ``int`` refuses, and ``int`` refuses more than 4300 digits."""
    if 0 < len(text) <= max_digits and text.isdecimal():
        return int(text)
    return None


def parse_cookies(header: str) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in cookies:  # the first of duplicate names wins
            cookies[name] = value.strip().strip('"')
    return cookies


async def read_request(scope: Scope, receive: Receive) -> Request:
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        if key in headers:
            text = headers[key] + ("; " if key == "cookie" else ", ") + text
        headers[key] = text
    client = scope.get("client")
    request = Request(
        method=scope["method"],
        path=scope["path"],
        query=_parse_query(scope.get("query_string", b"")),
        headers=headers,
        cookies=parse_cookies(headers.get("cookie", "")),
        client_ip=client[0] if client else "127.0.0.1",
        scheme=scope.get("scheme", "http"),
    )
    if request.method == "POST":
        body = await _read_body(receive, headers)
        content_type = headers.get("content-type", "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            try:
                request.form = urllib.parse.parse_qs(
                    body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS
                )
            except (UnicodeDecodeError, ValueError):
                raise BadRequest(400, "The form could not be read.") from None
        elif content_type.startswith("multipart/form-data"):
            request.form, request.files = parse_multipart(content_type, body)
        elif body:
            raise BadRequest(400, "The form could not be read.")
    return request


def _parse_query(query_string: bytes) -> dict[str, list[str]]:
    try:
        return urllib.parse.parse_qs(query_string.decode("latin-1"), max_num_fields=MAX_QUERY_FIELDS)
    except ValueError:  # more parameters than any page takes
        raise BadRequest(400, "The address has too many parameters.") from None


async def _read_body(receive: Receive, headers: dict[str, str]) -> bytes:
    declared = whole_number(headers.get("content-length", ""), 30)
    if declared is not None and declared > MAX_FORM_BODY:
        raise BadRequest(413, "The form is too large.")
    try:
        return await read_body(receive, MAX_FORM_BODY)
    except BodyTooLarge:
        raise BadRequest(413, "The form is too large.") from None


_BOUNDARY = re.compile(r'boundary="?([^";]{1,70})"?')
_DISPOSITION_PARAM = re.compile(r';\s*(name|filename)="((?:[^"\\]|\\.)*)"')


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, list[str]], dict[str, Upload]]:
    """A multipart/form-data body (RFC 7578) as text fields and uploaded files, exactly as sent."""
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise BadRequest(400, "The form could not be read.")
    delimiter = b"--" + match.group(1).encode("latin-1")
    fields: dict[str, list[str]] = {}
    files: dict[str, Upload] = {}
    parts = body.split(b"\r\n" + delimiter)
    if not parts[0].startswith(delimiter):
        raise BadRequest(400, "The form could not be read.")
    parts[0] = parts[0][len(delimiter) :]
    count = 0
    for part in parts:
        if part.startswith(b"--"):
            break  # the closing delimiter
        if not part.startswith(b"\r\n"):
            raise BadRequest(400, "The form could not be read.")
        head, sep, data = part[2:].partition(b"\r\n\r\n")
        if not sep:
            raise BadRequest(400, "The form could not be read.")
        count += 1
        if count > MAX_FIELDS:
            raise BadRequest(413, "The form is too large.")
        part_headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            part_headers[name.strip().lower()] = value.strip()
        params = {
            k: v.replace('\\"', '"')
            for k, v in _DISPOSITION_PARAM.findall(";" + part_headers.get("content-disposition", ""))
        }
        field_name = params.get("name")
        if not field_name:
            continue
        if "filename" in params:
            if params["filename"] or data:
                files[field_name] = Upload(
                    params["filename"], part_headers.get("content-type", "application/octet-stream"), data
                )
        else:
            fields.setdefault(field_name, []).append(data.decode("utf-8", "replace"))
    return fields, files


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def set_cookie(
        self,
        name: str,
        value: str,
        *,
        secure: bool,
        path: str = "/console",
        max_age: int | None = None,
    ) -> None:
        parts = [f"{name}={value}", f"Path={path}", "HttpOnly", "SameSite=Strict"]
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        if secure:
            parts.append("Secure")
        self.headers.append(("set-cookie", "; ".join(parts)))

    def delete_cookie(self, name: str, *, secure: bool, path: str = "/console") -> None:
        self.set_cookie(name, "", secure=secure, path=path, max_age=0)


def redirect(location: str, status: int = 303) -> Response:
    return Response(status=status, headers=[("location", location)])


async def send_response(send: Send, response: Response, *, static: bool = False) -> None:
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", response.content_type.encode()),
        (b"content-length", str(len(response.body)).encode()),
    ]
    for name, value in SECURITY_HEADERS:
        if static and name == b"cache-control":
            headers.append((b"cache-control", b"public, max-age=3600"))
        else:
            headers.append((name, value))
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
