"""The quantity a question asks for, and the spec values that state one (kb.units)."""

from __future__ import annotations

import pytest

from kb.units import (
    DURATIONS,
    LENGTHS,
    VOLUMES,
    WEIGHTS,
    asked_units,
    asks_per_piece,
    stated_units,
    states_unit,
    without_asking,
)


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
        ("多少毫升", {"毫升", "ml"}),  # a unit of several characters is read whole
        ("多少毫安", {"毫安", "mah"}),
        ("多少瓦", {"瓦", "w"}),
        ("能用几个小时", {"小时", "h"}),
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
    assert states_unit("20000mAh", asked_units("多少毫安"))
    assert states_unit("单口最高100W", asked_units("最大多少瓦"))


@pytest.mark.parametrize(
    ("question", "measures"),
    [("那它多重啊", WEIGHTS), ("机身多高，能钻床底吗", LENGTHS), ("多厚", LENGTHS), ("一个多大", WEIGHTS | LENGTHS)],
)
def test_how_heavy_or_how_big_asks_for_a_measure(question: str, measures: frozenset[str]) -> None:
    assert measures <= asked_units(question)


@pytest.mark.parametrize("question", ["适合多大孩子", "多大房间够用", "多少钱"])
def test_how_big_before_the_thing_measured_asks_no_unit(question: str) -> None:
    # The noun after 多大 says what is measured: the spec's key tells, not a unit.
    assert asked_units(question) == frozenset()


def test_the_units_of_a_quantity_the_question_states() -> None:
    assert {"kg", "公斤"} <= stated_units("宝宝7公斤穿啥码")
    assert "㎡" in stated_units("我家120平够用吗")
    assert {"cm", "厘米"} <= stated_units("我家门槛大概1.5厘米")
    assert stated_units("M码一包几片") == frozenset()
    assert states_unit("NB 5kg以下/S 4-8kg/M 6-11kg", stated_units("宝宝7公斤穿啥码"))
    assert states_unit("80-150㎡", stated_units("我家120平够用吗"))


@pytest.mark.parametrize(("question", "per_piece"), [("一个多大", True), ("多大个", True), ("每颗多重", True), ("多重", False)])
def test_the_measure_of_one_piece(question: str, per_piece: bool) -> None:
    assert asks_per_piece(question) is per_piece


@pytest.mark.parametrize("question", ["能装多少水", "一个有多少水", "能盛几升"])
def test_how_much_it_holds_asks_a_volume(question: str) -> None:
    assert VOLUMES <= asked_units(question)
    assert "水" not in asked_units(question)  # water is what is measured, not a unit


@pytest.mark.parametrize(
    ("question", "left"),
    [("到了多久能吃", "到了 能吃"), ("一次敷多长时间", "一次敷 "), ("一箱几根", "一箱 "), ("怎么吃", "怎么吃")],
)
def test_the_words_asking_a_quantity_are_blanked(question: str, left: str) -> None:
    assert without_asking(question) == left
