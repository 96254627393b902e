"""Cryptographically secure random bytes for the hot path.

``os.urandom`` is one system call per request, and system calls are slow on virtual machines (several
microseconds each here). :func:`random_bytes` hands out slices of a buffer filled from the kernel's
CSPRNG 64 KiB at a time; every slice is handed out once. After ``fork`` the child starts a new buffer,
so two processes never share random bytes.
"""

from __future__ import annotations

import os
import threading

_BUFFER_SIZE = 65536
# Module state on purpose: randomness belongs to the process (this buffers os.urandom, itself process
# wide), not to a runtime. It holds no runtime's data, every slice is handed out once whoever asks,
# and a forked child starts a new buffer (below).
_lock = threading.Lock()
_buffer = b""
_offset = 0


def random_bytes(n: int) -> bytes:
    global _buffer, _offset
    if n > _BUFFER_SIZE // 4:
        return os.urandom(n)
    with _lock:
        if _offset + n > len(_buffer):
            _buffer = os.urandom(_BUFFER_SIZE)
            _offset = 0
        start = _offset
        _offset += n
        return _buffer[start:_offset]


def _reset_after_fork() -> None:
    global _buffer, _offset, _lock
    _lock = threading.Lock()
    _buffer = b""
    _offset = 0


os.register_at_fork(after_in_child=_reset_after_fork)
