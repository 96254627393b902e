"""A small HTTP client for the console without a browser: cookies kept by hand, redirects not
followed, forms posted urlencoded or multipart. For the security, session and timing tests."""

from __future__ import annotations

import html
import http.client
import re
import secrets
import time
import urllib.parse
from dataclasses import dataclass, field

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    seconds: float

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def set_cookies(self) -> list[str]:
        return [v for k, v in self.headers if k.lower() == "set-cookie"]

    def csrf(self) -> str:
        match = CSRF.search(self.text)
        assert match is not None, "no CSRF token on the page"
        return html.unescape(match.group(1))


@dataclass
class ConsoleHttp:
    endpoint: str
    cookies: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str | list[str]] | None = None,
        files: dict[str, tuple[str, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        origin: bool = True,
    ) -> Answer:
        parts = urllib.parse.urlsplit(self.endpoint)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body: bytes | None = None
        if method == "POST":
            if origin:
                sent.setdefault("Origin", self.endpoint)
            if files:
                boundary = "----openkms" + secrets.token_hex(8)
                chunks: list[bytes] = []
                for name, value in (form or {}).items():
                    for v in [value] if isinstance(value, str) else value:
                        head = f'Content-Disposition: form-data; name="{name}"'
                        chunks.append(f"--{boundary}\r\n{head}\r\n\r\n{v}\r\n".encode())
                for name, (filename, data) in files.items():
                    head = f'Content-Disposition: form-data; name="{name}"; filename="{filename}"'
                    chunks.append(
                        f"--{boundary}\r\n{head}\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
                        + data
                        + b"\r\n"
                    )
                chunks.append(f"--{boundary}--\r\n".encode())
                body = b"".join(chunks)
                sent["Content-Type"] = f"multipart/form-data; boundary={boundary}"
            else:
                body = urllib.parse.urlencode(form or {}, doseq=True).encode()
                sent["Content-Type"] = "application/x-www-form-urlencoded"
        started = time.perf_counter()
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        data = response.read()
        seconds = time.perf_counter() - started
        conn.close()
        answer = Answer(response.status, response.getheaders(), data, seconds)
        for cookie in answer.set_cookies():
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in cookie:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return answer

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def post(self, path: str, form: dict[str, str | list[str]], **kw: object) -> Answer:
        return self.request("POST", path, form, **kw)  # type: ignore[arg-type]

    def sign_in(self, access_key_id: str, secret: str, region: str = "us-east-1") -> Answer:
        page = self.get("/console/signin")
        return self.post(
            "/console/signin",
            {
                "csrf_token": page.csrf(),
                "access_key_id": access_key_id,
                "secret_access_key": secret,
                "region": region,
            },
        )
