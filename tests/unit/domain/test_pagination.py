"""paginate: opaque markers, stable pages whatever changes between calls, bad markers refused."""

from __future__ import annotations

import pytest

from lamina.domain.pagination import decode_marker, encode_marker, paginate
from lamina.errors import InvalidParameterValueException


def walk(items: list[str], size: int) -> list[list[str]]:
    pages, marker = [], None
    while True:
        page, marker = paginate(items, str, marker, size)
        pages.append(page)
        if marker is None:
            return pages


def test_pages_cover_everything_once() -> None:
    names = [f"fn-{i:02d}" for i in range(7)]
    assert walk(names, 3) == [names[0:3], names[3:6], names[6:7]]
    assert walk(names, 7) == [names]
    assert walk([], 5) == [[]]


def test_a_page_after_changes_starts_after_the_last_key() -> None:
    page, marker = paginate(["a", "b", "c", "d"], str, None, 2)
    assert page == ["a", "b"]
    # "b" deleted and "ab" added meanwhile: nothing repeats, nothing before the marker returns
    assert paginate(["a", "ab", "c", "d"], str, marker, 2) == (["c", "d"], None)


def test_descending_integer_keys() -> None:
    versions = [5, 4, 3, 2, 1]
    page, marker = paginate(versions, int, None, 2, descending=True)
    assert page == [5, 4]
    assert paginate(versions, int, marker, 10, descending=True) == ([3, 2, 1], None)


@pytest.mark.parametrize("marker", ["not-base64!", "eyJ4IjogMX0=", encode_marker(3)])
def test_markers_lamina_did_not_issue_for_this_list_are_refused(marker: str) -> None:
    with pytest.raises(InvalidParameterValueException, match="Invalid marker"):
        paginate(["a", "b"], str, marker, 1)


def test_marker_round_trip() -> None:
    assert decode_marker(encode_marker("fn")) == "fn"
    assert decode_marker(encode_marker(12)) == 12
