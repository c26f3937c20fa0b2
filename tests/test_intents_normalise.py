"""The normaliser: pasted cards and links become entities, a repeated sentence counts once."""

from __future__ import annotations

import pytest

from intents.normalise import normalise


@pytest.mark.parametrize(
    ("text", "words", "orders"),
    [
        (
            "咨询订单号:261103457821 订单金额:299.00 下单时间:2026-11-03 10:21:09 发票抬头写错了",
            "发票抬头写错了",
            ("261103457821",),
        ),
        ("[订单编号:3034127789012，订单金额:89.90，下单时间:2026-11-12 20:15] 我要取消", "我要取消", ("3034127789012",)),
        ("【订单信息】订单号：XY2026111000012 帮我看看到哪了", "帮我看看到哪了", ("XY2026111000012",)),
        ("我要转人工 4021892556868044205", "我要转人工", ("4021892556868044205",)),
        ("咨询订单号:123456789012 商品ID:100023456789", "", ("123456789012",)),
    ],
)
def test_order_cards_and_ids_leave_the_text(text: str, words: str, orders: tuple[str, ...]) -> None:
    norm = normalise(text)
    assert norm.text == words
    assert norm.order_ids == orders


def test_product_card_and_links_become_entities() -> None:
    norm = normalise("商品ID:100023456789 https://item.jd.com/100012345678.html 这个有白色吗")
    assert norm.text == "这个有白色吗"
    assert norm.product_ids == ("100023456789",)
    assert norm.links == ("https://item.jd.com/100012345678.html",)
    shared = normalise("【淘宝】https://m.tb.cn/h.5xYzAbC 「羊毛围巾女冬季」 有货吗")
    assert (shared.text, shared.titles) == ("有货吗", ("羊毛围巾女冬季",))
    assert shared.had_card


def test_a_sentence_pasted_twice_counts_once() -> None:
    assert normalise("物品没收到啊，怎么就签收了 物品没收到啊，怎么就签收了").text == "物品没收到啊，怎么就签收了"
    assert normalise("快递到哪了快递到哪了").text == "快递到哪了"
    assert normalise("我要转人工 我要转人工 你好").text == "我要转人工 你好"


def test_short_repeats_and_plain_text_stay() -> None:
    # 谢谢 twice is how people talk, not a paste; a phone number is not an order id.
    assert normalise("好的，谢谢 暂时没有了，谢谢").text == "好的，谢谢 暂时没有了，谢谢"
    assert normalise("我的手机13812345678打不通").text == "我的手机13812345678打不通"
    assert normalise("没有了，多谢").text == "没有了，多谢"
    assert not normalise("没有了，多谢").had_card
