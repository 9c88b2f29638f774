"""Query strings as SigV4 and the model's routes read them."""

from __future__ import annotations

from lamina.api.query import split_query


def test_pairs_keep_order_repeats_and_blank_values() -> None:
    assert split_query("b=2&a=1&b=&c") == [("b", "2"), ("a", "1"), ("b", ""), ("c", "")]


def test_escapes_are_decoded_and_plus_stays_a_plus() -> None:
    assert split_query("Marker=a%2Bb%2Fc%3D%20d+e&&") == [("Marker", "a+b/c= d+e")]


def test_malformed_escapes_never_raise() -> None:
    assert split_query("%zz=%ED%A0%80&%") == [("%zz", "\ufffd\ufffd\ufffd"), ("%", "")]
