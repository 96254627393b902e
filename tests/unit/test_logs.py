"""The JSON lines of ``--log-format json``: the request id and exception text of a record are fields."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from openkms.server.logs import JsonFormatter


def test_json_formatter_fields() -> None:
    """The request id and the exception text of a record are fields of its line."""
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "openkms.server", logging.ERROR, __file__, 1, "request %s failed", ("r-1",), None
        )
        record.exc_info = sys.exc_info()
    record.request_id = "r-1"
    line: dict[str, Any] = json.loads(JsonFormatter().format(record))
    assert line["message"] == "request r-1 failed"
    assert line["request_id"] == "r-1"
    assert line["level"] == "ERROR" and line["logger"] == "openkms.server"
    assert "ValueError: boom" in line["exception"]
    assert line["time"].endswith("Z")
