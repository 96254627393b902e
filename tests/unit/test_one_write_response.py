"""The response cycle's transport (``limits._OneWriteResponse``): a response's head and body leave in
one write, an interim 100 Continue is not held, and a head without a body write (HEAD, 204, 304) is
written when the response completes or the connection closes."""

from __future__ import annotations

from typing import Any

from openkms.server.limits import _OneWriteResponse


class Recorder:
    """An asyncio transport that records what is written to it."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def write(self, data: bytes) -> None:
        self.events.append(data)

    def close(self) -> None:
        self.events.append("close")

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def held(done: list[str] | None = None) -> tuple[_OneWriteResponse, Recorder]:
    transport = Recorder()
    seen = done if done is not None else []
    return _OneWriteResponse(transport, lambda: seen.append("done")), transport  # type: ignore[arg-type]


def test_head_and_body_leave_in_one_write() -> None:
    wrapper, transport = held()
    wrapper.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert transport.events == []
    wrapper.write(b"{}")
    assert transport.events == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    wrapper.write(b"more")  # a streamed body's later parts go straight through
    assert transport.events[-1] == b"more"


def test_an_interim_100_continue_is_written_at_once() -> None:
    wrapper, transport = held()
    wrapper.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert transport.events == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    wrapper.write(b"HTTP/1.1 200 OK\r\n\r\n")
    wrapper.write(b"ok")
    assert transport.events == [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\nok"]


def test_a_head_without_body_is_written_when_the_response_completes() -> None:
    done: list[str] = []
    wrapper, transport = held(done)
    wrapper.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    wrapper.on_response()
    assert transport.events == [b"HTTP/1.1 204 No Content\r\n\r\n"]
    assert done == ["done"]  # the protocol's continuation runs after the head is out
    wrapper.on_response()
    assert transport.events == [b"HTTP/1.1 204 No Content\r\n\r\n"]  # written once


def test_a_held_head_is_written_before_the_connection_closes() -> None:
    wrapper, transport = held()
    wrapper.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
    wrapper.close()
    assert transport.events == [b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n", "close"]
    assert wrapper.get_extra_info("peername") == "info:peername"  # the rest is the transport's
