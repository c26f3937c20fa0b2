"""The shop's rules: promotions, invoices, payment, returns and refunds, exchanges."""

from __future__ import annotations

from bot import texts
from bot.dispatch import Reply
from bot.handlers.context import TurnContext
from bot.router import Router

router: Router[TurnContext] = Router(name=__name__)


@router.intent("ask_promotion", "ask_invoice", "ask_payment", "return_refund", "exchange")
async def answer_policy(ctx: TurnContext) -> Reply:
    """Questions the shop's FAQ answers (promotions, invoices, payment, returns, exchanges)."""
    if ctx.intent == "return_refund":
        order = await ctx.mentioned_order() or await ctx.order_about_product(("refunding", "refunded"))
        if order and order.status == "refunding":
            return Reply(texts.REFUND_STATUS.format(order_id=order.order_id))
        if order and order.status == "refunded":
            return Reply(texts.REFUND_DONE.format(order_id=order.order_id))
    return await ctx.answer_from_kb()
