"""The shop's rules: promotions, invoices, payment, returns and refunds, exchanges."""

from __future__ import annotations

from bot import texts
from bot.dispatch import Reply
from bot.handlers.context import TurnContext
from bot.router import Router
from kb.search import ANSWER, SearchResult

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
    full = await ctx.search_message()
    shop_wide = await _shop_rule(ctx, full)
    return shop_wide if shop_wide is not None else await ctx.answer_result(full)


async def _shop_rule(ctx: TurnContext, full: SearchResult | None) -> Reply | None:
    """For a rule asked of a product named ("眼影盘也想退 已经拆开用过了"): the shop-wide FAQ entry the
    question answers without the product's name, when search with the name (``full``) finds only an
    entry about the product (its 飞粉) that the question without the name does not find, or is less sure."""
    named = ctx.named_product()
    if ctx.kb is None or named is None:
        return None
    kb = ctx.kb
    if (
        full is not None
        and full.decision == ANSWER
        and full.top is not None
        and full.top.kind == "faq"
        and not kb.faq_products(full.top.ref)
    ):
        return None  # a shop-wide rule already (a product's card is none: "眼影盘也想退" asks the rule)
    bare = await ctx.search(kb.without_names(named, ctx.text), named)
    if bare is None or bare.decision != ANSWER or bare.top is None or bare.top.kind != "faq" or kb.faq_products(bare.top.ref):
        return None
    if (
        full is not None
        and full.decision == ANSWER
        and full.top is not None
        and (full.confidence or 0.0) >= (bare.confidence or 0.0)
        and any(hit.ref == full.top.ref for hit in bare.hits)
    ):
        return None  # the product's own entry, which the question asks of even without the name
    return await ctx.answer_hit(bare, intent=ctx.intent or "kb")
