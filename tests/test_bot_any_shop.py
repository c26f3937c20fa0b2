"""Answers that come from each shop's own data, tested on two dev shops (baby, cosmetics)."""

from __future__ import annotations

from pathlib import Path

import pytest

import server
from bot import texts
from bot.dialogue import Dialogue
from bot.orders import SqliteOrders
from bot.wechat import Inbound
from intents.client import Parse
from kb.db import DbRunner, open_db
from kb.encoder import Encoder
from kb.importer import import_dir
from kb.search import KnowledgeBase
from reviews.hours import BusinessHours
from tests.fakes import FakeEncoder, FakeNlu

SHOPS = Path(__file__).resolve().parent.parent / "bench" / "data" / "shops"
T0 = 1_764_036_000.0  # Tuesday 2025-11-25 10:00 China time


def shop(tmp_path: Path, name: str, encoder: Encoder) -> tuple[DbRunner, KnowledgeBase]:
    db = open_db(tmp_path / f"{name}.db", server.MIGRATIONS)
    import_dir(db, SHOPS / name)
    kb = KnowledgeBase(encoder)
    kb.load(db)
    return DbRunner(db), kb


def said(openid: str, text: str, n: int) -> Inbound:
    return Inbound(f"msg:{openid}:{n}", openid, "gh", "text", text, int(T0))


def dialogue(runner: DbRunner, kb: KnowledgeBase, *parses: Parse) -> Dialogue:
    return Dialogue(runner, FakeNlu(*parses), kb, SqliteOrders(runner), BusinessHours.parse("mon-sun 09:00-22:00"), lambda: T0)


def test_variants_come_from_the_shop_specs(tmp_path: Path) -> None:
    runner, kb = shop(tmp_path, "baby", FakeEncoder())
    assert kb.variant("BAB-018", "雾霾蓝的有吗") == ("颜色", "雾霾蓝", ["月光灰", "雾霾蓝", "奶茶色"], True)
    # 曜石黑 is another stroller's colour in this shop: asked for, and not offered by this one.
    assert kb.variant("BAB-018", "有曜石黑吗") == ("颜色", "曜石黑", ["月光灰", "雾霾蓝", "奶茶色"], False)
    assert kb.variant("BAB-018", "多少钱") is None
    runner.close()
    runner, kb = shop(tmp_path, "cosmetics", FakeEncoder())
    key, wanted, _, available = kb.variant("COS-025", "绿色的还有吗") or ("", "", [], False)
    assert (key, wanted, available) == ("颜色", "绿色", True)
    # The lipstick's choices are under 色号: "有什么颜色" finds them by the shared character.
    assert kb.choice_spec("COS-013", "有什么颜色") == ("色号", "#01正红/#05豆沙/#08枫叶/#12奶茶")
    assert kb.choice_spec("COS-013", "多少钱") is None
    runner.close()


@pytest.mark.parametrize(
    ("name", "sku", "question", "line"),
    [("baby", "BAB-034", "噪音大吗", ("噪音", "≤45dB")), ("cosmetics", "COS-025", "防晒指数多少", ("防晒指数", "SPF35 PA+++"))],
)
def test_a_spec_question_answers_the_line_by_the_product_keys(
    tmp_path: Path, name: str, sku: str, question: str, line: tuple[str, str]
) -> None:
    runner, kb = shop(tmp_path, name, FakeEncoder())
    hit = kb.about_product(sku, question)
    assert hit is not None and hit.kind == "spec" and hit.ref.endswith("\t" + line[0])
    runner.close()


async def test_stock_question_naming_a_spec_key_lists_its_values(tmp_path: Path) -> None:
    runner, kb = shop(tmp_path, "cosmetics", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "ask_stock", 0.9))
    reply = await d(said("oAnyC1", "素颜隔离有哪些颜色", 1))
    assert reply.text is not None and "紫色/绿色" in reply.text
    runner.close()


async def test_an_order_question_picks_the_order_of_the_named_product(tmp_path: Path) -> None:
    runner, kb = shop(tmp_path, "cosmetics", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "order_status", 0.9), Parse("", "return_refund", 0.9))
    where = await d(said("oCos013", "隔离霜到哪了", 1))
    assert where.text is not None and "YT7509226610934" in where.text
    refund = await d(said("oCos013", "冻干面膜退款到哪一步了", 2))
    assert refund.text == texts.REFUND_STATUS.format(order_id="CS2026110800266")
    d = dialogue(runner, kb, Parse("", "return_refund", 0.9))
    only = await d(said("oCos013", "退款到哪一步了", 3))  # the shopper's only refund, no product named
    assert only.text == texts.REFUND_STATUS.format(order_id="CS2026110800266")
    d = dialogue(runner, kb, Parse("", "return_refund", 0.9))
    other = await d(said("oCos013", "隔离霜也想退", 4))  # another product: not that refund's status
    assert other.text != texts.REFUND_STATUS.format(order_id="CS2026110800266")
    runner.close()


@pytest.mark.model
async def test_no_orders_lets_the_knowledge_base_answer(tmp_path: Path, real_encoder: Encoder) -> None:
    runner, kb = shop(tmp_path, "baby", real_encoder)
    d = dialogue(runner, kb, Parse("", "order_status", 0.9))
    reply = await d(said("oNobody", "行乐X1推车现在卖多少钱", 1))
    assert reply.text is not None and "899" in reply.text
    runner.close()


async def test_after_a_handoff_nobody_asked_for_questions_still_get_answers(tmp_path: Path) -> None:
    runner, kb = shop(tmp_path, "baby", FakeEncoder())
    d = dialogue(
        runner,
        kb,
        Parse("", "complaint", 0.95),
        Parse("", "ask_price", 0.9),
        Parse("", "complaint", 0.95),
        Parse("", "human_agent", 0.95),
    )
    first = await d(said("oWait", "推车轮子坏了 太差了", 1))
    assert first.text is not None and texts.COMPLAINT in first.text
    price = await d(said("oWait", "行乐X1推车多少钱", 2))
    assert price.text is not None and "899" in price.text  # answered while waiting
    again = await d(said("oWait", "怎么还没人理我", 3))
    assert again.intent == "queued"  # one handoff text only
    await d(said("oWait", "转人工", 4))
    runner.close()


async def test_once_a_person_was_asked_for_the_bot_only_says_where_the_shopper_stands(tmp_path: Path) -> None:
    runner, kb = shop(tmp_path, "baby", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "human_agent", 0.95), Parse("", "ask_price", 0.9))
    await d(said("oAsk", "转人工", 1))
    reply = await d(said("oAsk", "行乐X1推车多少钱", 2))
    assert reply.intent == "queued"
    runner.close()


@pytest.mark.model
async def test_a_question_about_the_agents_is_answered_from_the_faq(tmp_path: Path, real_encoder: Encoder) -> None:
    runner, kb = shop(tmp_path, "cosmetics", real_encoder)
    d = dialogue(runner, kb, Parse("", "human_agent", 0.9))
    reply = await d(said("oHours", "人工客服几点上班", 1))
    assert reply.text is not None and "9:00-22:00" in reply.text and texts.HUMAN_ON_REQUEST in reply.text
    runner.close()


@pytest.mark.model
async def test_is_this_normal_about_a_product_gets_its_faq_not_a_handoff(tmp_path: Path, real_encoder: Encoder) -> None:
    runner, kb = shop(tmp_path, "baby", real_encoder)
    # A doubtful complaint about a product whose own FAQ answers it.
    d = dialogue(runner, kb, Parse("", "complaint", 0.5))
    reply = await d(said("oNormal", "羊小乐羊奶粉冲出来有膻味 正常吗", 1))
    assert reply.text is not None and "正常" in reply.text and "人工" not in reply.text
    runner.close()
