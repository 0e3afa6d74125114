"""Undoing COPY's text escapes gives back the column's bytes exactly."""

from __future__ import annotations

import pytest

from services.archive.fileformat.copytext import unescape


def test_rows_without_a_backslash_come_back_as_they_are() -> None:
    rows = b'{"a":1}\n{"b":"x"}\n'
    assert unescape(rows) is rows


def test_every_escape_copy_writes_is_undone() -> None:
    rows = b'{"a":"q\\\\"x\\\\\\\\y"}\\n\\r\\t\\b\\f\\v end\n'
    assert unescape(rows) == b'{"a":"q\\"x\\\\y"}\n\r\t\b\f\v end\n'


def test_an_escaped_backslash_before_a_letter_stays_a_backslash() -> None:
    assert unescape(b"\\\\n\n") == b"\\n\n"


def test_output_cut_inside_a_row_is_refused() -> None:
    with pytest.raises(ValueError, match="inside a row"):
        unescape(b'{"a":"\\\\')


def test_an_escape_copy_never_writes_is_refused() -> None:
    with pytest.raises(ValueError, match="unexpected COPY escape"):
        unescape(b"\\N\n")
