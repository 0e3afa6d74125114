"""The transition table, every pair of statuses, with no database."""

from __future__ import annotations

import itertools

import pytest

from models.enums import InteractionStatus as S
from services.ledger.transitions import Outcome, decide

A, D, X = Outcome.APPLIED, Outcome.DUPLICATE, Outcome.STALE

# rows: current status; columns: requested status, in the order of COLUMNS.
COLUMNS = (S.PENDING, S.SENT, S.DELIVERED, S.OPENED, S.FAILED)
TABLE = {
    S.PENDING: (D, A, A, A, A),
    S.SENT: (X, D, A, A, A),
    S.DELIVERED: (X, X, D, A, A),
    S.OPENED: (X, X, X, D, X),
    S.FAILED: (X, X, X, X, D),
}


@pytest.mark.parametrize(("current", "requested"), list(itertools.product(S, S)))
def test_every_pair_follows_the_table(current: S, requested: S) -> None:
    expected = TABLE[current][COLUMNS.index(requested)]
    transition = decide(current, requested)
    assert transition.outcome is expected
    assert transition.new_status is (requested if expected is A else current)
    assert transition.changes is (expected is A)


def test_the_table_covers_every_status() -> None:
    assert set(TABLE) == set(S) == set(COLUMNS)


def test_status_never_moves_backwards_along_the_happy_path() -> None:
    order = [S.PENDING, S.SENT, S.DELIVERED, S.OPENED]
    for later, earlier in itertools.combinations(reversed(order), 2):
        assert decide(later, earlier).outcome is X
