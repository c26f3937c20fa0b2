"""The shop's rules: promotions, invoices, payment, returns and refunds, exchanges."""

from __future__ import annotations

from bot import texts
from bot.dispatch import Reply
from bot.handlers.context import TurnContext
from bot.router import Router
from kb.search import ANSWER

router: Router[TurnContext] = Router(name=__name__)


@router.intent("ask_promotion", "ask_invoice", "ask_payment", "return_refund", "exchange")
async def answer_policy(ctx: TurnContext) -> Reply:
    """Questions the shop's FAQ answers (promotions, invoices, payment, returns, exchanges)."""
    if ctx.intent == "return_refund":
        order = await ctx.mentioned_order() or await ctx.order_about_product(("refunding", "refunded"))
        status = None
        if order and order.status == "refunding":
            status = texts.REFUND_STATUS.format(order_id=order.order_id)
        if order and order.status == "refunded":
            status = texts.REFUND_DONE.format(order_id=order.order_id)
        if status is not None:
            # "退款一般几天到账": the shop's rule the FAQ gives, after where this refund stands.
            result = await ctx.search_message()
            if result and result.decision == ANSWER and result.top and result.top.kind == "faq":
                rule = await ctx.answer_hit(result, intent="return_refund")
                return Reply(f"{status}\n{rule.text}")
            return Reply(status)
    return await ctx.answer_from_kb()
