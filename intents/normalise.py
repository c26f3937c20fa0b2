"""Shopper text before classification: pasted cards and links become entities, repeats count once.

Real messages carry pasted order cards ("咨询订单号:… 订单金额:… 下单时间:…"), product links and
ids, and the same sentence sent twice. None of that says what the shopper wants, and left in
the text it steers the intent model (a card alone looks like an order question), so the
classifier sees the words around them, and the values travel as entities.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Order ids as shops print them: up to 4 letters, then 10-20 digits; a mobile number is not one.
ORDER_ID = re.compile(r"(?<![A-Za-z0-9])(?!1[3-9]\d{9}(?!\d))[A-Za-z]{0,4}\d{10,20}(?!\d)")
_ID = r"[A-Za-z]{0,4}\d{6,20}"
_SEP = r"\s*[:：]?\s*"
_VALUE = r"[^\s,，;；\]】]*"
# A pasted order card: its labelled fields in any order, bracketed or not.
_FIELD_NAMES = "咨询订单号|咨询订单|订单编号|订单号|订单金额|付款金额|实付款|下单时间|商品ID|商品编号|商品名称|商品数量|SKU"
_CARD_FIELD = rf"(?:{_FIELD_NAMES}){_SEP}(?:{_VALUE}(?:\s+\d{{1,2}}:\d{{2}}(?::\d{{2}})?)?)"
ORDER_CARD = re.compile(rf"[\[【(（]?\s*{_CARD_FIELD}(?:[\s,，;；]*{_CARD_FIELD})*\s*[\]】)）]?")
ORDER_IN_CARD = re.compile(rf"(?:咨询订单号|咨询订单|订单编号|订单号){_SEP}({_ID})")
PRODUCT_IN_CARD = re.compile(rf"(?:商品ID|商品编号|SKU){_SEP}(\d{{5,20}})")
LINK = re.compile(r"(?:https?://|www\.)[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+")
# "【淘宝】https://… 「羊毛围巾」" and similar share texts: the title in 「」 names a product.
SHARE_TITLE = re.compile(r"「([^」]{1,60})」")
PLATFORM_TAG = re.compile(r"【(?:淘宝|天猫|京东|拼多多|抖音|小程序|订单|订单信息|订单详情|商品信息)】")
_CLAUSE = re.compile(r"([^\s，,。.!！?？;；~～]+)([，,。.!！?？;；~～]*\s*)")
MIN_REPEAT = 4
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Normalised:
    """A message as the classifier sees it, and what was taken out of it."""

    text: str
    order_ids: tuple[str, ...] = ()
    product_ids: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    titles: tuple[str, ...] = ()

    @property
    def had_card(self) -> bool:
        """Whether anything was pasted in (card, link, id)."""
        return bool(self.order_ids or self.product_ids or self.links)


def _unique(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def _drop_repeats(text: str) -> str:
    """The same sentence pasted twice counts once; so does a message sent twice in one push."""
    half = len(text) // 2
    if len(text) >= 4 and len(text) % 2 == 0 and text[:half] == text[half:]:
        text = text[:half]
    seen: set[str] = set()
    kept: list[str] = []
    for clause in _CLAUSE.finditer(text):
        key = clause.group(1)
        # Short clauses (谢谢, 好的) repeat naturally; only a repeated sentence is a paste.
        if len(key) >= MIN_REPEAT and key in seen:
            continue
        seen.add(key)
        kept.append(clause.group(0))
    return "".join(kept).strip()


def normalise(text: str) -> Normalised:
    """Take cards, links and ids out of ``text``; the words that remain decide the intent."""
    orders: list[str] = []
    products: list[str] = []
    links = LINK.findall(text)
    titles = SHARE_TITLE.findall(text)
    rest = LINK.sub(" ", text)
    rest = SHARE_TITLE.sub(" ", rest)
    rest = PLATFORM_TAG.sub(" ", rest)
    for card in ORDER_CARD.finditer(rest):
        orders.extend(ORDER_IN_CARD.findall(card.group(0)))
        products.extend(PRODUCT_IN_CARD.findall(card.group(0)))
    rest = ORDER_CARD.sub(" ", rest)
    orders.extend(ORDER_ID.findall(rest))
    rest = ORDER_ID.sub(" ", rest)
    rest = _SPACES.sub(" ", rest).strip(" ;；,，:：")
    rest = _drop_repeats(rest)
    return Normalised(rest, _unique(orders), _unique(products), _unique(links), _unique([t.strip() for t in titles]))
