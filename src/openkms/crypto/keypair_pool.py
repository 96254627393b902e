"""A small pool of pre-generated RSA key pairs, refilled by a background thread, so that
GenerateDataKeyPair, CreateKey of an RSA spec and GetParametersForImport (its wrapping key pair) do
not pay key generation on the request path (RSA_4096 takes up to seconds).

A request takes a pair from the pool (each pair is handed out once) and generates one inline when
the pool is empty. The refill thread runs at a lower scheduling priority where the OS allows it;
OpenSSL releases the GIL while it generates, so requests keep running meanwhile.

The server runtime owns its pool (``Runtime.keypairs``, handed to the service core): it starts the
refill thread with the sizes of its settings and stops it on shutdown.

Configuration: ``Settings.keypair_pool``, from ``OPENKMS_KEYPAIR_POOL`` (:func:`targets_from_env`) —
unset: 4 x RSA_2048, 2 x RSA_3072, 2 x RSA_4096; ``0``: no pool (every pair is generated inline);
``N``: N of each RSA spec; or ``RSA_2048=8,RSA_4096=1`` (specs not named get none). Elliptic-curve
pairs take well under a millisecond to generate and are never pooled.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import deque

from openkms.crypto import asymmetric
from openkms.domain.keyspec import RSA_SPECS, KeySpec

log = logging.getLogger("openkms.keypairs")

ENV = "OPENKMS_KEYPAIR_POOL"
DEFAULT_TARGETS = {KeySpec.RSA_2048: 4, KeySpec.RSA_3072: 2, KeySpec.RSA_4096: 2}
Pair = tuple[bytes, bytes]  # (PKCS#8 DER private key, DER SubjectPublicKeyInfo)


def targets_from_env(value: str | None) -> dict[KeySpec, int]:
    """Pool sizes per spec from the ``OPENKMS_KEYPAIR_POOL`` value (see the module doc)."""
    if value is None or not value.strip():
        return dict(DEFAULT_TARGETS)
    value = value.strip()
    if value.isdigit():
        return {spec: int(value) for spec in DEFAULT_TARGETS} if int(value) > 0 else {}
    targets: dict[KeySpec, int] = {}
    for item in value.split(","):
        name, _, count = item.partition("=")
        spec = KeySpec(name.strip())
        if spec not in RSA_SPECS or not count.strip().isdigit():
            raise ValueError(f"{ENV}: expected N or RSA_<bits>=N[,...], got {value!r}")
        targets[spec] = int(count)
    return targets


class KeyPairPool:
    def __init__(self, targets: dict[KeySpec, int] | None = None) -> None:
        self.targets: dict[KeySpec, int] = dict(targets or {})
        self._pairs: dict[KeySpec, deque[Pair]] = {spec: deque() for spec in RSA_SPECS}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.hits = 0
        self.misses = 0

    # -- requests ------------------------------------------------------------------------------------
    def take(self, spec: KeySpec) -> Pair | None:
        """A pre-generated pair of ``spec`` (removed from the pool), or None if there is none."""
        pairs = self._pairs.get(spec)
        if pairs is None:
            return None
        try:
            with self._lock:
                pair = pairs.popleft()
                self.hits += 1
        except IndexError:
            with self._lock:
                self.misses += 1
            return None
        finally:
            if self.targets.get(spec):
                self._wake.set()
        return pair

    def key_pair(self, spec: KeySpec) -> Pair:
        """A new key pair of ``spec``: from the pool if it has one, else generated now."""
        return self.take(spec) or asymmetric.generate_key_pair(spec)

    def available(self, spec: KeySpec) -> int:
        return len(self._pairs.get(spec, ()))

    # -- background refill ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, targets: dict[KeySpec, int]) -> None:
        """Start refilling up to ``targets`` pairs per spec. No-op if already running."""
        if self.running:
            return
        self.targets = dict(targets)
        if not any(self.targets.values()):
            return
        self._stopping.clear()
        self._wake.set()
        self._thread = threading.Thread(target=self._run, name="openkms-keypair-pool", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        self._wake.set()
        thread.join(timeout)
        self._thread = None
        with self._lock:
            for pairs in self._pairs.values():
                pairs.clear()

    def _deficit(self) -> KeySpec | None:
        for spec, target in self.targets.items():
            if len(self._pairs[spec]) < target:
                return spec
        return None

    def _run(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # this thread only (Linux)
        while not self._stopping.is_set():
            spec = self._deficit()
            if spec is None:
                self._wake.wait(5.0)
                self._wake.clear()
                continue
            try:
                pair = asymmetric.generate_key_pair(spec)
            except Exception:  # pragma: no cover - generation does not fail in practice
                log.exception("key pair generation for %s failed", spec)
                self._stopping.wait(1.0)
                continue
            with self._lock:
                self._pairs[spec].append(pair)
