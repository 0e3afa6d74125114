"""The transition table, every pair of statuses, with no database."""

from __future__ import annotations

import itertools
from unittest import mock

import pytest
import sqlalchemy as sa
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import BinaryExpression

from models.base import utcnow
from models.enums import InteractionStatus as S
from services.ledger import writes
from services.ledger.transitions import (
    EDGES,
    Move,
    Outcome,
    allows,
    decide,
    reported_from,
    sources,
)

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


def test_the_table_holds_the_retry_edges() -> None:
    # A new dispatch with the same key takes over a FAILED or released PENDING interaction.
    for move in (Move.ATTEMPT, Move.REFUSED_ATTEMPT):
        assert allows(move, None), "the first attempt creates the interaction"
        assert allows(move, S.FAILED) and allows(move, S.PENDING)
        assert not any(allows(move, s) for s in (S.SENT, S.DELIVERED, S.OPENED))
    assert (EDGES[Move.ATTEMPT].target, EDGES[Move.REFUSED_ATTEMPT].target) == (S.PENDING, S.FAILED)
    assert (EDGES[Move.RELEASE].sources, EDGES[Move.RELEASE].target) == ({S.PENDING}, S.PENDING)
    assert (EDGES[Move.RESEND].sources, EDGES[Move.RESEND].target) == ({S.FAILED}, S.PENDING)
    assert (EDGES[Move.GIVE_UP].sources, EDGES[Move.GIVE_UP].target) == ({S.PENDING}, S.FAILED)


def test_the_claim_statements_take_their_status_sets_from_the_table() -> None:
    def status_set(statement: sa.Update) -> set[S]:
        [found] = [
            node.right.value
            for node in visitors.iterate(statement.whereclause)
            if isinstance(node, BinaryExpression)
            and node.operator is operators.in_op
            and node.left.key == "status"
        ]
        return set(found)

    captured: list[sa.Update] = []
    session = mock.Mock()
    session.execute.side_effect = lambda statement: (
        captured.append(statement) or mock.Mock(rowcount=0)
    )
    now = utcnow()
    writes.release(session, 1, 1, "lost", now, "test")
    writes.take_over(
        session, 1, S.FAILED, 1, writes.Attempt(None, None, "t", None, {}, None, 300), now, "t"
    )
    writes.undo_resend(session, 1, 1, writes.Entry("test"), now)
    released, taken, undone = captured
    assert status_set(released) == sources(Move.RELEASE) == {S.PENDING}
    assert status_set(taken) == sources(Move.ATTEMPT) == {S.PENDING, S.FAILED}
    assert status_set(undone) == sources(Move.UNDO_RESEND) == {S.PENDING}
    assert reported_from(S.SENT) == {S.PENDING}


def test_every_outcome_written_is_one_of_the_enum() -> None:
    assert {e.outcome for e in EDGES.values() if e.outcome} <= set(Outcome)
    assert [o.value for o in Outcome] == [str(o) for o in Outcome]
