"""What quantity a shopper's question asks for, and which spec values state one.

"一箱几根" asks for a count in 根 and "能放几天" for a duration: the product's spec line whose value is a
number in that unit ("数量：10根", "保质期：冷藏7-10天") answers it, whatever the shop calls the key. Only
Chinese question forms and measurement units live here; the keys and values are the shop's own.
"""

from __future__ import annotations

import re

# "几根", "多少片", "几个人", "多少ml": the measure word after 几 / 多少 (个 may stand before the noun counted).
_MEASURE = re.compile(r"(?:几|多少)\s*(个)?\s*([A-Za-z]+|[\u4e00-\u9fff])?")
# Words after 几 / 多少 that are no unit: particles, and 钱 (a price is no spec line).
_NO_UNIT = frozenset("吗呢啊呀吧的了么钱号点")
# How long: any duration unit.
_HOW_LONG = re.compile(r"多久|多长时间|多长")
DURATIONS = frozenset(("天", "日", "周", "星期", "个月", "月", "年", "小时", "分钟", "秒", "h", "min"))
# The same unit written in Chinese and in symbols.
_SAME = (
    ("克", "g"),
    ("千克", "kg"),
    ("公斤", "kg"),
    ("毫升", "ml"),
    ("升", "l"),
    ("厘米", "cm"),
    ("毫米", "mm"),
    ("小时", "h"),
    ("分钟", "min"),
)


def asked_units(text: str) -> frozenset[str]:
    """The units the question asks a quantity in (lower case; empty: it asks for none)."""
    lowered = text.lower()
    units: set[str] = set()
    if _HOW_LONG.search(lowered):
        units.update(DURATIONS)
    for match in _MEASURE.finditer(lowered):
        counter, word = match.group(1), match.group(2)
        if word and word not in _NO_UNIT:
            units.add(word)
        if counter and (not word or word in _NO_UNIT or word not in DURATIONS | {"月"}):
            units.add(counter)  # "几个" alone counts 个; "几个人" counts 人 (or 个)
    if "天" in units or "月" in units or "年" in units:
        units.update(DURATIONS)  # "能放几天" is answered by "12个月" as well
    for chinese, symbol in _SAME:
        if chinese in units:
            units.add(symbol)
        if symbol in units:
            units.add(chinese)
    return frozenset(units)


def states_unit(value: str, units: frozenset[str]) -> bool:
    """Does the spec value state a number in one of the units ("约10-12个", "冷藏7-10天", "30ml")?"""
    if not units:
        return False
    lowered = value.lower()
    for unit in units:
        pattern = r"\d[\d.\-~～到至/]*\s*" + re.escape(unit)
        if unit.isascii():
            pattern += r"(?![a-z])"  # "3l" is litres, "3lb" is not
        if re.search(pattern, lowered):
            return True
    return False
