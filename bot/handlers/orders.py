"""The shopper's own orders: where an order is, changing it, cancelling it."""

from __future__ import annotations

import logging
import re

from bot import texts
from bot.dispatch import Reply
from bot.handlers.context import ASKS, ORDER_ID, TurnContext
from bot.handlers.presale import answer_ask_shipping
from bot.orders import OrderSourceError
from bot.router import Router
from kb import store as kb_store
from kb.search import ANSWER
from kb.store import Order, Product

logger = logging.getLogger(__name__)
router: Router[TurnContext] = Router(name=__name__)

# Words that point at an order already placed (not 下单, placing one).
ORDER_WORDS = re.compile(r"订单|单子|单号|物流|[那这哪的]单")
ORDER_TALK = re.compile(ORDER_WORDS.pattern + r"|我(?:之前|上次|刚|刚刚|后来|昨天|前天|上周)?(?:买|订|预定|预订|拍)的")
# "我不想要了，还没付款": an unpaid order the shopper no longer wants, said as a statement as often as
# asked ("怎么取消"): whatever the intent model takes it for, it is a cancellation of that order.
UNPAID = re.compile(r"(?:没|未|忘)(?:有|了)?(?:付|支付)|忘(?:了)?付")
UNWANTED = re.compile(r"不(?:想|打算)?要了|不想要|不(?:想|打算)?买了|不想买|(?<!不)取消")
# "那不取消了", "先不退了": the shopper keeps the order after all.
KEEPS_ORDER = re.compile(r"(?:不|不用|先不|暂时不|还是不)(?:取消|退)")
# Asking where an order placed is: arrived, shipped, when it ships, not paid yet ("表带到了吗", "充电座发了吗",
# "耳机什么时候发", "那单我还没付"); a statement that it came ("表带到了 是41的吗") asks nothing of the kind.
STATUS_ASKED = re.compile(
    r"到(?:了)?(?:吗|没|么|哪)|到哪|发(?:货)?了(?:吗|没|么)|(?:什么时候|啥时候|几时|哪天|何时)(?:能)?发(?!票)"
    r"|(?:没|未)(?:有)?发(?:货|出)|还没(?:有)?发|(?:没|未)(?:有)?(?:付|支付)|签收了(?:吗|没)"
)
# Asking for the tracking number: the order's reply again carries it ("哪个快递 单号多少" right after
# "窗帘发了吗"), unlike "物流一直不动", which the FAQ answers.
TRACKING_ASKED = re.compile(r"单号|运单|快递号|物流号")
# What a change of an order names: changing something (改, 换, 修改), not a question about delays.
CHANGES = re.compile(r"改|换|更正|变更")


@router.intent("order_status", "change_order", "cancel_order")
async def answer_order(ctx: TurnContext) -> Reply:
    """Orders of this shopper only: the one named, the only open one, or a choice among several."""
    assert ctx.parse is not None
    intent = ctx.parse.intent
    openid = ctx.inbound.openid
    try:
        named = ctx.parse.entity("order_id") or (m.group(0) if (m := ORDER_ID.search(ctx.text)) else None)
        if not named:
            # "吹风机那单呢": the order of the product named beats the order talked about before.
            of_product = await ctx.order_about_product(named_only=True)
            if of_product is not None:
                return await ctx.order_action(intent, of_product)
        # "这个订单能取消吗" right after talking about an order: the order being discussed.
        named = named or ctx.conv.context.get("order_id")
        if named:
            order = await ctx.orders.get_order(openid, named)
            if order is None:
                return Reply(texts.ORDER_NOT_FOUND.format(order_id=named))
            return await ctx.order_action(intent, order)
        orders = await ctx.orders.orders_of(openid)
    except OrderSourceError as exc:
        logger.warning("order source failed: %s", exc)
        ctx.metrics.errors.labels(kind="order_source").inc()
        return await ctx.handoff("order_source_down")
    if intent != "order_status":
        orders = [o for o in orders if o.status not in ("cancelled", "refunded")]
    else:
        orders = [o for o in orders if o.status != "cancelled"]
    if not orders:
        # Not about an order after all ("三段的怎么下不了单", "加湿器HM-E6多少钱"): the product named,
        # or what the knowledge base says.
        product_named = ctx.named_product() if not ORDER_TALK.search(ctx.text) else None
        if product_named:
            # "HM-E6滤芯多久换", "X1推车怎么收车": the FAQ entry that answers it (of that product or the
            # whole shop), before the product's price and stock.
            result = await ctx.search_message()
            product = ctx.kb.products.get(product_named) if ctx.kb else None
            if result and result.decision == ANSWER and result.top and result.top.kind == "faq" and product is not None:
                if not ctx.faq_about_other(result, product):
                    return await ctx.answer_hit(result, intent=intent)
            own = await ctx.about_product(product, faq_only=True) if product is not None and ASKS.search(ctx.text) else None
            if own is not None:
                return own
            return await ctx.answer_entry("product", product_named, intent=intent)
        if intent == "order_status" and not ORDER_TALK.search(ctx.text) and ctx.conv.context.get("sku"):
            # "几号发货" with no order placed, right after a product: when that product ships.
            return await answer_ask_shipping(ctx)
        result = await ctx.search_message()
        if result and result.decision == ANSWER:
            return await ctx.answer_hit(result, intent=intent)
        return Reply(texts.NO_ORDERS)
    if len(orders) == 1:
        return await ctx.order_action(intent, orders[0])
    # "散粉那个到哪了": the order of the product the message names.
    products_named = set(ctx.kb.mentioned_products(ctx.text)) if ctx.kb else set()
    about = [o for o in orders if o.sku in products_named]
    if len(about) == 1:
        return await ctx.order_action(intent, about[0])
    shown = orders[:5]
    products = ctx.kb.products if ctx.kb else {}
    items = "\n".join(
        texts.ORDER_LINE.format(
            index=i,
            order_id=o.order_id,
            name=_order_name(products, o),
            quantity=o.quantity,
            status=kb_store.ORDER_STATES.get(o.status, o.status),
        )
        for i, o in enumerate(shown, start=1)
    )
    ctx.conv.context["pick_orders"] = {"intent": intent, "orders": [o.order_id for o in shown]}
    return Reply(texts.PICK_ORDER.format(count=len(orders), items=items))


def _order_name(products: dict[str, Product], order: Order) -> str:
    product = products.get(order.sku)
    return product.name if product else order.sku
