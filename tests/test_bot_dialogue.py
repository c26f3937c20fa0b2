"""Whole conversations through the WeChat endpoint, with the real Rasa model and knowledge base."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from console.app import CONSOLE
from kb.encoder import Encoder
from tests.conftest import DEMO, ROOT, Clock, RasaServer
from tests.fakes import FakeWeChatAPI
from tests.helpers import wait_for
from tests.pushes import fixture, signed_query

pytestmark = [pytest.mark.rasa, pytest.mark.model]
_ids = itertools.count(1)


class Shopper:
    """Sends text messages as one WeChat user and reads the bot's in-band reply."""

    def __init__(self, client: TestClient, clock: Clock, openid: str) -> None:
        self.client = client
        self.clock = clock
        self.openid = openid

    async def say(self, text: str) -> str:
        body = fixture("text.xml", Content=text, MsgId=next(_ids) + 1000)
        body = body.replace("oShopperA", self.openid)
        self.clock.now += 5
        resp = await self.client.post("/wechat", params=signed_query(int(self.clock())), data=body.encode())
        assert resp.status == 200
        answer = await resp.text()
        if answer == "success":
            return ""
        match = re.search(r"<Content><!\[CDATA\[(.*?)\]\]></Content>", answer, re.S)
        assert match, answer
        return match.group(1)


@pytest.fixture
async def shop(wechat_client: Any, rasa_server: RasaServer, real_encoder: Encoder, demo_db_path: str) -> TestClient:
    client: TestClient = await wechat_client(
        encoder=real_encoder, db=str(demo_db_path), rasa_url=rasa_server.url, rasa_token=rasa_server.token
    )
    return client


async def test_price_from_catalogue(shop: TestClient, clock: Clock) -> None:
    reply = await Shopper(shop, clock, "oNew1").say("西湖龙井多少钱")
    assert "368.00" in reply
    assert "西湖龙井" in reply


async def test_a_catalogue_import_reaches_the_running_bot(
    wechat_client: Any, rasa_server: RasaServer, real_encoder: Encoder, demo_db_path: str, clock: Clock, tmp_path: Path
) -> None:
    shop = await wechat_client(
        encoder=real_encoder,
        db=str(demo_db_path),
        rasa_url=rasa_server.url,
        rasa_token=rasa_server.token,
        kb_refresh=0.2,
    )
    assert "368.00" in await Shopper(shop, clock, "oImp1").say("西湖龙井多少钱")
    folder = tmp_path / "shop"
    shutil.copytree(DEMO, folder)
    products = folder / "products.csv"
    products.write_text(products.read_text(encoding="utf-8").replace(",368.00,", ",328.00,"), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "server", "--db", str(demo_db_path), "kb", "import", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "products.csv: 0 added, 1 changed" in result.stdout
    kb = shop.server.app[CONSOLE].kb
    for _ in range(300):  # the server checks every 0.2 s; allow it up to a minute on a busy machine
        if kb.products["TEA-001"].price_fen == 32800:
            break
        await asyncio.sleep(0.2)
    reply = await Shopper(shop, clock, "oImp2").say("西湖龙井多少钱")
    assert "328.00" in reply and "368.00" not in reply


async def test_follow_up_questions_use_the_product_talked_about(shop: TestClient, clock: Clock) -> None:
    shopper = Shopper(shop, clock, "oNew2")
    assert "599.00" in await shopper.say("降噪蓝牙耳机多少钱")
    battery = await shopper.say("续航多久")
    assert "8小时" in battery


async def test_product_card_then_this_one(shop: TestClient, clock: Clock) -> None:
    body = fixture("miniprogram_card.json", FromUserName="oNew3", MsgId=999001)
    resp = await shop.post("/wechat", params=signed_query(int(clock())), data=body.encode())
    card_reply = json.loads(await resp.text())["Content"]
    assert "西湖龙井" in card_reply
    reply = await Shopper(shop, clock, "oNew3").say("这个多少钱")
    assert "368.00" in reply


async def test_out_of_stock_offers_in_stock_alternatives(shop: TestClient, clock: Clock) -> None:
    reply = await Shopper(shop, clock, "oNew4").say("铁观音还有货吗")
    assert "缺货" in reply
    assert "同类有现货" in reply
    assert "铁观音" not in reply.split("同类有现货")[1]


async def test_order_choice_among_own_orders(shop: TestClient, clock: Clock) -> None:
    shopper = Shopper(shop, clock, "oDemo001")
    listing = await shopper.say("我的快递到哪了")
    assert "请问是哪一个" in listing
    assert "KF202611100000" in listing
    assert "oDemo002" not in listing and "KF202611100001" not in listing
    first_id = re.search(r"1\. (KF\d+)", listing).group(1)  # type: ignore[union-attr]
    status = await shopper.say("1")
    assert first_id in status


async def test_shopper_never_sees_another_shoppers_order(shop: TestClient, clock: Clock) -> None:
    # KF202611100001 belongs to oDemo002 (上海, 修护精华液)
    reply = await Shopper(shop, clock, "oDemo001").say("帮我查下订单KF202611100001到哪了")
    assert "没有查到订单号 KF202611100001" in reply
    assert "上海" not in reply and "精华" not in reply
    own = await Shopper(shop, clock, "oDemo002").say("帮我查下订单KF202611100001到哪了")
    assert "已付款" in own


async def test_shipped_order_shows_carrier_and_tracking(shop: TestClient, clock: Clock) -> None:
    reply = await Shopper(shop, clock, "oDemo002").say("订单KF202611100011发货了吗")
    assert "顺丰速运" in reply and "SF173142227546" in reply


async def test_human_agent_queues_and_bot_stays_quiet_about_it(shop: TestClient, clock: Clock) -> None:
    shopper = Shopper(shop, clock, "oNew5")
    reply = await shopper.say("转人工")
    assert "人工客服" in reply
    follow_up = await shopper.say("西湖龙井多少钱")
    assert "队列" in follow_up
    assert "368" not in follow_up


async def test_complaint_apologises_and_hands_off(shop: TestClient, clock: Clock) -> None:
    reply = await Shopper(shop, clock, "oNew6").say("收到的茶叶全是碎的，包装也破了，太差了")
    assert "抱歉" in reply
    assert "人工客服" in reply


async def test_policy_question_answered_from_faq(shop: TestClient, clock: Clock) -> None:
    reply = await Shopper(shop, clock, "oNew7").say("你们支持七天无理由退货吗")
    assert "7天" in reply


async def test_greeting_thanks_goodbye(shop: TestClient, clock: Clock) -> None:
    shopper = Shopper(shop, clock, "oNew8")
    assert "您好" in await shopper.say("你好")
    assert "不客气" in await shopper.say("谢谢啦")
    assert "感谢您的光临" in await shopper.say("拜拜")


async def test_rasa_down_still_answers(wechat_client: Any, clock: Clock, real_encoder: Encoder, demo_db_path: str) -> None:
    client = await wechat_client(encoder=real_encoder, db=str(demo_db_path), rasa_url="http://127.0.0.1:9", rasa_timeout=0.5)
    shopper = Shopper(client, clock, "oNew9")
    price = await shopper.say("西湖龙井多少钱")
    assert "368.00" in price
    unsure = await shopper.say("嗯那个东西我想问一下就是")
    assert unsure  # never silence: a handoff when the knowledge base is not sure either
    metrics = await (await client.get("/metrics")).text()
    assert 'kefu_errors_total{kind="nlu_unavailable"} 2.0' in metrics


async def test_follow_up_about_the_order_being_discussed(shop: TestClient, clock: Clock) -> None:
    shopper = Shopper(shop, clock, "oDemo002")
    assert "已付款" in await shopper.say("订单KF202611100001到哪了")
    cancel = await shopper.say("这个订单我不想要了，帮我取消")
    assert "KF202611100001" in cancel and "取消申请" in cancel


async def test_one_huge_message_hands_nobody_else_to_a_person(
    shop: TestClient, clock: Clock, fake_wechat: tuple[FakeWeChatAPI, Any]
) -> None:
    huge = "我想问问这个耳机，" * 30_000  # 270,000 characters, under the 1 MB body cap
    others = [Shopper(shop, clock, f"oCrowd{i}") for i in range(7)]
    first = Shopper(shop, clock, "oHuge")

    async def after_it(shopper: Shopper) -> str:
        await asyncio.sleep(1.0)  # the huge one is with the NLU by now
        return await shopper.say("西湖龙井多少钱")

    inband = await asyncio.gather(first.say(huge), *(after_it(s) for s in others))
    # On a loaded machine a reply can miss WeChat's deadline; it then comes as a customer-service
    # message, and what it says is what counts here.
    fake, _ = fake_wechat
    late_for = {s.openid for s, reply in zip([first, *others], inband, strict=True) if not reply}
    await wait_for(lambda: {m["touser"] for m in fake.sent} >= late_for, timeout=30.0)
    late = {m["touser"]: m["text"]["content"] for m in fake.sent}
    replies = [reply or late[s.openid] for s, reply in zip([first, *others], inband, strict=True)]
    assert replies[0]  # the huge one is answered too, from its first characters
    for reply in replies[1:]:
        assert "368.00" in reply, reply
        assert "人工" not in reply
