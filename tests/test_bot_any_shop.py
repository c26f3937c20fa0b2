"""Answers that come from each shop's own data, tested on two dev shops (baby, cosmetics)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from bot import conversations as conv_store
from bot import texts
from bot.dialogue import SUBSTITUTE, Dialogue
from bot.orders import SqliteOrders
from bot.wechat import Inbound
from intents.client import FALLBACK, Parse
from kb import store as kb_store
from kb.encoder import Encoder
from kb.hours import BusinessHours
from kb.search import ANSWER, KnowledgeBase, SearchResult, abbreviated_keys, named_spec
from storage.db import DbRunner
from tests.fakes import FakeEncoder, FakeNlu, stored_turns
from tests.helpers import OpenShop

T0 = 1_764_036_000.0  # Tuesday 2025-11-25 10:00 China time


def said(openid: str, text: str, n: int) -> Inbound:
    return Inbound(f"msg:{openid}:{n}", openid, "gh", "text", text, int(T0))


async def states(runner: DbRunner) -> list[str]:
    """Every conversation's state."""
    return [str(r[0]) for r in await runner.run(lambda db: db.execute("SELECT state FROM conversations ORDER BY id").fetchall())]


def dialogue(runner: DbRunner, kb: KnowledgeBase, *parses: Parse) -> Any:
    d = Dialogue(runner, FakeNlu(*parses), kb, SqliteOrders(runner), BusinessHours.parse("mon-sun 09:00-22:00"), lambda: T0)
    return stored_turns(d, runner, lambda: T0)


def test_variants_come_from_the_shop_specs(open_shop: OpenShop) -> None:
    _, kb = open_shop("baby", FakeEncoder())
    assert kb.variant("BAB-018", "雾霾蓝的有吗") == ("颜色", "雾霾蓝", ["月光灰", "雾霾蓝", "奶茶色"], True)
    # 曜石黑 is another stroller's colour in this shop: asked for, and not offered by this one.
    assert kb.variant("BAB-018", "有曜石黑吗") == ("颜色", "曜石黑", ["月光灰", "雾霾蓝", "奶茶色"], False)
    assert kb.variant("BAB-018", "多少钱") is None
    _, kb = open_shop("cosmetics", FakeEncoder())
    key, wanted, _, available = kb.variant("COS-025", "绿色的还有吗") or ("", "", [], False)
    assert (key, wanted, available) == ("颜色", "绿色", True)
    # The lipstick's choices are under 色号: "有什么颜色" finds them by the shared character.
    assert kb.choice_spec("COS-013", "有什么颜色") == ("色号", "#01正红/#05豆沙/#08枫叶/#12奶茶")
    assert kb.choice_spec("COS-013", "多少钱") is None


@pytest.mark.parametrize(
    ("name", "sku", "question", "line"),
    [("baby", "BAB-034", "噪音大吗", ("噪音", "≤45dB")), ("cosmetics", "COS-025", "防晒指数多少", ("防晒指数", "SPF35 PA+++"))],
)
def test_a_spec_question_answers_the_line_by_the_product_keys(
    open_shop: OpenShop, name: str, sku: str, question: str, line: tuple[str, str]
) -> None:
    _, kb = open_shop(name, FakeEncoder())
    hit = kb.about_product(sku, question)
    assert hit is not None and hit.kind == "spec" and hit.ref.endswith("\t" + line[0])


async def test_stock_question_naming_a_spec_key_lists_its_values(open_shop: OpenShop) -> None:
    runner, kb = open_shop("cosmetics", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "ask_stock", 0.9))
    reply = await d(said("oAnyC1", "素颜隔离有哪些颜色", 1))
    assert reply.text is not None and "紫色/绿色" in reply.text


async def test_an_order_question_picks_the_order_of_the_named_product(open_shop: OpenShop) -> None:
    runner, kb = open_shop("cosmetics", FakeEncoder())
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


@pytest.mark.model
async def test_no_orders_lets_the_knowledge_base_answer(open_shop: OpenShop, real_encoder: Encoder) -> None:
    runner, kb = open_shop("baby", real_encoder)
    d = dialogue(runner, kb, Parse("", "order_status", 0.9))
    reply = await d(said("oNobody", "行乐X1推车现在卖多少钱", 1))
    assert reply.text is not None and "899" in reply.text


async def test_after_a_handoff_nobody_asked_for_questions_still_get_answers(open_shop: OpenShop) -> None:
    runner, kb = open_shop("baby", FakeEncoder())
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


async def test_once_a_person_was_asked_for_the_bot_only_says_where_the_shopper_stands(open_shop: OpenShop) -> None:
    runner, kb = open_shop("baby", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "human_agent", 0.95), Parse("", "ask_price", 0.9))
    await d(said("oAsk", "转人工", 1))
    reply = await d(said("oAsk", "行乐X1推车多少钱", 2))
    assert reply.intent == "queued"


@pytest.mark.model
async def test_a_question_about_the_agents_is_answered_from_the_faq(open_shop: OpenShop, real_encoder: Encoder) -> None:
    runner, kb = open_shop("cosmetics", real_encoder)
    d = dialogue(runner, kb, Parse("", "human_agent", 0.9))
    reply = await d(said("oHours", "人工客服几点上班", 1))
    assert reply.text is not None and "9:00-22:00" in reply.text and texts.HUMAN_ON_REQUEST in reply.text


@pytest.mark.model
async def test_is_this_normal_about_a_product_gets_its_faq_not_a_handoff(open_shop: OpenShop, real_encoder: Encoder) -> None:
    runner, kb = open_shop("baby", real_encoder)
    # A doubtful complaint about a product whose own FAQ answers it.
    d = dialogue(runner, kb, Parse("", "complaint", 0.5))
    reply = await d(said("oNormal", "羊小乐羊奶粉冲出来有膻味 正常吗", 1))
    assert reply.text is not None and "正常" in reply.text and texts.HUMAN_ON_REQUEST in reply.text
    assert not reply.understood or not reply.understood.handed_off
    assert await states(runner) == [conv_store.BOT]


@pytest.mark.model
async def test_a_sure_complaint_goes_to_a_person_with_what_the_faq_says(open_shop: OpenShop, real_encoder: Encoder) -> None:
    runner, kb = open_shop("cosmetics", real_encoder)
    d = dialogue(runner, kb, Parse("", "complaint", 0.95))
    reply = await d(said("oRash", "用了你们的东西过敏了 脸上起疹子", 1))
    assert reply.text is not None and reply.text.startswith(texts.COMPLAINT)
    assert "停用" in reply.text  # F023: stop, rinse, keep the product
    assert reply.understood is not None and reply.understood.handed_off


@pytest.mark.model
async def test_a_follow_up_is_searched_with_the_question_before_it(open_shop: OpenShop, real_encoder: Encoder) -> None:
    runner, kb = open_shop("cosmetics", real_encoder)
    d = dialogue(runner, kb, Parse("", "return_refund", 0.9), Parse("", "return_refund", 0.9))
    await d(said("oAfter", "退款申请通过了", 1))
    reply = await d(said("oAfter", "多久能到账", 2))
    faq = {f.id: f for f in kb.faqs.values() if "到账" in f.question}
    assert faq and reply.text in {f.answer for f in faq.values()}


def test_an_everyday_word_of_the_shop_names_no_product(open_shop: OpenShop) -> None:
    _, kb = open_shop("baby", FakeEncoder())
    # 宝宝 is in the down jacket's name, and in a sixth of the shop's other texts.
    assert kb.mentioned_products("声音大不大 晚上吸怕吵醒宝宝") == []
    assert kb.mentioned_products("吸奶器声音大不大") == ["BAB-034"]
    _, kb = open_shop("appliances", FakeEncoder())
    # 内胆 names the rice cooker; asked after the kettle, whose specs have a 304不锈钢内胆, it is the kettle's.
    assert kb.mentioned_products("内胆是什么材质") == ["APP-010"]
    assert kb.mentioned_products("内胆是什么材质", context_sku="APP-011") == []


@pytest.mark.model
async def test_of_two_products_named_the_one_talked_about_is_meant(open_shop: OpenShop, real_encoder: Encoder) -> None:
    runner, kb = open_shop("baby", real_encoder)
    d = dialogue(runner, kb, Parse("", "ask_product_info", 0.9), Parse("", "ask_product_info", 0.9))
    await d(said("oSeat", "星护安全座椅适合多大孩子", 1))
    reply = await d(said("oSeat", "座椅本身多重", 2))  # 座椅 names both seats
    assert reply.text is not None and "9.8kg" in reply.text and "星护" in reply.text


@pytest.mark.model
async def test_the_spec_line_asked_for_not_the_name_words(open_shop: OpenShop, real_encoder: Encoder) -> None:
    runner, kb = open_shop("appliances", real_encoder)
    d = dialogue(runner, kb, Parse("", "ask_product_info", 0.9))
    reply = await d(said("oDryer", "高速吹风机多重", 1))  # 高速 of the name is no hint of 转速
    assert reply.text is not None and "350g" in reply.text, reply.text


async def test_the_order_of_the_product_named_beats_the_one_talked_about(open_shop: OpenShop) -> None:
    runner, kb = open_shop("appliances", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "order_status", 0.9), Parse("", "order_status", 0.9), Parse("", "ask_price", 0.9))
    first = await d(said("oApp009", "儿童牙刷那个到哪了", 1))
    assert first.text is not None and "AP2026111818826" in first.text
    reply = await d(said("oApp009", "吹风机那单呢", 2))
    assert reply.text is not None and "AP2026110713380" in reply.text
    # Taken for a price question, but it is about the order of that product.
    reply = await d(said("oApp009", "刷头那单发了吗", 3))
    assert reply.text is not None and "AP2026112020415" in reply.text and "¥" not in reply.text


async def test_cancelling_an_unpaid_order_needs_no_person(open_shop: OpenShop) -> None:
    runner, kb = open_shop("baby", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "cancel_order", 0.9))
    reply = await d(said("oBaby004", "吸奶器那个单子我还没付款 不想要了", 1))
    assert reply.text is not None and "BB2026111700068" in reply.text and "自动取消" in reply.text
    assert reply.understood is not None and not reply.understood.handed_off
    assert await states(runner) == [conv_store.BOT]


async def test_a_product_name_with_robot_in_it_is_no_wish_for_a_person(open_shop: OpenShop) -> None:
    runner, kb = open_shop("appliances", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "human_agent", 0.8), Parse("", "human_agent", 0.8))
    reply = await d(said("oRobot", "R5扫地机器人", 1))
    assert reply.text is not None and "1599" in reply.text
    assert await states(runner) == [conv_store.BOT]
    reply = await d(said("oRobot", "扫地机器人有人工吗", 2))  # asks for a person: queued
    assert await states(runner) == [conv_store.QUEUED]


async def test_a_price_question_taken_for_an_order_question_by_a_shopper_without_orders(open_shop: OpenShop) -> None:
    runner, kb = open_shop("appliances", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "order_status", 0.8), Parse("", "order_status", 0.8))
    reply = await d(said("oNoOrders", "无雾加湿器HM-E6多少钱", 1))
    assert reply.text is not None and "529" in reply.text
    reply = await d(said("oNoOrders", "我的订单到哪了", 2))
    assert reply.text == texts.NO_ORDERS


@pytest.mark.model
async def test_a_question_is_no_thank_you(open_shop: OpenShop, real_encoder: Encoder) -> None:
    runner, kb = open_shop("appliances", real_encoder)
    d = dialogue(runner, kb, Parse("", "thanks", 0.9))
    reply = await d(said("oHow", "收到的货坏了要我怎么弄", 1))
    assert reply.text != texts.THANKS


@pytest.mark.model
async def test_a_follow_up_the_model_cannot_place_is_asked_of_the_product_in_context(
    open_shop: OpenShop, real_encoder: Encoder
) -> None:
    runner, kb = open_shop("appliances", real_encoder)
    d = dialogue(runner, kb, Parse("", "ask_price", 0.9), Parse("", "out_of_scope", 0.8), Parse("", "out_of_scope", 0.8))
    first = await d(said("oVac", "V8 Lite吸尘器多少钱", 1))
    assert first.text is not None and "899" in first.text
    reply = await d(said("oVac", "尘杯多大", 2))
    assert reply.text is not None and "0.6L" in reply.text
    # Nothing the product's lines answer: still the polite no.
    reply = await d(said("oVac", "今天天气怎么样", 3))
    assert reply.text == texts.OUT_OF_SCOPE


@pytest.mark.sqlite  # counts SQLite's BEGIN statements through its trace callback
async def test_a_message_costs_two_write_transactions(open_shop: OpenShop) -> None:
    runner, kb = open_shop("appliances", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "ask_price", 0.9), Parse("", "ask_price", 0.9))
    begun: list[str] = []

    def trace(statement: str) -> None:
        if statement.strip().upper().startswith("BEGIN"):
            begun.append(statement)

    await runner.run(lambda db: db.conn.set_trace_callback(trace))
    first = await d(said("oTwo", "R5扫地机器人多少钱", 1))  # a new shopper: the conversation starts too
    assert first.text is not None and "1599" in first.text
    assert len(begun) == 2  # store the message; store the answer with the conversation
    second = await d(said("oTwo", "那它多少钱", 2))
    assert second.text is not None and "1599" in second.text  # the context came through
    assert len(begun) == 4
    await runner.run(lambda db: db.conn.set_trace_callback(None))
    assert await states(runner) == [conv_store.BOT]


@pytest.mark.sqlite  # counts SQLite's BEGIN statements through its trace callback
async def test_a_handoff_is_written_with_its_reply(open_shop: OpenShop) -> None:
    runner, kb = open_shop("appliances", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "human_agent", 0.95))
    begun: list[str] = []

    def trace(statement: str) -> None:
        if statement.strip().upper().startswith("BEGIN"):
            begun.append(statement)

    await runner.run(lambda db: db.conn.set_trace_callback(trace))
    reply = await d(said("oPerson", "转人工", 1))  # a new shopper asking for a person straight away
    await runner.run(lambda db: db.conn.set_trace_callback(None))
    assert reply.text == texts.HANDOFF_NEXT
    assert len(begun) == 2  # store the message; store the answer with the new conversation and its handoff
    assert await states(runner) == [conv_store.QUEUED]


@pytest.mark.model
async def test_a_spec_the_question_states_is_not_the_one_asked(open_shop: OpenShop, real_encoder: Encoder) -> None:
    _, kb = open_shop("fresh", real_encoder)
    hit = kb.about_product("FRU-034", "5斤大概几个", at_least=0.0)  # 净重 is 5斤: the shopper asks 数量
    assert hit is not None and hit.ref == "FRU-034\t数量"


async def test_waiting_for_a_person_a_question_the_faq_answers_gets_its_answer(open_shop: OpenShop) -> None:
    runner, kb = open_shop("appliances", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "human_agent", 0.95))
    await d(said("oWait", "转人工", 1))
    reply = await d(said("oWait", "人工客服工作时间是几点？", 2))
    assert reply.text is not None and "9:00-22:00" in reply.text and "队列" in reply.text
    reply = await d(said("oWait", "快点", 3))  # no question: only the place in line
    assert reply.text is not None and "9:00-22:00" not in reply.text and "队列" in reply.text
    assert await states(runner) == [conv_store.QUEUED]


def test_an_faq_without_a_sku_is_about_the_products_its_question_names(open_shop: OpenShop) -> None:
    _, kb = open_shop("cosmetics", FakeEncoder())
    assert kb.faqs["F064"].sku is None and kb.faq_products("F064") == {"COS-027"}  # 沐森护发素可以涂头皮吗？
    assert kb.faq_products("F055") == {"COS-031"}  # its sku column
    assert kb.faq_products("F023") == frozenset()  # 用了过敏怎么办？ is shop-wide
    _, kb = open_shop("appliances", FakeEncoder())
    # 润境加湿器多久清洗一次？ names the brand of four humidifiers: it is about each of them.
    assert kb.faq_products("F057") == {"APP-025", "APP-026", "APP-027", "APP-028"}


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "sku", "question", "faq_id"),
    [
        ("cosmetics", "COS-027", "护发素要抹到头皮吗", "F064"),
        ("cosmetics", "COS-008", "我怀孕了能用吗", "F034"),
        ("appliances", "APP-025", "多久清洗一次", "F057"),
        ("baby", "BAB-018", "怎么折叠", "F048"),
    ],
)
def test_a_product_question_finds_the_faq_whose_question_names_the_product(
    open_shop: OpenShop, real_encoder: Encoder, name: str, sku: str, question: str, faq_id: str
) -> None:
    _, kb = open_shop(name, real_encoder)
    assert kb.faqs[faq_id].sku is None  # the shop left the sku column empty
    hit = kb.about_product(sku, question)
    assert hit is not None and (hit.kind, hit.ref) == ("faq", faq_id)


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "sku", "question", "key"),
    [
        ("fresh", "FRU-040", "一箱几根", "数量"),  # 数量：10根, not 单根重
        ("fresh", "FRU-012", "能放多久", "储存"),  # 硬果冷藏可放30天
        ("baby", "BAB-007", "M码一包几片", "片数"),  # not the size guide
        ("baby", "BAB-001", "一罐多少克", "净含量"),
        ("appliances", "APP-008", "能煮几个人的饭", "适用人数"),  # 2-6人, not 功能
    ],
)
def test_the_spec_line_stating_the_quantity_asked_for(
    open_shop: OpenShop, real_encoder: Encoder, name: str, sku: str, question: str, key: str
) -> None:
    _, kb = open_shop(name, real_encoder)
    hit = kb.about_product(sku, question)
    assert hit is not None and (hit.kind, hit.ref) == ("spec", f"{sku}\t{key}")


@pytest.mark.model
def test_a_duration_the_faq_gives_beats_a_spec_stating_another(open_shop: OpenShop, real_encoder: Encoder) -> None:
    _, kb = open_shop("cosmetics", real_encoder)
    hit = kb.about_product("COS-032", "敷多久")  # the mask's FAQ (15-20 minutes), not 保质期 3年
    assert hit is not None and hit.kind == "faq" and "15-20分钟" in kb.faqs[hit.ref].answer


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "product_question", "answer"),
    [
        ("fresh", "阳光玫瑰两串装多钱", "冷藏7-10天"),
        ("fresh", "丹东草莓多少钱", "到货后1-2天"),
        ("baby", "贝乐滋1段多少钱", "开罐后"),
    ],
)
async def test_how_long_a_product_keeps_is_no_shipping_question(
    open_shop: OpenShop, real_encoder: Encoder, name: str, product_question: str, answer: str
) -> None:
    runner, kb = open_shop(name, real_encoder)
    # The intent model takes "能放几天" for a shipping question ("几天能到").
    d = dialogue(runner, kb, Parse("", "ask_price", 0.9), Parse("", "ask_shipping", 0.56), Parse("", "ask_shipping", 0.9))
    await d(said("oKeep", product_question, 1))
    reply = await d(said("oKeep", "能放几天", 2))
    assert reply.text is not None and answer in reply.text, reply.text
    reply = await d(said("oKeep", "几天能到", 3))  # how long delivery takes: the shipping answer
    assert reply.text is not None and answer not in reply.text


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "first", "question", "answer"),
    [
        ("cosmetics", "九色眼影盘有几种配色", "都是哑光的吗", "哑光"),  # 质地
        ("fresh", "四季鲜果礼盒多少钱", "四季鲜果礼盒里面有啥", "阳光玫瑰"),  # 内含
    ],
)
async def test_a_doubtful_complaint_asking_about_the_product_gets_its_line(
    open_shop: OpenShop, real_encoder: Encoder, name: str, first: str, question: str, answer: str
) -> None:
    runner, kb = open_shop(name, real_encoder)
    d = dialogue(runner, kb, Parse("", "ask_product_info", 0.9), Parse("", "complaint", 0.44))
    await d(said("oDoubt", first, 1))
    reply = await d(said("oDoubt", question, 2))
    assert reply.text is not None and answer in reply.text and texts.HUMAN_ON_REQUEST in reply.text, reply.text
    assert reply.understood is not None and not reply.understood.handed_off
    assert await states(runner) == [conv_store.BOT]


@pytest.mark.model
async def test_an_angry_question_about_a_product_is_still_a_complaint(open_shop: OpenShop, real_encoder: Encoder) -> None:
    runner, kb = open_shop("baby", real_encoder)
    d = dialogue(runner, kb, Parse("", "complaint", 0.63))
    reply = await d(said("oAngry", "床铃才用两天就没声音了 什么质量", 1))
    assert reply.text is not None and reply.text.startswith(texts.COMPLAINT)
    assert await states(runner) == [conv_store.QUEUED]


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "first", "question", "guess", "answer"),
    [
        ("fresh", "椰青4个装多少钱", "怎么开", "ask_invoice", "开椰器"),
        ("cosmetics", "晴川防晒霜多少钱", "要卸妆吗", "cancel_order", "需要卸妆"),
    ],
)
async def test_a_question_the_model_only_guesses_at_gets_the_product_line_that_answers_it(
    open_shop: OpenShop, real_encoder: Encoder, name: str, first: str, question: str, guess: str, answer: str
) -> None:
    runner, kb = open_shop(name, real_encoder)
    d = dialogue(runner, kb, Parse("", "ask_price", 0.9), Parse("", guess, 0.45))
    await d(said("oGuess", first, 1))
    reply = await d(said("oGuess", question, 2))
    assert reply.text is not None and answer in reply.text, reply.text


async def test_a_name_that_is_part_of_a_spec_key_of_the_product_in_context_asks_that_spec(open_shop: OpenShop) -> None:
    runner, kb = open_shop("baby", FakeEncoder())
    # 奶嘴 is the teat's alias and the bottle's own spec 奶嘴：液态硅胶M号.
    d = dialogue(runner, kb, Parse("", "ask_price", 0.9), Parse("", "ask_product_info", 0.9), Parse("", "ask_price", 0.9))
    await d(said("oTeat", "宽口径PPSU奶瓶多少钱", 1))
    reply = await d(said("oTeat", "奶嘴是什么样的", 2))
    assert reply.text is not None and "液态硅胶M号" in reply.text, reply.text
    reply = await d(said("oTeat", "喂乐奶嘴多少钱", 3))  # the teat named by more than that word: the teat
    assert reply.text is not None and kb.products["BAB-013"].name in reply.text, reply.text


@pytest.mark.model
async def test_a_spec_of_the_foundation_is_no_wish_for_the_sunscreen(open_shop: OpenShop, real_encoder: Encoder) -> None:
    runner, kb = open_shop("cosmetics", real_encoder)
    d = dialogue(runner, kb, Parse("", "ask_stock", 0.9), Parse("", "ask_product_info", 0.95))
    await d(said("oSpf", "粉底液有几个色", 1))
    reply = await d(said("oSpf", "带防晒吗", 2))  # 防晒 is the sunscreen's alias and the foundation's 防晒指数
    assert reply.text is not None and "SPF25" in reply.text, reply.text


@pytest.mark.parametrize(
    ("name", "product_question", "question", "variant"),
    [("cosmetics", "睫毛膏啥时候有货", "有棕色的吗", "棕色"), ("baby", "产后收腹带多少钱", "有L码吗", "L")],
)
async def test_a_variant_of_a_sold_out_product_is_offered_and_out_of_stock(
    open_shop: OpenShop, name: str, product_question: str, question: str, variant: str
) -> None:
    runner, kb = open_shop(name, FakeEncoder())
    d = dialogue(runner, kb, Parse("", "ask_stock", 0.9), Parse("", "ask_stock", 0.9))
    await d(said("oSoldOut", product_question, 1))
    reply = await d(said("oSoldOut", question, 2))
    assert reply.text is not None and f"有{variant}" in reply.text and "缺货" in reply.text, reply.text


@pytest.mark.parametrize(
    ("name", "product_question", "ships"), [("fresh", "丹东草莓多少钱", "12月10日"), ("appliances", "洗地机W10多少钱", "12月5日")]
)
async def test_when_does_it_ship_without_an_order_is_the_product_in_context(
    open_shop: OpenShop, name: str, product_question: str, ships: str
) -> None:
    runner, kb = open_shop(name, FakeEncoder())
    d = dialogue(runner, kb, Parse("", "ask_price", 0.9), Parse("", "order_status", 0.77))
    await d(said("oNoOrder", product_question, 1))
    reply = await d(said("oNoOrder", "几号发货", 2))  # the model takes it for an order question; no order placed
    assert reply.text is not None and ships in reply.text, reply.text


@pytest.mark.parametrize(
    ("name", "openid", "message", "parse", "order_id"),
    [
        ("appliances", "oApp006", "破壁机那单签收了吧", Parse("", "nlu_fallback", 0.24), "AP2026111123067"),
        ("fresh", "oFru005", "砂糖橘那单发了没", Parse("", "goodbye", 0.36), "FR2026112200358"),
    ],
)
async def test_that_order_of_a_product_is_about_the_order_whatever_the_model_guessed(
    open_shop: OpenShop, name: str, openid: str, message: str, parse: Parse, order_id: str
) -> None:
    runner, kb = open_shop(name, FakeEncoder())
    d = dialogue(runner, kb, parse)
    reply = await d(said(openid, message, 1))
    assert reply.text is not None and order_id in reply.text, reply.text


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "message", "answer"), [("fresh", "耙耙柑上了没", "12月20日"), ("cosmetics", "圣诞礼盒上了没", "12月10日")]
)
async def test_has_it_come_yet_is_a_question_not_a_goodbye(
    open_shop: OpenShop, real_encoder: Encoder, name: str, message: str, answer: str
) -> None:
    runner, kb = open_shop(name, real_encoder)
    d = dialogue(runner, kb, Parse("", "goodbye", 0.49))
    reply = await d(said("oYet", message, 1))
    assert reply.text is not None and answer in reply.text, reply.text


@pytest.mark.parametrize(
    ("name", "message", "parse"),
    [
        ("cosmetics", "这已经不是第一次了", Parse("", "goodbye", 0.57, ranking=(("goodbye", 0.57), ("complaint", 0.41)))),
        ("baby", "尽快给我处理 孩子等着用", Parse("", "thanks", 0.32, ranking=(("thanks", 0.32), ("complaint", 0.18)))),
    ],
)
async def test_a_doubtful_goodbye_that_reads_as_a_complaint_goes_to_a_person(
    open_shop: OpenShop, name: str, message: str, parse: Parse
) -> None:
    runner, kb = open_shop(name, FakeEncoder())
    d = dialogue(runner, kb, parse, Parse("", "thanks", 0.95, ranking=(("thanks", 0.95), ("complaint", 0.03))))
    reply = await d(said("oAgain", message, 1))
    assert reply.text is not None and reply.text.startswith(texts.COMPLAINT), reply.text
    assert await states(runner) == [conv_store.QUEUED]
    reply = await d(said("oAgain", "好的谢谢", 2))  # a thank-you the model is sure of stays one
    assert reply.text == texts.THANKS


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "openid", "order_id"), [("fresh", "oFru009", "FR2026111900247"), ("cosmetics", "oCos013", "CS2026110800266")]
)
async def test_how_long_a_refund_takes_gives_the_shops_rule_after_where_it_stands(
    open_shop: OpenShop, real_encoder: Encoder, name: str, openid: str, order_id: str
) -> None:
    runner, kb = open_shop(name, real_encoder)
    d = dialogue(runner, kb, Parse("", "return_refund", 0.97))
    reply = await d(said(openid, "退款一般几天到账", 1))
    status = texts.REFUND_STATUS.format(order_id=order_id)
    assert reply.text is not None and reply.text.startswith(status) and kb.faqs["F009"].answer in reply.text, reply.text


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "first", "question", "guess", "answer"),
    [
        ("fresh", "糯玉米多少钱", "怎么吃", Parse("", "out_of_scope", 0.6), "沸水"),
        ("cosmetics", "圣诞礼盒多少钱", "圣诞礼盒里都有啥", Parse("", "ask_promotion", 0.59), "精华"),
        ("baby", "贝乐滋1段多少钱", "打算买贝乐滋1段 先问问怎么冲", Parse("", "ask_stock", 0.44), "ml"),
    ],
)
async def test_how_to_use_it_and_what_is_in_it_are_asked_of_the_product(
    open_shop: OpenShop, real_encoder: Encoder, name: str, first: str, question: str, guess: Parse, answer: str
) -> None:
    runner, kb = open_shop(name, real_encoder)
    d = dialogue(runner, kb, Parse("", "ask_price", 0.9), guess)
    await d(said("oHowTo", first, 1))
    reply = await d(said("oHowTo", question, 2))
    assert reply.text is not None and answer in reply.text and "¥" not in reply.text, reply.text


@pytest.mark.parametrize(
    ("name", "question", "back"), [("baby", "白鸭绒羽绒服多少钱", "11月28日"), ("fresh", "佳沛金果多少钱", "明年5月")]
)
async def test_the_price_of_a_sold_out_product_says_when_it_is_back(
    open_shop: OpenShop, name: str, question: str, back: str
) -> None:
    runner, kb = open_shop(name, FakeEncoder())
    d = dialogue(runner, kb, Parse("", "ask_price", 0.9))
    reply = await d(said("oBack", question, 1))
    assert reply.text is not None and "缺货" in reply.text and back in reply.text, reply.text


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "openid", "about_order", "question", "answer"),
    [
        (
            "cosmetics",
            "oCos007",
            (Parse("", "order_status", 0.9), "水杨酸那个到哪了"),
            (Parse("", "thanks", 0.42), "收到了怎么用"),
            "T区",
        ),
        (
            "baby",
            "oBaby003",
            (Parse("", "change_order", 0.9), "我的哈衣订单能改地址吗 BB2026111600045"),
            (Parse("", "ask_shipping", 0.9), "那大概什么时候能发"),
            "48小时",
        ),
    ],
)
async def test_the_product_of_the_order_talked_about_is_the_product_talked_about(
    open_shop: OpenShop,
    tmp_path: Path,
    real_encoder: Encoder,
    name: str,
    openid: str,
    about_order: tuple[Parse, str],
    question: tuple[Parse, str],
    answer: str,
) -> None:
    runner, kb = open_shop(name, real_encoder)
    d = dialogue(runner, kb, about_order[0], question[0])
    await d(said(openid, about_order[1], 1))
    reply = await d(said(openid, question[1], 2))
    assert reply.text is not None and answer in reply.text, reply.text


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "openid", "first", "question", "answer"),
    [
        ("fresh", "oFru012", "玉米到哪里了", "收到咋煮", "沸水"),
        ("cosmetics", "oCos007", "水杨酸那个到哪了", "收到了怎么用", "T区"),
    ],
)
async def test_how_to_use_it_taken_for_an_order_question_is_about_the_product(
    open_shop: OpenShop, real_encoder: Encoder, name: str, openid: str, first: str, question: str, answer: str
) -> None:
    runner, kb = open_shop(name, real_encoder)
    d = dialogue(runner, kb, Parse("", "order_status", 0.9), Parse("", "order_status", 0.35))
    await d(said(openid, first, 1))
    reply = await d(said(openid, question, 2))  # no order named or talked of: how to use what arrived
    assert reply.text is not None and answer in reply.text, reply.text


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "sku", "question", "key"),
    [
        ("fresh", "FRU-012", "一个多大", "单果重"),  # one kiwi's 90-110g, not the box's 净重 约5斤
        ("fresh", "FRU-029", "多大个", "单果重"),
        ("cosmetics", "COS-023", "多大的", "净含量"),  # 60ml
        ("baby", "BAB-018", "那它多重啊 我一个人带娃要经常拎上楼", "车重"),
    ],
)
def test_how_big_or_heavy_is_the_line_stating_a_measure(
    open_shop: OpenShop, real_encoder: Encoder, name: str, sku: str, question: str, key: str
) -> None:
    _, kb = open_shop(name, real_encoder)
    hit = kb.about_product(sku, question)
    assert hit is not None and (hit.kind, hit.ref) == ("spec", f"{sku}\t{key}")


@pytest.mark.parametrize(
    ("name", "sku", "question", "key"),
    [("fresh", "FRU-007", "甜吗", "甜度"), ("baby", "BAB-031", "厚吗", "厚度"), ("fresh", "FRU-029", "甜不甜", "甜度")],
)
def test_is_it_sweet_asks_the_line_of_its_degree(open_shop: OpenShop, name: str, sku: str, question: str, key: str) -> None:
    _, kb = open_shop(name, FakeEncoder())
    hit = kb.about_product(sku, question)
    assert hit is not None and (hit.kind, hit.ref) == ("spec", f"{sku}\t{key}")


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "sku", "question", "faq_id"),
    [
        ("baby", "BAB-007", "宝宝7公斤穿啥码", "F036"),  # the size guide by weight: S码4-8kg, M码6-11kg
        ("appliances", "APP-016", "能过门槛吗 我家门槛大概1.5厘米", "F047"),  # 越障高度2cm
    ],
)
def test_a_quantity_the_shopper_states_finds_the_text_in_its_unit(
    open_shop: OpenShop, real_encoder: Encoder, name: str, sku: str, question: str, faq_id: str
) -> None:
    _, kb = open_shop(name, real_encoder)
    hit = kb.about_product(sku, question)
    assert hit is not None and (hit.kind, hit.ref) == ("faq", faq_id)


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "sku", "question"),
    [("baby", "BAB-021", "座椅保修多久"), ("baby", "BAB-019", "推车车架保修多久"), ("appliances", "APP-012", "保修多久")],
)
def test_a_topic_the_product_has_no_line_for_is_left_to_the_shop_faq(
    open_shop: OpenShop, real_encoder: Encoder, name: str, sku: str, question: str
) -> None:
    _, kb = open_shop(name, real_encoder)
    product = kb.products[sku]
    assert not any("保" in key or "修" in key for key, _ in product.specs)
    assert any("保修" in faq.question for faq in kb.faqs.values())  # the shop's FAQ tells
    assert kb.about_product(sku, question) is None  # no 适用年龄 line for a warranty question
    # The same kind of question where the FAQ asks nothing of it: the product's own line still answers.
    _, fresh = open_shop("fresh", real_encoder)
    assert not any("保质期" in faq.question for faq in fresh.faqs.values())
    hit = fresh.about_product("FRU-012", "保质期多久")  # the kiwi has no 保质期 line: 储存 "冷藏可放30天"
    assert hit is not None and hit.ref == "FRU-012\t储存", hit


@pytest.mark.model
def test_a_named_line_that_gives_no_time_leaves_how_long_to_the_faq(open_shop: OpenShop, real_encoder: Encoder) -> None:
    _, kb = open_shop("appliances", real_encoder)
    assert dict(kb.products["APP-026"].specs)["滤芯"] == "银离子抗菌滤芯"
    hit = kb.about_product("APP-026", "滤芯多久换")  # the FAQ: "滤芯建议3个月更换一次"
    assert hit is not None and hit.kind == "faq" and "3个月" in kb.faqs[hit.ref].answer
    hit = kb.about_product("APP-026", "滤芯是什么的")  # asks no time: the line named
    assert hit is not None and hit.ref == "APP-026\t滤芯"


@pytest.mark.parametrize(
    ("name", "openid", "order_id", "intent"),
    [
        ("appliances", "oApp004", "AP2026112190127", "return_refund"),
        ("baby", "oBaby004", "BB2026111700068", "complaint"),
        ("cosmetics", "oCos005", "CS2026111400093", "cancel_order"),
    ],
)
async def test_an_unpaid_order_not_wanted_said_as_a_statement_is_cancelled(
    open_shop: OpenShop, name: str, openid: str, order_id: str, intent: str
) -> None:
    runner, kb = open_shop(name, FakeEncoder())
    d = dialogue(runner, kb, Parse("", intent, 0.6))
    reply = await d(said(openid, "我不想要了，还没付款", 1))
    assert reply.text is not None and order_id in reply.text and "自动取消" in reply.text, reply.text
    assert await states(runner) == [conv_store.BOT]  # nothing to refund: nobody needed


async def test_not_wanting_an_order_already_paid_is_no_unpaid_cancellation(open_shop: OpenShop) -> None:
    runner, kb = open_shop("appliances", FakeEncoder())
    # oApp002 has one order, shipped: "还没付款" finds no unpaid order, the intent's handler answers.
    d = dialogue(runner, kb, Parse("", "cancel_order", 0.9))
    reply = await d(said("oApp002", "我不想要了，还没付款", 1))
    assert reply.text is not None and "还没付款，不用申请取消" not in reply.text, reply.text
    assert "已经发货" in reply.text


@pytest.mark.parametrize(
    ("name", "sku", "question", "variant"),
    [
        ("cosmetics", "COS-001", "有没有大瓶一点的", "COS-002"),  # the 50ml 大瓶装 of the 30ml essence
        ("baby", "BAB-003", "那二段的有吗", "BAB-002"),  # 贝乐滋二段 after 贝乐滋三段
        ("fresh", "FRU-001", "那3J的呢", "FRU-002"),  # 3J车厘子 after the JJ cherries
    ],
)
def test_a_variant_of_the_product_talked_about_is_named_by_what_sets_it_apart(
    open_shop: OpenShop, name: str, sku: str, question: str, variant: str
) -> None:
    _, kb = open_shop(name, FakeEncoder())
    assert kb.mentioned_products(question, sku) == []  # no name or alias of the shop's in it
    assert kb.sibling_named(sku, question) == variant


@pytest.mark.parametrize(
    ("name", "sku", "question"),
    [
        ("baby", "BAB-033", "生完喂奶的时候还能用吗"),  # 喂奶 is in the nursing bra's alias, no variant of the cream
        ("appliances", "APP-016", "我家120平够用吗"),  # 120 is in the car vacuum's name (120W), another product
        ("cosmetics", "COS-001", "多少钱"),
    ],
)
def test_a_word_of_another_product_names_no_variant(open_shop: OpenShop, name: str, sku: str, question: str) -> None:
    _, kb = open_shop(name, FakeEncoder())
    assert kb.sibling_named(sku, question) is None


async def test_a_variant_asked_for_gets_its_own_price_and_stock(open_shop: OpenShop) -> None:
    runner, kb = open_shop("cosmetics", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "ask_price", 0.9), Parse("", "ask_stock", 0.8), Parse("", "ask_stock", 0.9))
    assert "189" in ((await d(said("oVar", "玻尿酸精华小瓶的多少钱", 1))).text or "")
    reply = await d(said("oVar", "有没有大瓶一点的", 2))
    assert reply.text is not None and "269" in reply.text and "50ml" in reply.text, reply.text
    reply = await d(said("oVar", "大瓶的还有货吗", 3))  # the variant is now the product talked about
    assert reply.text is not None and "50ml" in reply.text, reply.text


@pytest.mark.parametrize(
    ("name", "question", "named"),
    [
        ("cosmetics", "能和维C水一起用吗", True),
        ("appliances", "能和T7一起用吗", True),
        ("cosmetics", "维C水多少钱", False),
        ("appliances", "T7电动牙刷多少钱", False),
    ],
)
def test_a_product_named_after_with_goes_with_the_one_asked_about(
    open_shop: OpenShop, name: str, question: str, named: bool
) -> None:
    _, kb = open_shop(name, FakeEncoder())
    assert kb.mentioned_products(question)  # the message names a product
    assert kb.names_only_companions(question) is named


@pytest.mark.model
async def test_can_it_be_used_with_another_product_asks_about_the_one_talked_about(
    open_shop: OpenShop, real_encoder: Encoder
) -> None:
    runner, kb = open_shop("cosmetics", real_encoder)
    d = dialogue(runner, kb, Parse("", "ask_price", 0.9), Parse("", "ask_product_info", 0.92))
    await d(said("oWith", "小白瓶多少钱", 1))
    reply = await d(said("oWith", "能和维C水一起用吗", 2))
    # The niacinamide essence's FAQ (早上用维C爽肤水、晚上用烟酰胺精华), not the toner's skin types.
    assert reply.text is not None and "早晚分开" in reply.text, reply.text


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "openid", "refund_question"),
    [("baby", "oBaby006", "羊奶粉退款到哪一步了"), ("cosmetics", "oCos003", "粉底液退款到哪一步了")],
)
async def test_how_soon_it_arrives_after_a_refund_question_is_the_refund(
    open_shop: OpenShop, real_encoder: Encoder, name: str, openid: str, refund_question: str
) -> None:
    runner, kb = open_shop(name, real_encoder)
    d = dialogue(runner, kb, Parse("", "return_refund", 0.9), Parse("", "ask_payment", 0.48))
    await d(said(openid, refund_question, 1))
    reply = await d(said(openid, "多久能到账", 2))  # as close to 发货后几天能收到 as to 退款多久到账
    assert reply.text is not None and "工作日" in reply.text and "送达" not in reply.text, reply.text


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "openid", "message", "answer"),
    [
        ("fresh", "oFru008", "那不取消了 橙子有点酸咋办", "更甜"),
        ("baby", "oBaby008", "先不退了 调奶器能直接烧开水吗", "煮沸"),
    ],
)
async def test_keeping_the_order_after_all_leaves_the_question_asked(
    open_shop: OpenShop, real_encoder: Encoder, name: str, openid: str, message: str, answer: str
) -> None:
    runner, kb = open_shop(name, real_encoder)
    d = dialogue(runner, kb, Parse("", "cancel_order", 0.8))
    reply = await d(said(openid, message, 1))
    assert reply.text is not None and answer in reply.text and "取消" not in reply.text, reply.text
    assert await states(runner) == [conv_store.BOT]


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "openid", "message", "answer"),
    [("appliances", "oApp007", "要是延迟发货有补偿吗", "延迟"), ("fresh", "oFru001", "能晚几天再发吗", "备注")],
)
async def test_a_doubtful_order_change_that_changes_nothing_is_a_question(
    open_shop: OpenShop, real_encoder: Encoder, name: str, openid: str, message: str, answer: str
) -> None:
    runner, kb = open_shop(name, real_encoder)
    d = dialogue(runner, kb, Parse("", "change_order", 0.44))
    reply = await d(said(openid, message, 1))  # each shopper has a paid order that could be changed
    assert reply.text is not None and answer in reply.text and "修改需求" not in reply.text, reply.text
    assert await states(runner) == [conv_store.BOT]  # no change task for an agent


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "sku", "question", "key"),
    [("baby", "BAB-014", "能装多少水", "容量"), ("fresh", "FRU-036", "一个有多少水", "椰汁")],
)
def test_how_much_it_holds_is_the_line_giving_a_volume(
    open_shop: OpenShop, real_encoder: Encoder, name: str, sku: str, question: str, key: str
) -> None:
    _, kb = open_shop(name, real_encoder)
    hit = kb.about_product(sku, question)
    assert hit is not None and (hit.kind, hit.ref) == ("spec", f"{sku}\t{key}")


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "product_question", "question", "answer"),
    [
        ("baby", "行乐X1推车多少钱", "那它多重啊 我一个人带娃要经常拎上楼", "6.8kg"),
        ("appliances", "可视空气炸锅多少钱", "多重啊 要搬上楼", "4.8kg"),
    ],
)
async def test_a_measure_taken_for_a_shipping_question_is_the_product_line(
    open_shop: OpenShop, real_encoder: Encoder, name: str, product_question: str, question: str, answer: str
) -> None:
    runner, kb = open_shop(name, real_encoder)
    d = dialogue(runner, kb, Parse("", "ask_price", 0.9), Parse("", "ask_shipping", 0.6))
    await d(said("oUp", product_question, 1))
    reply = await d(said("oUp", question, 2))
    assert reply.text is not None and answer in reply.text, reply.text


@pytest.mark.parametrize(
    ("name", "sku", "question", "key"),
    [("appliances", "APP-015", "开强力档呢", "续航"), ("fresh", "FRU-036", "冷藏呢", "保质期")],
)
def test_a_follow_up_naming_part_of_a_value_is_that_line(
    open_shop: OpenShop, name: str, sku: str, question: str, key: str
) -> None:
    _, kb = open_shop(name, FakeEncoder())
    assert kb.value_named(sku, question) == key
    assert kb.value_named(sku, "多少钱呢") is None


@pytest.mark.parametrize(
    ("name", "product_question", "question", "answer"),
    [("appliances", "V8吸尘器续航多长时间", "开强力档呢", "12分钟(强力档)"), ("fresh", "椰青能放多久", "冷藏呢", "冷藏15天")],
)
async def test_an_elliptical_follow_up_gets_the_line_it_names_part_of(
    open_shop: OpenShop, name: str, product_question: str, question: str, answer: str
) -> None:
    runner, kb = open_shop(name, FakeEncoder())
    d = dialogue(runner, kb, Parse("", "ask_product_info", 0.9), Parse("", "ask_invoice", 0.54))
    await d(said("oElide", product_question, 1))
    reply = await d(said("oElide", question, 2))  # whatever the model takes it for
    assert reply.text is not None and answer in reply.text, reply.text


@pytest.mark.parametrize(
    ("name", "openid", "first", "question", "order_id"),
    [
        ("appliances", "oApp009", "我有三个订单，儿童牙刷那个到哪了", "刷头那个呢", "AP2026112020415"),
        ("fresh", "oFru001", "我买的蓝莓到哪了", "车厘子那个呢", "FR2026111900236"),
    ],
)
async def test_what_about_that_one_after_an_order_is_that_product_order(
    open_shop: OpenShop, name: str, openid: str, first: str, question: str, order_id: str
) -> None:
    runner, kb = open_shop(name, FakeEncoder())
    d = dialogue(runner, kb, Parse("", "order_status", 0.9), Parse("", "ask_product_info", 0.55))
    await d(said(openid, first, 1))
    reply = await d(said(openid, question, 2))
    assert reply.text is not None and order_id in reply.text, reply.text


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "sku", "question", "key"),
    [
        # The T7's description says "充一次电可用60天": 续航, not 充电 (Type-C约3小时), which the
        # embedding and the characters 充 and 电 point at.
        ("appliances", "APP-033", "充一次电能用多久", "续航"),
        ("appliances", "APP-034", "充一次电用多久", "续航"),  # the K3's own text says nothing: the shop's words
        ("appliances", "APP-015", "充电要多久", "充电时间"),  # no words of the shop's before 续航's values
        ("fresh", "FRU-012", "放冰箱能存多久", "储存"),  # its FAQ: "硬果放冰箱冷藏能存30天"
    ],
)
def test_the_shop_words_before_a_value_tell_which_line_is_asked(
    open_shop: OpenShop, real_encoder: Encoder, name: str, sku: str, question: str, key: str
) -> None:
    _, kb = open_shop(name, real_encoder)
    hit = kb.about_product(sku, question)
    assert hit is not None and (hit.kind, hit.ref) == ("spec", f"{sku}\t{key}")


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "question", "answer"),
    [
        ("appliances", "HM-E6滤芯多久换", "3个月"),
        ("cosmetics", "A醇晚霜孕妇能用吗", "不建议"),
        ("baby", "X1推车怎么收车", "一键收车"),
        ("fresh", "牛油果收到是硬的吗", "常温"),
    ],
)
async def test_a_product_question_taken_for_an_order_question_gets_its_faq_not_its_card(
    open_shop: OpenShop, real_encoder: Encoder, name: str, question: str, answer: str
) -> None:
    runner, kb = open_shop(name, real_encoder)
    d = dialogue(runner, kb, Parse("", "order_status", 0.5))
    reply = await d(said("oNoOrders", question, 1))  # a shopper without orders
    assert reply.text is not None and answer in reply.text and "现价" not in reply.text, reply.text


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "question", "answer"), [("fresh", "周末有人吗", "8:30"), ("cosmetics", "亲 客服晚上几点下班", "22:00")]
)
async def test_a_greeting_that_asks_something_else_is_a_question(
    open_shop: OpenShop, real_encoder: Encoder, name: str, question: str, answer: str
) -> None:
    runner, kb = open_shop(name, real_encoder)
    d = dialogue(runner, kb, Parse("", "greet", 0.9), Parse("", "greet", 0.99))
    reply = await d(said("oHi", question, 1))  # the agents' hours, not a hello
    assert reply.text is not None and answer in reply.text and reply.text != texts.GREET, reply.text
    assert (await d(said("oHi", "你好 在吗", 2))).text == texts.GREET  # greeting words only


@pytest.mark.parametrize(
    ("name", "sku", "first", "question"),
    [("cosmetics", "COS-008", "A醇晚霜多少钱", "那有啥可以替代的"), ("baby", "BAB-018", "X1推车多少钱", "有什么能代替的吗")],
)
async def test_what_could_replace_the_product_lists_its_category_in_stock(
    open_shop: OpenShop, name: str, sku: str, first: str, question: str
) -> None:
    runner, kb = open_shop(name, FakeEncoder())
    product = kb.products[sku]
    others = await runner.run(kb_store.in_stock_alternatives, product.category, sku)
    d = dialogue(runner, kb, Parse("", "ask_price", 0.95), Parse("", "ask_stock", 0.84), Parse("", "ask_product_info", 0.9))
    await d(said("oSubstitute", first, 1))
    reply = await d(said("oSubstitute", question, 2))  # not the product's own price line again
    assert others and reply.text is not None and "现价" not in reply.text, reply.text
    assert all(other.name in reply.text for other in others) and product.name in reply.text
    # Whether the product itself replaces another is a question about it, not a request for others.
    assert not SUBSTITUTE.search("这个能代替面霜吗") and SUBSTITUTE.search("有别的可以替代的吗")


def _rule(kb: KnowledgeBase, words: str) -> str:
    """The answer of the shop-wide FAQ entry whose question holds these words (its rule for it)."""
    found = [f.answer for f in kb.faqs.values() if words in f.question and not kb.faq_products(f.id)]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "complaint", "topic"),
    [("appliances", "香薰机收到外壳就裂了 太气人了", "破损"), ("cosmetics", "气垫收到盒子是碎的!! 粉都洒了", "破损")],
)
async def test_a_sure_complaint_about_a_product_gets_the_shops_rule_not_its_how_to(
    open_shop: OpenShop, real_encoder: Encoder, name: str, complaint: str, topic: str
) -> None:
    runner, kb = open_shop(name, real_encoder)
    d = dialogue(runner, kb, Parse("", "complaint", 0.98))
    reply = await d(said("oBroken", complaint, 1))  # names the product, whose own FAQ says how to use it
    assert reply.text is not None and reply.text.startswith(texts.COMPLAINT) and _rule(kb, topic) in reply.text, reply.text
    assert await states(runner) == [conv_store.QUEUED]


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "complaint", "confidence", "question", "topic"),
    [
        ("appliances", "买了三个水壶只收到两个！", 0.88, "怎么处理", "少了东西"),
        ("cosmetics", "气垫收到盒子是碎的!! 粉都洒了", 0.98, "能补发吗", "破损"),
    ],
)
async def test_how_a_complaint_is_put_right_gets_its_rule_again_while_waiting(
    open_shop: OpenShop, real_encoder: Encoder, name: str, complaint: str, confidence: float, question: str, topic: str
) -> None:
    runner, kb = open_shop(name, real_encoder)
    d = dialogue(runner, kb, Parse("", "complaint", confidence), Parse("", "nlu_fallback", 0.18))
    await d(said("oRemedy", complaint, 1))
    reply = await d(said("oRemedy", question, 2))  # the model cannot place it; a product line is no answer
    assert reply.text is not None and reply.text.startswith(_rule(kb, topic)), reply.text
    assert reply.text.endswith(texts.HANDOFF_STILL_WAITING.format(ahead=0))
    assert await states(runner) == [conv_store.QUEUED]


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "complaint", "detail", "question", "price"),
    [
        ("baby", "床铃才用两天就没声音了 什么质量", "电池都是新换的", "行乐X1推车多少钱", "899"),
        ("appliances", "除螨仪用了两次就不转了，什么破东西", "插座也换过了", "扫地机多少钱", "1599"),
    ],
)
async def test_more_detail_of_a_complaint_gets_the_place_in_line_and_questions_their_answer(
    open_shop: OpenShop, real_encoder: Encoder, name: str, complaint: str, detail: str, question: str, price: str
) -> None:
    runner, kb = open_shop(name, real_encoder)
    d = dialogue(runner, kb, Parse("", "complaint", 0.9), Parse("", "exchange", 0.71), Parse("", "ask_price", 0.95))
    await d(said("oDetail", complaint, 1))
    reply = await d(said("oDetail", detail, 2))  # taken for an exchange; the product's own line is no answer
    assert reply.text == texts.HANDOFF_STILL_WAITING.format(ahead=0)
    answered = await d(said("oDetail", question, 3))
    assert answered.text is not None and price in answered.text


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "complaint", "topic"),
    [("cosmetics", "我买的去屑洗发水用完头皮红痒", "过敏"), ("fresh", "香梨收到少了两个", "少发")],
)
async def test_a_doubtful_complaint_nothing_else_answers_gets_the_shops_rule_for_it(
    open_shop: OpenShop, real_encoder: Encoder, name: str, complaint: str, topic: str
) -> None:
    runner, kb = open_shop(name, real_encoder)
    d = dialogue(runner, kb, Parse("", "complaint", 0.55))
    reply = await d(said("oDoubtRule", complaint, 1))
    assert reply.text == f"{_rule(kb, topic)}\n{texts.HUMAN_ON_REQUEST}", reply.text
    assert await states(runner) == [conv_store.BOT]


@pytest.mark.parametrize(
    ("name", "openid", "question", "order_id"),
    [
        ("appliances", "oApp015", "那我后来买的蒸汽炸锅发了没", "AP2026112007312"),
        ("cosmetics", "oCos004", "我买的A醇晚霜发了没", "CS2026110900089"),
    ],
)
async def test_a_doubtful_complaint_asking_about_an_order_gets_where_it_is(
    open_shop: OpenShop, name: str, openid: str, question: str, order_id: str
) -> None:
    runner, kb = open_shop(name, FakeEncoder())
    d = dialogue(runner, kb, Parse("", "complaint", 0.4), Parse("", "complaint", 0.9))
    reply = await d(said(openid, question, 1))
    assert reply.text is not None and order_id in reply.text, reply.text
    assert await states(runner) == [conv_store.BOT]
    # A complaint the model is sure of still goes to a person, order talk or not.
    sure = await d(said(openid, question.replace("发了没", "用了两天就坏了 怎么回事"), 2))
    assert sure.text is not None and sure.text.startswith(texts.COMPLAINT), sure.text


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "question", "topic"),
    [
        ("cosmetics", "眼影盘也想退 已经拆开用过了", "无理由"),  # not the palette's 飞粉 entry
        ("baby", "爬行垫拆开了还能退吗", "无理由"),
    ],
)
async def test_a_rule_asked_of_a_named_product_gets_the_shops_rule(
    open_shop: OpenShop, real_encoder: Encoder, name: str, question: str, topic: str
) -> None:
    runner, kb = open_shop(name, real_encoder)
    d = dialogue(runner, kb, Parse("", "return_refund", 0.8))
    reply = await d(said("oRule", question, 1))
    assert reply.text == _rule(kb, topic), reply.text


@pytest.mark.model
async def test_a_rule_asked_of_a_named_product_whose_card_ranks_first_gets_the_shops_rule(
    open_shop: OpenShop, real_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, kb = open_shop("cosmetics", real_encoder)
    question = "眼影盘也想退 已经拆开用过了"
    search = kb.search

    def card_first(text: str, top_k: int = 5, context_sku: str | None = None) -> SearchResult:
        # As `kefu serve`'s vectors ranked it: the palette's card just ahead of its 飞粉 entry.
        result = search(text, top_k, context_sku)
        if text != question:
            return result
        card = next(h for h in result.hits if h.kind == "product")
        return dataclasses.replace(result, hits=(card, *[h for h in result.hits if h is not card]), decision=ANSWER)

    monkeypatch.setattr(kb, "search", card_first)
    d = dialogue(runner, kb, Parse("", "return_refund", 0.8))
    reply = await d(said("oRuleCard", question, 1))
    assert reply.text == _rule(kb, "无理由"), reply.text


def test_the_faq_entry_just_given_restates_a_measure_when_it_says_it_for_what_is_asked(open_shop: OpenShop) -> None:
    _runner, kb = open_shop("baby", FakeEncoder())
    # F044 (how to use the warmer) gives 45℃ or 50℃ for 冲奶; its 温度范围 line only the range.
    assert kb.restates_asked("F044", "BAB-014", "温度范围", "那平时冲奶设多少度")
    assert not kb.restates_asked("F044", "BAB-014", "容量", "能装多少毫升")  # it states no volume
    _, kb = open_shop("appliances", FakeEncoder())
    # F041 (scale in the kettle) says how often to clean it; the 保温 line says how long it keeps warm.
    assert kb.restates_asked("F041", "APP-011", "保温", "多久清一次")
    assert not kb.restates_asked("F041", "APP-011", "保温", "保温多久")


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "first", "question"),
    [("baby", "调奶器能直接烧开水吗", "那平时冲奶设多少度"), ("appliances", "恒温电水壶用久了有水垢怎么弄", "多久清一次")],
)
async def test_a_measure_asked_right_after_an_faq_answer_that_gives_it_gets_that_answer(
    open_shop: OpenShop, real_encoder: Encoder, name: str, first: str, question: str
) -> None:
    runner, kb = open_shop(name, real_encoder)
    d = dialogue(runner, kb, Parse("", "ask_product_info", 0.9), Parse("", "ask_product_info", 0.8))
    answer = await d(said("oAgain", first, 1))
    assert answer.text in {f.answer for f in kb.faqs.values()}, answer.text
    reply = await d(said("oAgain", question, 2))  # not the spec line whose key or range looks close
    assert reply.text == answer.text, reply.text


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "message", "answer"),
    [("fresh", "猕猴桃收到了 硬邦邦的", "常温"), ("cosmetics", "维C爽肤水用了一个月 颜色变黄了", "氧化")],
)
async def test_a_doubtful_thank_you_naming_a_product_is_searched(
    open_shop: OpenShop, real_encoder: Encoder, name: str, message: str, answer: str
) -> None:
    runner, kb = open_shop(name, real_encoder)
    d = dialogue(runner, kb, Parse("", "thanks", 0.46), Parse("", "thanks", 0.46))
    reply = await d(said("oThanks", message, 1))
    assert reply.text is not None and answer in reply.text and reply.text != texts.THANKS, reply.text
    assert (await d(said("oThanks", "好的 收到了", 2))).text == texts.THANKS  # no product named: a thank-you


class SameEncoder:
    """One vector for every text: every entry scores alike, so only the rules decide."""

    name = "same-vector"

    def encode(self, texts: list[str]) -> Any:
        import numpy as np

        return np.full((len(texts), 4), 0.5, dtype=np.float32)


@pytest.mark.parametrize(
    ("name", "sku", "question", "faq_id"),
    [("fresh", "FRU-015", "到了多久能吃", "F043"), ("cosmetics", "COS-032", "一次敷多久", "F057")],
)
def test_a_duration_question_takes_the_faq_entry_sharing_its_words(
    open_shop: OpenShop, name: str, sku: str, question: str, faq_id: str
) -> None:
    # Every line scores alike and the lines stating a duration (开口后果肉 冷藏2-3天, 保质期 3年) get
    # the duration bonus; the product's FAQ entry whose questions share the shopper's words still answers.
    _, kb = open_shop(name, SameEncoder())
    hit = kb.about_product(sku, question, at_least=0.0)
    assert hit is not None and (hit.kind, hit.ref) == ("faq", faq_id)
    # A duration question its FAQ entries share no more words with than a spec line does keeps the line.
    hit = kb.about_product(sku, "保质期多久", at_least=0.0)
    assert hit is not None and hit.kind == "spec"


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "unsold"), [("digital", "有switch手柄吗"), ("pets", "有狗狗雨衣吗"), ("baby", "有switch手柄吗")]
)
async def test_asking_for_a_thing_no_product_names_says_the_shop_has_none(
    open_shop: OpenShop, real_encoder: Encoder, name: str, unsold: str
) -> None:
    runner, kb = open_shop(name, real_encoder)
    d = dialogue(runner, kb, Parse("", "ask_stock", 0.8), Parse("", "ask_invoice", 0.8))
    reply = await d(said("oUnsold", unsold, 1))
    # The shop's general "none of that" or, for a Latin name none of its texts holds, that name's.
    assert reply.text == texts.NOT_CARRIED or (reply.text or "").startswith("不好意思，本店没有switch手柄"), reply.text
    # A service asked for the same way is the FAQ's: its entry speaks of it.
    invoice = await d(said("oInvoice", "有发票吗", 1))
    assert invoice.text != texts.NOT_CARRIED and "发票" in (invoice.text or ""), invoice.text


@pytest.mark.parametrize(
    ("name", "openid", "message", "order_id"),
    [
        ("digital", "oDig007", "无线充电座发了吗", "DD20261126018"),
        ("digital", "oDig002", "我还有个磁吸充电宝没发货", "DD20261128006"),
        # jieba cuts 表 / 带到: 表带, a word of the band's name, still names the order among the shopper's two.
        ("digital", "oDig004", "之前买的表带到了吗", "DD20261107009"),
        ("pets", "oPet006", "化毛膏那单我还没付", "PT2026112300433"),
    ],
)
async def test_a_status_question_naming_a_product_bought_gets_that_order_even_taken_for_a_product_question(
    open_shop: OpenShop, name: str, openid: str, message: str, order_id: str
) -> None:
    runner, kb = open_shop(name, FakeEncoder())
    d = dialogue(runner, kb, Parse("", "ask_product_info", 0.9))
    reply = await d(said(openid, message, 1))
    assert reply.text is not None and order_id in reply.text, reply.text


@pytest.mark.parametrize(
    ("name", "message", "price"),
    [
        ("digital", "16pro透明壳", "49.00"),  # not its 适用机型 line, though the name holds 16 Pro
        ("digital", "100w的充电器", "219.00"),  # not the whole spec list
        ("pets", "幼猫粮奶糕配方的", "99.00"),
    ],
)
async def test_a_message_that_only_names_a_product_gets_its_card(
    open_shop: OpenShop, name: str, message: str, price: str
) -> None:
    runner, kb = open_shop(name, FakeEncoder())
    d = dialogue(runner, kb, Parse("", "ask_product_info", 0.9), Parse("", "ask_product_info", 0.9))
    reply = await d(said("oBare", message, 1))
    assert reply.text is not None and price in reply.text, reply.text
    # Something asked of it is not the card: the product's own line answers.
    asked = await d(said("oBare", f"{message}多重", 2))
    assert asked.text is not None and price not in asked.text, asked.text


async def test_how_much_in_a_unit_a_line_states_is_that_line_not_the_price(open_shop: OpenShop) -> None:
    runner, kb = open_shop("digital", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "ask_price", 0.9), Parse("", "ask_price", 0.9), Parse("", "ask_price", 0.9))
    await d(said("oUnit", "MagPower充电宝多少钱", 1))
    reply = await d(said("oUnit", "多少毫安", 2))
    assert reply.text is not None and "10000mAh" in reply.text and "¥" not in reply.text, reply.text
    price = await d(said("oUnit", "多少钱一个", 3))  # a unit beside the price words asks the price
    assert price.text is not None and "149" in price.text, price.text


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "before", "follow_up", "fact"),
    [
        ("digital", "满多少包邮", "有满减吗", "满199减20"),  # its own entry speaks of 满减; 包邮 is the one before
        ("baby", "满多少包邮", "发新疆呢", "新疆"),
        ("fresh", "双十二有活动吗", "能跟优惠券一起用吗", "叠加"),  # "together with" asks of the one before
    ],
)
async def test_a_follow_up_keeps_its_own_entry_when_that_entry_asks_of_its_words(
    open_shop: OpenShop, real_encoder: Encoder, name: str, before: str, follow_up: str, fact: str
) -> None:
    runner, kb = open_shop(name, real_encoder)
    d = dialogue(runner, kb, Parse("", "ask_promotion", 0.9), Parse("", "ask_promotion", 0.9))
    await d(said("oFollow", before, 1))
    reply = await d(said("oFollow", follow_up, 2))
    assert reply.text is not None and fact in reply.text, reply.text


@pytest.mark.parametrize(
    ("name", "talked", "message", "meant"),
    [
        ("digital", "DIG-015", "膜呢", "DIG-019"),  # the Mate 70 Pro case, then the film for the same phone
        ("digital", "DIG-015", "那还有膜吗", "DIG-019"),
        ("cosmetics", "COS-001", "面膜呢", "COS-033"),  # the 澜肌 玻尿酸 essence, then the 澜肌 玻尿酸 mask
    ],
)
def test_a_category_word_alone_names_the_product_of_that_category_that_goes_with_the_one_talked_about(
    open_shop: OpenShop, name: str, talked: str, message: str, meant: str
) -> None:
    _, kb = open_shop(name, FakeEncoder())
    assert kb.companion_named(talked, message) == meant
    assert kb.companion_named(talked, "膜怎么贴不起泡") is None  # more is asked than the word
    assert kb.companion_named(talked, "护肤呢") is None  # its own category names no other product


@pytest.mark.parametrize(
    ("name", "talked", "message", "meant"),
    [
        ("pets", "PET-001", "那大包的呢", "PET-002"),  # 2 kg, then the 10 kg family bag
        ("pets", "PET-002", "有没有小一点的", "PET-001"),
        ("cosmetics", "COS-001", "大瓶的呢", "COS-002"),  # 30 ml, then 50 ml
    ],
)
def test_a_bigger_or_smaller_one_is_the_variant_of_the_next_amount(
    open_shop: OpenShop, name: str, talked: str, message: str, meant: str
) -> None:
    _, kb = open_shop(name, FakeEncoder())
    assert kb.sized_sibling(talked, message) == meant
    assert kb.sized_sibling(talked, "大包的多少钱一斤") is None  # more is asked than a size


def test_a_product_pointed_at_by_its_description_is_found(open_shop: OpenShop) -> None:
    _, kb = open_shop("digital", FakeEncoder())
    assert kb.described("口红那个有苹果接口吗") == "DIG-011"  # described as 口红大小
    assert kb.described("便宜的那个有苹果接口吗") is None  # which one, not what it is like
    _, kb = open_shop("pets", FakeEncoder())
    assert kb.described("能喂药的那个一盒几支") == "PET-005"  # the cat treats: 喂药、训练、互动都好用


def test_a_name_split_by_de_or_led_by_another_makers_name_names_the_right_product(open_shop: OpenShop) -> None:
    _, kb = open_shop("digital", FakeEncoder())
    # "华为" leads the film's name but is the phone maker in the case's: the alias mate70pro壳 decides.
    assert kb.named_products("亲 有没有华为mate70pro的壳") == (["DIG-015"], True)
    assert kb.named_products("那有iphone16的壳吗 不是pro") == (["DIG-014"], True)


async def test_a_product_used_with_the_one_talked_about_is_asked_of_that_one(open_shop: OpenShop) -> None:
    runner, kb = open_shop("pets", FakeEncoder())
    assert kb.names_only_used_with("PET-016", "能用豆腐砂吗")
    assert not kb.names_only_used_with("PET-016", "豆腐砂多少钱")
    d = dialogue(runner, kb, Parse("", "ask_price", 0.9), Parse("", "ask_stock", 0.9), Parse("", "ask_stock", 0.9))
    await d(said("oUse", "智能猫砂盆多少钱", 1))
    reply = await d(said("oUse", "能用豆腐砂吗", 2))
    assert reply.text is not None and "支持猫砂" in reply.text and "¥" not in reply.text, reply.text
    stock = await d(said("oUse", "那豆腐砂呢", 3))  # naming it alone asks for the litter itself
    assert stock.text is not None and "79.90" in stock.text, stock.text


@pytest.mark.model
async def test_a_thing_a_spec_value_gives_is_that_line_not_the_card(open_shop: OpenShop, real_encoder: Encoder) -> None:
    runner, kb = open_shop("pets", real_encoder)
    d = dialogue(runner, kb, Parse("", "ask_price", 0.9), Parse("", "ask_promotion", 0.9))
    await d(said("oGift", "猫抓板多少钱", 1))
    reply = await d(said("oGift", "送猫薄荷吗", 2))
    assert reply.text is not None and "附赠：猫薄荷一包" in reply.text, reply.text


@pytest.mark.model
async def test_also_leading_a_question_asks_no_stock(open_shop: OpenShop, real_encoder: Encoder) -> None:
    runner, kb = open_shop("pets", real_encoder)
    d = dialogue(runner, kb, Parse("", "ask_price", 0.9), Parse("", "ask_stock", 0.9))
    await d(said("oAlso", "智能猫砂盆多少钱", 1))
    reply = await d(said("oAlso", "还有wifi一直连不上", 2))
    assert reply.text is not None and "2.4GHz" in reply.text, reply.text


@pytest.mark.parametrize(
    ("name", "first", "follow_up", "card"),
    [("digital", "mate70pro壳多少钱", "膜呢", "曲面水凝膜"), ("pets", "伴宠成猫粮2kg多少钱", "那大包的呢", "10kg家庭装")],
)
async def test_switching_to_another_product_by_its_kind_or_size_gets_its_card(
    open_shop: OpenShop, name: str, first: str, follow_up: str, card: str
) -> None:
    runner, kb = open_shop(name, FakeEncoder())
    d = dialogue(runner, kb, Parse("", "ask_price", 0.9), Parse("", "ask_product_info", 0.9))
    await d(said("oSwitch", first, 1))
    reply = await d(said("oSwitch", follow_up, 2))
    assert reply.text is not None and card in reply.text and "¥" in reply.text, reply.text


def test_a_colour_asked_by_its_plain_name_is_the_product_shade_of_it(open_shop: OpenShop) -> None:
    _, kb = open_shop("digital", FakeEncoder())
    key, wanted, _, available = kb.variant("DIG-014", "有蓝色吗") or ("", "", [], False)
    assert (key, wanted, available) == ("颜色", "雾蓝", True)


def test_keys_named_together_by_their_first_characters() -> None:
    drive = kb_store.Product(
        "X1", "移动硬盘", "存储", 59900, 3, "", (("容量", "1TB"), ("读取速度", "1050MB/s"), ("写入速度", "1000MB/s")), (), ""
    )
    desk = kb_store.Product("D1", "书桌", "家具", 9900, 3, "", (("长度", "1m"), ("宽度", "0.6m"), ("高度", "0.75m")), (), "")
    assert abbreviated_keys(drive, "读写速度多少") == ["读取速度", "写入速度"]
    assert abbreviated_keys(desk, "长宽高多少") == ["长度", "宽度", "高度"]
    assert abbreviated_keys(drive, "读取速度多少") == []  # one key named whole: its own line
    assert abbreviated_keys(drive, "容量多大") == []
    assert abbreviated_keys(desk, "长宽多少") == []  # two first characters without the keys' common tail


async def test_a_question_naming_two_keys_by_their_first_characters_gets_both_lines(open_shop: OpenShop) -> None:
    runner, kb = open_shop("digital", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "ask_price", 0.9), Parse("", FALLBACK, 0.24))
    await d(said("oSpeed", "迅存X1移动固态硬盘多少钱", 1))
    reply = await d(said("oSpeed", "读写速度多少", 2))
    assert reply.text is not None and "读取速度：最高1050MB/s" in reply.text and "写入速度：最高1000MB/s" in reply.text, (
        reply.text
    )


def test_what_only_the_description_says_answers_a_question_its_lines_do_not(open_shop: OpenShop) -> None:
    _, kb = open_shop("digital", FakeEncoder())
    assert kb.description_says("DIG-010", "它能给手机充几次") == "能给 iPhone 16 充约4次"
    assert kb.description_says("DIG-040", "带充电头吗") == "需要配合30W以上充电头使用（不含充电头）"
    assert kb.description_says("DIG-010", "多重") is None  # its 重量 line gives it
    _, kb = open_shop("cosmetics", FakeEncoder())
    assert kb.description_says("COS-015", "带防晒吗") is None  # 自带防晒 says less than its 防晒指数 line


def test_a_product_faq_that_asks_more_of_a_key_than_its_line_says_answers(open_shop: OpenShop) -> None:
    _, kb = open_shop("pets", FakeEncoder())
    hit = kb.about_product("PET-024", "刀头能洗吗")
    assert hit is not None and (hit.kind, hit.ref) == ("faq", "F053"), hit  # not 刀头：陶瓷动刀+不锈钢定刀
    hit = kb.about_product("PET-024", "刀头是什么材质")
    assert hit is not None and hit.kind == "spec" and hit.ref.endswith("刀头"), hit


async def test_a_stock_note_that_says_sold_out_is_not_said_twice(open_shop: OpenShop) -> None:
    runner, kb = open_shop("pets", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "ask_stock", 0.9))
    reply = await d(said("oOut", "咔咔冻干鸡胸肉粒有货吗", 1))
    assert reply.text is not None and "暂时缺货，预计12月3日补货" in reply.text and "缺货，暂时缺货" not in reply.text, reply.text


@pytest.mark.model
async def test_a_part_of_a_name_picks_among_the_products_of_the_entry_just_given(
    open_shop: OpenShop, real_encoder: Encoder
) -> None:
    runner, kb = open_shop("digital", real_encoder)
    d = dialogue(runner, kb, Parse("", "ask_product_info", 0.91), Parse("", "ask_price", 0.84))
    first = await d(said("oCard", "内存卡switch能用吗", 1))
    assert first.text is not None and "Switch" in first.text, first.text
    reply = await d(said("oCard", "那256g的吧 多少钱", 2))
    assert reply.text is not None and "256GB" in reply.text and "99.00" in reply.text, reply.text


@pytest.mark.model
async def test_a_doubtful_order_question_that_asks_nothing_of_the_order_gets_the_product_faq(
    open_shop: OpenShop, real_encoder: Encoder
) -> None:
    runner, kb = open_shop("pets", real_encoder)
    d = dialogue(runner, kb, Parse("", "order_status", 0.91), Parse("", "order_status", 0.37))
    status = await d(said("oPet007", "猫条那单啥时候发", 1))
    assert status.text is not None and "PT2026112300417" in status.text, status.text
    reply = await d(said("oPet007", "猫条一天喂几根", 2))
    assert reply.text is not None and "1-2支" in reply.text and "PT2026112300417" not in reply.text, reply.text


@pytest.mark.model
async def test_the_same_reply_twice_gives_way_to_the_faq_entry_the_message_asks(
    open_shop: OpenShop, real_encoder: Encoder
) -> None:
    runner, kb = open_shop("pets", real_encoder)
    d = dialogue(runner, kb, Parse("", "order_status", 0.77), Parse("", "order_status", 0.92))
    first = await d(said("oPet008", "航空箱十天了还没到", 1))
    assert first.text is not None and "DPK301671520993" in first.text, first.text
    reply = await d(said("oPet008", "物流一直不动", 2))
    assert reply.text is not None and "核实" in reply.text and "DPK301671520993" not in reply.text, reply.text
    # The same stock reply again when it answers what is asked ("那什么时候能到货": its 12月15日).
    runner, kb = open_shop("appliances", real_encoder)
    d = dialogue(runner, kb, Parse("", "ask_stock", 0.79), Parse("", "ask_stock", 0.47))
    await d(said("oAgain", "双篮炸锅还有货吗", 1))
    again = await d(said("oAgain", "那什么时候能到货", 2))
    assert again.text is not None and "12月15日" in again.text, again.text


@pytest.mark.model
async def test_a_how_much_question_taken_for_a_greeting_is_asked_of_the_product(
    open_shop: OpenShop, real_encoder: Encoder
) -> None:
    runner, kb = open_shop("pets", real_encoder)
    d = dialogue(runner, kb, Parse("", "ask_price", 0.9), Parse("", "greet", 0.43))
    await d(said("oFeed", "汪力小型犬粮多少钱", 1))
    reply = await d(said("oFeed", "一天喂多少", 2))
    assert reply.text is not None and "50-90g" in reply.text, reply.text


async def test_a_make_or_latin_name_the_shop_never_speaks_of_is_not_carried(open_shop: OpenShop) -> None:
    runner, kb = open_shop("digital", FakeEncoder())
    assert kb.unknown_names("安克的充电宝") == ["安克"]
    assert kb.unknown_names("iphone15的膜") == []  # "iPhone 15/16" in the shop's texts
    d = dialogue(runner, kb, *[Parse("", "ask_product_info", 0.86)] * 3)
    brand = await d(said("oBrand", "有没有安克的充电宝", 1))
    assert brand.text is not None and "没有安克的充电宝" in brand.text and "极充" in brand.text, brand.text
    latin = await d(said("oLatin", "你们有iPad的壳吗", 1))
    assert latin.text is not None and "没有ipad的壳" in latin.text, latin.text
    # An unknown Chinese word alone may be the shopper's own for what the shop sells: not said absent.
    runner, kb = open_shop("pets", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "ask_stock", 0.9))
    assert kb.unknown_names("狗链") == ["狗链"]
    rope = await d(said("oRope", "有狗链吗", 1))
    assert rope.text is not None and "本店没有" not in rope.text, rope.text


async def test_do_you_have_of_several_products_lists_them_and_the_next_message_picks_one(open_shop: OpenShop) -> None:
    runner, kb = open_shop("digital", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "ask_product_info", 0.65), Parse("", "ask_product_info", 0.55))
    listed = await d(said("oBands", "有apple watch表带吗", 1))
    assert listed.text is not None and "¥39.00" in listed.text and "¥69.00" in listed.text, listed.text
    picked = await d(said("oBands", "硅胶的有45mm吗", 2))
    assert picked.text is not None and "Apple Watch 硅胶运动表带" in picked.text and "45mm" in picked.text, picked.text


@pytest.mark.model
async def test_together_with_a_thing_the_answer_before_speaks_of_is_that_answer(
    open_shop: OpenShop, real_encoder: Encoder
) -> None:
    runner, kb = open_shop("digital", real_encoder)
    d = dialogue(runner, kb, Parse("", "ask_promotion", 0.95), Parse("", "ask_promotion", 0.99))
    first = await d(said("oTogether", "有满减吗", 1))
    assert first.text is not None and "可以和店铺优惠券叠加" in first.text, first.text
    reply = await d(said("oTogether", "能用优惠券一起吗", 2))
    assert reply.text == first.text  # not the coupon entry, which says nothing of 满减


@pytest.mark.model
async def test_a_product_named_beside_what_an_faq_entry_answers_gets_the_entry(
    open_shop: OpenShop, real_encoder: Encoder
) -> None:
    runner, kb = open_shop("digital", real_encoder)
    d = dialogue(runner, kb, Parse("", "ask_product_info", 0.99), Parse("", "ask_price", 0.9))
    reply = await d(said("oBeside", "mate70壳用着不错 保修吗", 1))
    assert reply.text is not None and "耗材不保修" in reply.text, reply.text
    price = await d(said("oBeside", "mate70壳多少钱", 2))  # the price is still the card's
    assert price.text is not None and "¥69.00" in price.text, price.text


async def test_waiting_for_the_person_asked_for_where_an_order_named_is_still_gets_its_answer(open_shop: OpenShop) -> None:
    runner, kb = open_shop("digital", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "human_agent", 0.98), Parse("", "ask_price", 0.9))
    await d(said("oDig009", "我要转人工", 1))
    where = await d(said("oDig009", "素皮壳到了吗", 2))
    assert where.intent == "queued" and where.text is not None, where
    assert "ZT78100281176" in where.text and "队列" in where.text, where.text
    price = await d(said("oDig009", "素皮壳多少钱", 3))  # anything else: only the place in line
    assert price.intent == "queued" and price.text is not None and "¥" not in price.text, price.text


@pytest.mark.model
async def test_a_doubtful_price_question_without_price_words_after_an_entry_is_asked_of_it(
    open_shop: OpenShop, real_encoder: Encoder
) -> None:
    runner, kb = open_shop("digital", real_encoder)
    d = dialogue(runner, kb, Parse("", "ask_price", 0.83), Parse("", "ask_price", 0.41))
    first = await d(said("oProtect", "买的数据线今天看降价了", 1))
    assert first.text is not None and "补差价" in first.text, first.text
    reply = await d(said("oProtect", "能补吗", 2))
    assert reply.text is not None and "7天内" in reply.text and "现价" not in reply.text, reply.text


async def test_something_bought_is_the_shoppers_order_of_it_not_the_product_talked_about(open_shop: OpenShop) -> None:
    runner, kb = open_shop("digital", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "ask_price", 0.9), Parse("", "ask_product_info", 0.9))
    await d(said("oDig006", "声岚Air3 Lite多少钱", 1))  # the earphones are talked about
    await d(said("oDig006", "买的128g卡怎么只有119g啊", 2))  # oDig006 bought the 128GB card
    conv = await runner.run(conv_store.current_conversation, "oDig006", T0)
    assert conv.context.get("sku") == "DIG-035", conv.context


def test_an_amount_the_product_talked_about_lacks_names_its_variant(open_shop: OpenShop) -> None:
    _, kb = open_shop("outdoor", FakeEncoder())
    assert kb.amount_named("OUT-008", "8mm的多重") == "OUT-006"  # after the 4.5 mm mat: the 8 mm one
    assert kb.amount_named("OUT-023", "那三人的呢 多少钱") == "OUT-024"  # 三人 is the 3-person tent
    assert kb.amount_named("OUT-005", "6mm和8mm差多少钱") is None  # 6 mm is the mat talked about itself
    assert kb.amount_named("OUT-008", "4.5mm的多重") is None
    _, kb = open_shop("textiles", FakeEncoder())
    # Three sets come in 1.8 m; the one of the same line as the 1.5 m set talked about.
    assert kb.amount_named("TEX-001", "那1.8米的呢") == "TEX-002"
    assert kb.amount_named("TEX-010", "8斤的呢") == "TEX-011"
    assert kb.amount_named("TEX-001", "1.5m的呢") is None


async def test_a_follow_up_giving_another_amount_gets_that_variant(open_shop: OpenShop) -> None:
    runner, kb = open_shop("outdoor", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "ask_price", 0.9), Parse("", "ask_product_info", 0.8))
    first = await d(said("oAmount", "天然橡胶瑜伽垫多少钱", 1))
    assert first.text is not None and "4.5mm" in first.text, first.text
    reply = await d(said("oAmount", "8mm的多重", 2))
    assert reply.text is not None and "8mm" in reply.text and "4.5mm" not in reply.text, reply.text


async def test_an_order_named_by_a_word_several_products_share_is_the_one_ordered(open_shop: OpenShop) -> None:
    runner, kb = open_shop("textiles", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "order_status", 0.66), Parse("", "order_status", 0.6))
    # The shop sells three bathrobes; the shopper ordered the towelling one (TEX-031), now on its way.
    reply = await d(said("oTex008", "我那四件浴袍到哪了", 1))
    assert reply.text is not None and "SF1402713398420" in reply.text, reply.text
    # A paid order not yet shipped says so in the word shoppers know from every shop: 待发货.
    unshipped = await d(said("oTex003", "我买的那套睡衣还没发吗", 2))
    assert unshipped.text is not None and "待发货" in unshipped.text and "TX20261130006" in unshipped.text, unshipped.text


@pytest.mark.model
async def test_the_tracking_number_asked_again_is_given_again(open_shop: OpenShop, real_encoder: Encoder) -> None:
    runner, kb = open_shop("textiles", real_encoder)
    d = dialogue(runner, kb, Parse("", "order_status", 0.62), Parse("", "order_status", 0.72))
    first = await d(said("oTex004", "窗帘发了吗", 1))
    assert first.text is not None and "759210688123905" in first.text, first.text
    # The same reply again, not the FAQ entry on which carriers the shop uses.
    again = await d(said("oTex004", "哪个快递 单号多少", 2))
    assert again.text is not None and "759210688123905" in again.text, again.text


def test_a_key_named_by_the_part_that_sets_it_apart_from_the_product_other_keys(open_shop: OpenShop) -> None:
    _, kb = open_shop("outdoor", FakeEncoder())
    bag = kb.products["OUT-029"]  # 舒适温度 -5℃ and 极限温度 -12℃
    assert named_spec(bag, "极限呢") == ("极限温度", "-12℃")
    assert named_spec(bag, "那舒适的呢") == ("舒适温度", "-5℃")
    assert named_spec(bag, "多少钱") is None


def test_an_faq_entry_naming_a_category_is_about_its_products(open_shop: OpenShop) -> None:
    _, kb = open_shop("textiles", FakeEncoder())
    assert kb.faq_products("F027") == frozenset({"TEX-036", "TEX-037", "TEX-038"})  # "窗帘包安装吗": the curtains
    assert kb.faq_products("F001") == frozenset()  # which carriers: shop-wide
    _, kb = open_shop("outdoor", FakeEncoder())
    assert kb.variant("OUT-017", "有白的吗") == ("颜色", "白色", ["黑色", "深灰", "藏青", "白色"], True)


@pytest.mark.model
async def test_a_question_an_faq_entry_of_the_category_answers_gets_it(open_shop: OpenShop, real_encoder: Encoder) -> None:
    _, kb = open_shop("textiles", real_encoder)
    hit = kb.about_product("TEX-036", "包安装吗")
    assert hit is not None and (hit.kind, hit.ref) == ("faq", "F027"), hit


async def test_a_product_name_and_how_much_the_model_is_unsure_of_gets_the_card(open_shop: OpenShop) -> None:
    runner, kb = open_shop("textiles", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "complaint", 0.42))
    reply = await d(said("oHowMuch", "牛奶绒四件套多少", 1))
    assert reply.text is not None and "259" in reply.text and texts.HUMAN_ON_REQUEST not in reply.text, reply.text
    assert await states(runner) == [conv_store.BOT]


async def test_the_tracking_number_asked_after_an_order_is_that_order_whatever_the_model_took_it_for(
    open_shop: OpenShop,
) -> None:
    runner, kb = open_shop("outdoor", FakeEncoder())
    d = dialogue(runner, kb, Parse("", "order_status", 0.83), Parse("", "ask_shipping", 0.49))
    where = await d(said("oOut003", "我买的睡袋到哪了", 1))
    assert where.text is not None and "SF1428891146620" in where.text, where.text
    again = await d(said("oOut003", "顺丰单号发我下", 2))
    assert again.text is not None and "SF1428891146620" in again.text, again.text


def test_a_word_of_another_name_that_the_product_own_faq_speaks_of_is_about_that_product(open_shop: OpenShop) -> None:
    _, kb = open_shop("textiles", FakeEncoder())
    # 水洗 is a word of the 水洗棉 bedding set's name; the silk quilt's own entry (F046) says it cannot be washed.
    assert kb.named_products("那能水洗吗") == (["TEX-004"], False)
    assert kb.named_products("那能水洗吗", "TEX-013") == ([], False)


@pytest.mark.model
async def test_a_measure_asked_of_a_product_named_off_the_usual_topics_gets_its_line(
    open_shop: OpenShop, real_encoder: Encoder
) -> None:
    runner, kb = open_shop("textiles", real_encoder)
    d = dialogue(runner, kb, Parse("", "out_of_scope", 0.37))
    reply = await d(said("oHowHigh", "那遮光帘最高能做多高", 1))
    assert reply.text is not None and "2.7米" in reply.text and "¥89" not in reply.text, reply.text
