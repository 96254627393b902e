"""Shamir secret sharing over GF(2^8) (the AES field, polynomial x^8 + x^4 + x^3 + x + 1 = 0x11b): the
root key of a ``shamir`` installation split into N shares any T of which rebuild it.

Each byte of the secret is the constant term of its own random polynomial of degree T-1; a share is the
point ``(x, f(x))`` of every polynomial at one non-zero ``x``. Fewer than T shares say nothing about the
secret (every value of it is equally likely given them).

Arithmetic on secret values never branches on them nor indexes a table with them: every byte of a
vector is processed at once, packed into one integer (``xtime`` with masks), multiplied only by public
scalars (the shares' ``x`` and the Lagrange coefficients made from them). Tables are used for the public
scalars only. The coefficients come from ``os.urandom``.

A share's text form is ``base64(x ‖ y ‖ check)`` where ``check`` is the first 4 bytes of
SHA-256("openkms/shamir-share/v1" ‖ x ‖ y): a mistyped share is refused before it is combined.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_SHARES = 255
MAX_TEXT = 1024  # characters of a share's text form (a 32-byte secret's share is 52)
_CHECK = 4
_CHECK_PREFIX = b"openkms/shamir-share/v1"


class ShareError(ValueError):
    """A share's text is not a share (mistyped, truncated), or shares that cannot be combined."""


# -- the field, for public scalars -------------------------------------------------------------------


def _mul_public(a: int, b: int) -> int:
    """a·b in GF(2^8) (shift-and-add; used on public values only)."""
    product = 0
    for _ in range(8):
        if b & 1:
            product ^= a
        b >>= 1
        a <<= 1
        if a & 0x100:
            a ^= 0x11B
    return product


def _build_tables() -> tuple[list[int], list[int]]:
    exp = [0] * 510
    log = [0] * 256
    value = 1
    for power in range(255):
        exp[power] = value
        log[value] = power
        value = _mul_public(value, 3)  # 3 generates the multiplicative group of the AES field
    for power in range(255, 510):
        exp[power] = exp[power - 255]
    return exp, log


_EXP, _LOG = _build_tables()


def gf_mul(a: int, b: int) -> int:
    """a·b in GF(2^8) by the log tables (public values only)."""
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def gf_inv(a: int) -> int:
    """The multiplicative inverse (public values only)."""
    if a == 0:
        raise ZeroDivisionError("0 has no inverse in GF(2^8)")
    return _EXP[255 - _LOG[a]]


# -- vectors of secret bytes, packed into one integer ----------------------------------------------------


def _masks(length: int) -> tuple[int, int]:
    ones = int.from_bytes(b"\x01" * length, "big")
    return ones, ones * 0xFE


def _scale(vector: int, scalar: int, length: int) -> int:
    """Every byte of ``vector`` times the public ``scalar``: branch-free on the vector's bytes."""
    ones, high_cleared = _masks(length)
    product = 0
    for bit in range(8):
        if (scalar >> bit) & 1:
            product ^= vector
        carry = (vector >> 7) & ones  # the bytes whose top bit is set...
        vector = ((vector << 1) & high_cleared) ^ (carry * 0x1B)  # ...are reduced by 0x11b (xtime)
    return product


def _evaluate(coefficients: Sequence[int], x: int, length: int) -> int:
    """The polynomials (constant term first) at ``x`` (Horner)."""
    value = 0
    for coefficient in reversed(coefficients):
        value = _scale(value, x, length) ^ coefficient
    return value


# -- shares ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    """One point of the polynomials: ``x`` (1..255, public) and ``y`` (as long as the secret)."""

    x: int
    y: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"Share(x={self.x})"

    def to_text(self) -> str:
        body = bytes([self.x]) + self.y
        return base64.b64encode(body + _checksum(body)).decode("ascii")

    @classmethod
    def from_text(cls, text: str) -> Share:
        """The share of ``text`` (surrounding white space ignored); :class:`ShareError` for anything
        else, without echoing it."""
        text = text.strip()
        if not text or len(text) > MAX_TEXT:
            raise ShareError("this is not a share (wrong length)")
        try:
            raw = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise ShareError("this is not a share (not base64): check it for typing mistakes") from None
        if len(raw) < 2 + _CHECK:
            raise ShareError("this is not a share (too short)")
        body, check = raw[:-_CHECK], raw[-_CHECK:]
        if not hmac.compare_digest(check, _checksum(body)):
            raise ShareError("this share's checksum does not match: check it for typing mistakes")
        if body[0] == 0:
            raise ShareError("this is not a share (x is 0)")
        return cls(body[0], body[1:])


def _checksum(body: bytes) -> bytes:
    return hashlib.sha256(_CHECK_PREFIX + body).digest()[:_CHECK]


def check_parameters(shares: int, threshold: int) -> None:
    """2 <= threshold <= shares <= 255, or one share that is the whole secret (1 of 1)."""
    if not 1 <= shares <= MAX_SHARES:
        raise ValueError(f"the number of shares must be between 1 and {MAX_SHARES}")
    if shares == 1:
        if threshold != 1:
            raise ValueError("one share means a threshold of 1")
        return
    if not 2 <= threshold <= shares:
        raise ValueError("the threshold must be at least 2 and at most the number of shares")


def split(secret: bytes, shares: int, threshold: int) -> list[Share]:
    """``shares`` shares of ``secret`` (at distinct random x), any ``threshold`` of which rebuild it."""
    check_parameters(shares, threshold)
    if not secret:
        raise ValueError("nothing to split")
    xs = secrets.SystemRandom().sample(range(1, 256), shares)  # SystemRandom: os.urandom
    coefficients = [int.from_bytes(secret, "big")]
    coefficients += [int.from_bytes(os.urandom(len(secret)), "big") for _ in range(threshold - 1)]
    return split_with(coefficients, xs, len(secret))


def split_with(coefficients: Sequence[int], xs: Sequence[int], length: int) -> list[Share]:
    """The shares at ``xs`` of the polynomials whose coefficients (constant term, the secret, first)
    are given as packed vectors of ``length`` bytes (split's step; tests give fixed ones)."""
    return [Share(x, _evaluate(coefficients, x, length).to_bytes(length, "big")) for x in xs]


def combine(shares: Sequence[Share]) -> bytes:
    """The secret the shares were split from (Lagrange interpolation at 0), when they are at least the
    threshold's number of one split; anything else gives an unrelated value, which only the secret's
    use can tell (the keyring does not open). Duplicate x or unequal lengths raise :class:`ShareError`."""
    if not shares:
        raise ShareError("no shares")
    length = len(shares[0].y)
    if any(len(s.y) != length for s in shares):
        raise ShareError("the shares are of different lengths: they are not of one set")
    xs = [s.x for s in shares]
    if len(set(xs)) != len(xs):
        raise ShareError("the same share was given twice")
    if any(not 1 <= x <= 255 for x in xs):
        raise ShareError("this is not a share (x out of range)")
    secret = 0
    for i, share in enumerate(shares):
        # L_i(0) = prod_{j != i} x_j / (x_j - x_i); subtraction is XOR in GF(2^8). Public values only.
        numerator, denominator = 1, 1
        for j, x_j in enumerate(xs):
            if j != i:
                numerator = gf_mul(numerator, x_j)
                denominator = gf_mul(denominator, x_j ^ share.x)
        coefficient = gf_mul(numerator, gf_inv(denominator))
        secret ^= _scale(int.from_bytes(share.y, "big"), coefficient, length)
    return secret.to_bytes(length, "big")
