"""The logging of ``openkms serve``: ``--log-format text`` (lines for people) or ``json`` (one JSON object
per line on standard error, for every logger, uvicorn's included).

A JSON line has ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``message``,
``request_id`` when the record names the request it is about (``extra={"request_id": …}``),
``exception`` (the traceback text) when there is one, and ``process`` (its id, which tells the workers of
``--workers N`` apart). Python warnings and uncaught exceptions of any thread become such lines too. What
the service logs never holds a secret (secret access keys, plaintexts, key material, PINs): messages name
requests, keys and counts, and the database layer never echoes row values.

The first start's credential printout is not a log: it stays plain text on standard output.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from types import TracebackType
from typing import Any

import orjson

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
#: Passed from ``openkms serve --workers N`` to its worker processes: ``FORMAT:LEVEL``.
WORKER_ENV = "OPENKMS_WORKER_LOGGING"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        out: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            out["request_id"] = str(request_id)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(out, default=str).decode()


def configure(level: str, fmt: str) -> None:
    """Set up the root logger for ``fmt`` at ``level``. For ``json`` uvicorn must be given
    ``log_config=None`` (its loggers then reach the root's JSON handler); for ``text`` it keeps its own."""
    numeric = logging.getLevelName(level.upper())
    if fmt == "text":
        logging.basicConfig(level=numeric, format=TEXT_FORMAT)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    logging.captureWarnings(True)
    _log_uncaught()


def configure_worker() -> None:
    """In a worker process of ``--workers N``: the logging its parent was given."""
    value = os.environ.get(WORKER_ENV)
    if not value:
        return
    fmt, _, level = value.partition(":")
    if fmt in FORMATS:
        configure(level or "warning", fmt)


def _log_uncaught() -> None:
    log = logging.getLogger("openkms")

    def on_main(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, value, tb)
            return
        log.critical("uncaught exception", exc_info=(kind, value, tb))

    def on_thread(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or issubclass(args.exc_type, SystemExit):
            return
        name = args.thread.name if args.thread is not None else "?"
        log.error(
            "uncaught exception in thread %s",
            name,
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )

    sys.excepthook = on_main
    threading.excepthook = on_thread
