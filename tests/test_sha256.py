"""The whole-file hash whose state the journal saves: digests as hashlib's, a saved state continues exactly
where it was taken, and a state that does not cover the bytes it claims is refused (the resume re-hashes)."""

from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wheelstream.unpack import _sha256

DATA = os.urandom(300_001)
needs_libcrypto = pytest.mark.skipif(
    _sha256._LIB is None, reason="no libcrypto with SHA256_* in this process"
)


@given(st.lists(st.integers(0, 70_000), max_size=12))
def test_digests_are_hashlibs_whatever_the_pieces(sizes: list[int]) -> None:
    running, pos = _sha256.new(), 0
    for size in sizes:
        running.update(DATA[pos : pos + size])
        pos += size
    expected = hashlib.sha256(DATA[:pos]).hexdigest()
    assert running.hexdigest() == expected
    assert running.hexdigest() == expected  # reading the digest does not end the hash
    running.update(b"more")
    assert running.hexdigest() == hashlib.sha256(DATA[:pos] + b"more").hexdigest()


def test_buffers_hash_like_bytes() -> None:
    buffer = bytearray(DATA[:100_000])
    running = _sha256.new()
    with memoryview(buffer) as view:
        running.update(view[:50_000])
        running.update(buffer[50_000:])
    assert running.hexdigest() == hashlib.sha256(DATA[:100_000]).hexdigest()


@needs_libcrypto
@settings(max_examples=60, deadline=None)
@given(st.integers(0, len(DATA)), st.integers(13, 9_000))  # any cut leaves a partial block; pieces vary
def test_a_saved_state_continues_exactly_where_it_was_taken(cut: int, piece: int) -> None:
    first = _sha256.new()
    for pos in range(0, cut, piece):
        first.update(DATA[pos : min(cut, pos + piece)])
    state = first.state()
    assert state is not None
    resumed = _sha256.restore(state, cut)  # as a new process does, from the journal's string
    assert resumed is not None
    resumed.update(DATA[cut:])
    assert resumed.hexdigest() == hashlib.sha256(DATA).hexdigest()


@needs_libcrypto
@pytest.mark.parametrize(
    "spoil",
    [
        lambda state, length: (state, length + 1),  # a state for fewer bytes than the journal keeps
        lambda state, length: (state, length - 1),
        lambda state, length: (state[:-2], length),  # not the 112-byte context
        lambda state, length: ("zz" + state[2:], length),  # not hex
        lambda state, length: (None, length),  # an older journal: no state at all
        lambda state, length: (state, -1),
    ],
)
def test_a_state_that_does_not_cover_the_kept_bytes_is_refused(spoil: object) -> None:
    running = _sha256.new()
    running.update(DATA[:1234])
    state, length = spoil(running.state(), 1234)  # type: ignore[operator]
    assert _sha256.restore(state, length) is None


def test_without_libcrypto_hashing_works_and_nothing_is_saved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sha256, "_LIB", None)
    running = _sha256.new()
    running.update(DATA)
    assert running.hexdigest() == hashlib.sha256(DATA).hexdigest()
    assert running.state() is None
    assert _sha256.restore("00" * 112, 0) is None
