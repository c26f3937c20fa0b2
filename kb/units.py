"""What quantity a shopper's question asks for, and which spec values state one.

"一箱几根" asks for a count in 根 and "能放几天" for a duration: the product's spec line whose value is a
number in that unit ("数量：10根", "保质期：冷藏7-10天") answers it, whatever the shop calls the key. Only
Chinese question forms and measurement units live here; the keys and values are the shop's own.
"""

from __future__ import annotations

import re

# Words after 几 / 多少 that are no unit: particles, 钱 (a price is no spec line), 水 (how much water
# is a volume, _HOLDS).
_NO_UNIT = frozenset("吗呢啊呀吧的了么钱号点水")
# How long: any duration unit.
_HOW_LONG = re.compile(r"多久|多长时间|多长")
DURATIONS = frozenset(("天", "日", "周", "星期", "个月", "月", "年", "小时", "分钟", "秒", "h", "min"))
WEIGHTS = frozenset(("克", "g", "千克", "kg", "公斤", "斤"))
LENGTHS = frozenset(("毫米", "mm", "厘米", "cm", "米", "m"))
VOLUMES = frozenset(("毫升", "ml", "升", "l"))
# "多重", "多高", "一个多大", "多大一支": the measure asked without a unit word. 多大 asks for any size, unless a noun
# follows that says what is measured ("多大房间", "多大孩子": the spec's key, not a unit, tells).
_HOW_MUCH = re.compile(r"多(重|沉|高|宽|厚|深|粗|大)(?=$|[个的啊呀呢吗么？?，,。!！\s]|[一每][支瓶包罐盒袋桶块片只条件台])")
_MEASURES = {"重": WEIGHTS, "沉": WEIGHTS, "大": WEIGHTS | LENGTHS | VOLUMES}
# "一个多大", "每颗多重", "多大个", "个头": the measure of one piece, not of the whole box.
_PER_PIECE = re.compile(r"[一每单][个颗只枚根片粒串]|多大个|个头")
# "能装多少水", "一个有多少水": how much it holds, a volume.
_HOLDS = re.compile(r"[装盛](?:多少|几)|多少水")
# A number the question states with its unit ("宝宝7公斤", "1.5厘米"): what the shopper knows.
_STATED = re.compile(r"\d[\d.]*\s*([A-Za-z]+|[\u4e00-\u9fff]{1,2})")
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
    ("平米", "㎡"),
    ("平方米", "㎡"),
    ("平", "㎡"),
    ("度", "℃"),
    ("毫安时", "mah"),
    ("毫安", "mah"),
    ("瓦", "w"),
)


_KNOWN = DURATIONS | WEIGHTS | LENGTHS | VOLUMES | frozenset(u for pair in _SAME for u in pair)
# "几根", "多少片", "几个人", "多少ml", "多少毫安": the measure word after 几 / 多少, a known unit of several
# characters whole (个 may stand before the noun counted).
_LONG_UNITS = "|".join(sorted((u for u in _KNOWN if len(u) > 1 and not u.isascii()), key=len, reverse=True))
_MEASURE = re.compile(rf"(?:几|多少)\s*(个)?\s*({_LONG_UNITS}|[A-Za-z]+|[\u4e00-\u9fff])?")


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
    if _HOLDS.search(lowered):
        units.update(VOLUMES)
    for match in _HOW_MUCH.finditer(lowered):
        units.update(_MEASURES.get(match.group(1), LENGTHS))
    if "天" in units or "月" in units or "年" in units:
        units.update(DURATIONS)  # "能放几天" is answered by "12个月" as well
    return _same(units)


def without_asking(text: str) -> str:
    """The text with the words that ask for a quantity blanked out ("到了多久能吃": "到了 能吃")."""
    return _MEASURE.sub(" ", _HOW_LONG.sub(" ", text.lower()))


def asks_per_piece(text: str) -> bool:
    """Does the question ask the measure of one piece ("一个多大", "多大个")?"""
    return _PER_PIECE.search(text) is not None


def stated_units(text: str) -> frozenset[str]:
    """The units of the quantities the question itself states ("宝宝7公斤穿啥码": kg; "我家120平": ㎡)."""
    units: set[str] = set()
    for match in _STATED.finditer(text.lower()):
        word = match.group(1)
        # The longest known unit the number is followed by: "7公斤穿" is 公斤, "120平够" is 平.
        known = [u for u in _KNOWN if word.startswith(u)]
        if known:
            units.add(max(known, key=len))
    return _same(units)


def _same(units: set[str]) -> frozenset[str]:
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
