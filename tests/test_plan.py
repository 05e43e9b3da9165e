"""The plan of a segmented download (``wheelstream.fetch._plan``): which bytes are taken, written, assigned or
holes, and which piece a free connection gets. Pure, so driven here by random schedules (hypothesis): whatever
the connections do in whatever order, every byte is accounted for exactly once and the tee can take the file
to its end."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wheelstream.fetch._plan import RangePlan


def _covered(plan: RangePlan) -> list[tuple[int, int]]:
    """taken + written + assigned + holes, merged: must be exactly 0..length."""
    parts = [(0, plan.taken), *plan.held(), *plan.holes()]
    parts += [(p.cursor, p.end) for p in plan.pieces.values() if p.left]
    merged: list[tuple[int, int]] = []
    for start, end in sorted(p for p in parts if p[1] > p[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _check(plan: RangePlan) -> None:
    assert _covered(plan) == ([(0, plan.length)] if plan.length else [])
    held = plan.held()
    assert all(s < e for s, e in held)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(held))  # apart: merged
    assert all(s >= plan.taken for s, _ in held)
    holes = plan.holes()
    for start, end in holes:  # a hole is neither written nor being fetched
        assert not any(s < end and start < e for s, e in held)
        assert not any(p.cursor < end and start < p.end for p in plan.pieces.values())
    pieces = sorted((p.cursor, p.end) for p in plan.pieces.values() if p.left)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(pieces))  # no two fetch one byte


def test_pieces_go_out_in_file_order_then_the_biggest_rest_is_stolen() -> None:
    plan = RangePlan(1000, min_piece=100)
    pieces = [plan.claim(n) for n in range(4)]
    assert [(p.start, p.end) for p in pieces if p] == [(0, 100), (100, 200), (200, 300), (300, 400)]
    plan.wrote(1, 90)  # connection 1 (100..200) stops 10 bytes short: its rest is the first hole
    plan.release(1)
    rest = plan.claim(7)
    assert rest is not None
    assert (rest.start, rest.end) == (190, 200)
    plan.assign(8, 400, 1000)  # a response opened before the split: 600 bytes left, worth stealing from
    stolen = plan.claim(9)
    assert stolen is not None
    assert (stolen.start, stolen.end) == (700, 1000)
    assert plan.room(8) == 300
    _check(plan)


def test_the_last_piece_takes_a_rest_under_two_pieces() -> None:
    plan = RangePlan(250, min_piece=100)
    assert plan.claim(1) is not None
    last = plan.claim(2)
    assert last is not None
    assert (last.start, last.end) == (100, 250)
    assert plan.claim(3) is None


def test_the_hole_nearest_the_prefix_comes_first() -> None:
    plan = RangePlan(100, taken=10, written=((40, 60),), min_piece=5)
    assert plan.holes() == [(10, 40), (60, 100)]
    piece = plan.claim(1)
    assert piece is not None
    assert (piece.start, piece.end) == (10, 15)


def test_a_stolen_piece_stops_its_owner() -> None:
    plan = RangePlan(100, min_piece=10)
    plan.assign(1, 0, 100)  # a response opened before the split
    plan.wrote(1, 20)
    plan.claim(2)  # steals 60..100
    assert plan.room(1) == 40
    plan.wrote(1, 50)  # a write in flight when the steal came: identical bytes, both are kept
    assert plan.pieces[1].cursor == 60
    assert plan.held() == [(0, 70)]
    _check(plan)


def test_nothing_worth_a_request_below_two_pieces() -> None:
    plan = RangePlan(100, min_piece=30)
    plan.assign(1, 0, 100)
    assert plan.claim(2) is not None  # 100 left: two halves of 50
    assert plan.claim(3) is None  # 50 left each: no halves of 30


def test_take_only_what_is_written() -> None:
    plan = RangePlan(100, min_piece=10)
    plan.claim(1)
    plan.wrote(1, 30)
    assert plan.available() == 30
    with pytest.raises(ValueError, match="written up to 30"):
        plan.take(31)
    plan.take(30)
    assert plan.held() == []
    assert plan.available() == 30


@settings(max_examples=300, deadline=None)
@given(
    length=st.integers(0, 5000),
    min_piece=st.integers(1, 400),
    steps=st.lists(st.tuples(st.sampled_from("cwrt"), st.integers(0, 5), st.integers(1, 700)), max_size=80),
)
def test_any_schedule_accounts_for_every_byte_and_ends(
    length: int, min_piece: int, steps: list[tuple[str, int, int]]
) -> None:
    """Connections claim, write, fail and the tee takes, in any order: the invariants hold after every step,
    and then finishing every piece (each connection as it comes) lets the tee take the whole file."""
    plan = RangePlan(length, min_piece=min_piece)
    for kind, connection, count in steps:
        if kind == "c":
            plan.claim(connection)
        elif kind == "w" and plan.room(connection):
            plan.wrote(connection, min(count, plan.room(connection)))
        elif kind == "r":
            plan.release(connection)
        elif kind == "t":
            plan.take(plan.available())
        _check(plan)
    for _ in range(10 * length + 10):  # drain: every connection finishes its piece, then claims again
        if plan.complete:
            break
        plan.take(plan.available())
        for connection in list(plan.pieces):
            if plan.room(connection):
                plan.wrote(connection, plan.room(connection))
            plan.release(connection)
        plan.claim(0)
        _check(plan)
    plan.take(plan.available())
    assert plan.complete
    assert plan.held() == []
    assert plan.holes() == []


def test_pieces_from_the_journal_and_the_trail_merge_into_apart_intervals() -> None:
    from wheelstream.unpack._piece_trail import merged

    assert merged([(5, 8), [0, 3], (3, 4), (7, 10), (20, 21)]) == [(0, 4), (5, 10), (20, 21)]
    assert merged([]) == []
