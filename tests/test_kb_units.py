"""The quantity a question asks for, and the spec values that state one (kb.units)."""

from __future__ import annotations

import pytest

from kb.units import DURATIONS, asked_units, states_unit


@pytest.mark.parametrize(
    ("question", "units"),
    [
        ("一箱几根", {"根"}),
        ("M码一包几片", {"片"}),
        ("几个", {"个"}),
        ("能煮几个人的饭", {"个", "人"}),
        ("几斤", {"斤"}),
        ("一瓶多少ml", {"ml", "毫升"}),
        ("多少克", {"克", "g"}),
        ("多少钱", set()),  # a price is no spec line
        ("几号发货", set()),
        ("有现货吗", set()),
    ],
)
def test_the_measure_word_after_how_many_is_the_unit_asked(question: str, units: set[str]) -> None:
    assert asked_units(question) == units


@pytest.mark.parametrize("question", ["能放几天", "能放多久", "加满能开多久", "几个月能用"])
def test_how_long_asks_for_any_duration(question: str) -> None:
    assert DURATIONS <= asked_units(question)


def test_a_value_states_a_number_in_the_unit() -> None:
    assert states_unit("约10-12个", asked_units("几个"))
    assert states_unit("NB84片/S76片/M62片", asked_units("一包几片"))
    assert states_unit("冷藏7-10天", asked_units("能放几天"))
    assert states_unit("12个月", asked_units("能放几天"))
    assert states_unit("800g", asked_units("一罐多少克"))
    assert not states_unit("0-4℃冷藏", asked_units("能放几天"))
    assert not states_unit("约250g", asked_units("一箱几根"))
    assert not states_unit("3lb", asked_units("几升"))  # l of lb is no litre
    assert not states_unit("10根", frozenset())
