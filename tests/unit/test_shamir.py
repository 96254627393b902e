"""Shamir secret sharing over GF(2^8): the field against FIPS-197's worked examples, hand-computed
shares, and properties (any T of N rebuild the secret, T-1 do not, shares' text form)."""

from __future__ import annotations

import base64
import itertools
import os
import random

import pytest

from openkms.crypto import shamir
from openkms.crypto.shamir import Share, ShareError, combine, gf_inv, gf_mul, split, split_with


def test_field_matches_fips_197_examples() -> None:
    # FIPS-197 section 4.2: {57}·{83} = {c1}, {57}·{13} = {fe}; section 4.2.1: xtime({57}) = {ae}...
    assert gf_mul(0x57, 0x83) == 0xC1
    assert gf_mul(0x57, 0x13) == 0xFE
    assert [gf_mul(0x57, 1 << i) for i in range(4)] == [0x57, 0xAE, 0x47, 0x8E]
    # ...and the S-box's construction: the inverse of {53} is {ca}.
    assert gf_inv(0x53) == 0xCA
    for a in range(1, 256):
        assert gf_mul(a, gf_inv(a)) == 1


def test_packed_scaling_agrees_with_the_field() -> None:
    vector = bytes(range(256))
    for scalar in (0, 1, 2, 3, 0x57, 0x83, 0xFF):
        packed = shamir._scale(int.from_bytes(vector, "big"), scalar, 256).to_bytes(256, "big")
        assert list(packed) == [gf_mul(b, scalar) for b in vector]


def test_hand_computed_shares() -> None:
    # f(x) = 01 + 57·x: f(83) = 01 ^ c1 = c0, f(13) = 01 ^ fe = ff.
    assert split_with([0x01, 0x57], [0x83, 0x13], 1) == [Share(0x83, b"\xc0"), Share(0x13, b"\xff")]
    assert combine([Share(0x83, b"\xc0"), Share(0x13, b"\xff")]) == b"\x01"
    # Two bytes at once: the second polynomial is 00 + 01·x.
    two = split_with([0x0100, 0x5701], [0x83, 0x13], 2)
    assert two == [Share(0x83, b"\xc0\x83"), Share(0x13, b"\xff\x13")]
    assert combine(two) == b"\x01\x00"
    # Threshold 3: f(x) = 53 + 57·x + 01·x²; f(2) = 53^ae^04, f(3) = 53^f9^05, f(4) = 53^47^10.
    shares = [Share(2, b"\xf9"), Share(3, b"\xaf"), Share(4, b"\x04")]
    assert split_with([0x53, 0x57, 0x01], [2, 3, 4], 1) == shares
    assert combine(shares) == b"\x53"
    assert combine(shares[:2]) != b"\x53"


def test_any_threshold_of_the_shares_rebuild_the_secret() -> None:
    rng = random.Random(1)
    for shares_count, threshold in [(2, 2), (3, 2), (5, 3), (6, 6), (7, 4)]:
        secret = os.urandom(32)
        shares = split(secret, shares_count, threshold)
        assert len({s.x for s in shares}) == shares_count
        for subset in itertools.combinations(shares, threshold):
            assert combine(list(subset)) == secret
        more = rng.sample(shares, min(shares_count, threshold + 1))
        assert combine(more) == secret  # more than the threshold works too


def test_fewer_than_the_threshold_never_rebuild_the_secret() -> None:
    for _ in range(200):
        secret = os.urandom(32)
        shares = split(secret, 5, 3)
        for subset in itertools.combinations(shares, 2):
            assert combine(list(subset)) != secret
        assert all(s.y != secret for s in shares)


def test_one_share_below_the_threshold_is_uniform() -> None:
    # With T=2 a single share's byte is secret ^ a·x for a uniform a: every value appears.
    seen = {split(b"\x00", 2, 2)[0].y[0] for _ in range(3000)}
    assert len(seen) > 240


def test_a_large_split() -> None:
    secret = os.urandom(32)
    shares = split(secret, 255, 10)
    assert sorted(s.x for s in shares) == list(range(1, 256))
    assert combine(random.Random(2).sample(shares, 10)) == secret


def test_one_of_one() -> None:
    secret = os.urandom(32)
    (share,) = split(secret, 1, 1)
    assert combine([share]) == secret


@pytest.mark.parametrize(("count", "threshold"), [(0, 0), (256, 2), (3, 1), (3, 4), (1, 2), (2, 0)])
def test_parameters_refused(count: int, threshold: int) -> None:
    with pytest.raises(ValueError):
        split(b"secret", count, threshold)


def test_text_form_round_trip_and_checksum() -> None:
    share = split(os.urandom(32), 3, 2)[0]
    text = share.to_text()
    assert Share.from_text(f"  {text}\n") == share
    assert "y=" not in repr(share) and share.y.hex() not in repr(share)
    raw = bytearray(base64.b64decode(text))
    raw[5] ^= 0x01  # one mistyped bit
    with pytest.raises(ShareError, match="checksum"):
        Share.from_text(base64.b64encode(bytes(raw)).decode())
    # one mistyped character
    flipped = text[:10] + ("A" if text[10] != "A" else "B") + text[11:]
    with pytest.raises(ShareError):
        Share.from_text(flipped)
    for bad in ["", "not a share!", "AAAA", "é" * 10, "A" * 5000, text[:-4]]:
        with pytest.raises(ShareError):
            Share.from_text(bad)


def test_combine_refuses_duplicates_and_mixed_lengths() -> None:
    shares = split(os.urandom(32), 3, 2)
    with pytest.raises(ShareError, match="twice"):
        combine([shares[0], shares[0]])
    with pytest.raises(ShareError, match="lengths"):
        combine([shares[0], Share(shares[1].x, shares[1].y[:16])])
    with pytest.raises(ShareError):
        combine([])


def test_shares_of_another_split_give_another_secret() -> None:
    secret = os.urandom(32)
    mine = split(secret, 3, 2)
    other = split(os.urandom(32), 3, 2)
    mixed = [mine[0], next(s for s in other if s.x != mine[0].x)]
    assert combine(mixed) != secret
