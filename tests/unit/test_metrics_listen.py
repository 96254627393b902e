"""``--metrics-listen``: PORT, HOST:PORT and [IPv6]:PORT, loopback by default; anything else refused."""

from __future__ import annotations

import pytest

from openkms.server.metrics import MetricsListen


@pytest.mark.parametrize(
    ("value", "host", "port"),
    [
        ("9100", "127.0.0.1", 9100),
        (":9100", "127.0.0.1", 9100),
        ("0.0.0.0:9100", "0.0.0.0", 9100),  # noqa: S104
        ("localhost:1", "localhost", 1),
        ("[::1]:9100", "::1", 9100),
    ],
)
def test_parsed(value: str, host: str, port: int) -> None:
    assert MetricsListen.parse(value) == MetricsListen(host, port)


@pytest.mark.parametrize(
    "value", ["", "host", "host:", "host:http", "1:0", "1:65536", "[::1]", "[]:9", "::1:9x"]
)
def test_refused(value: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        MetricsListen.parse(value)
