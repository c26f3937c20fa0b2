"""Complaints: an apology and a person, with what the FAQ says about it."""

from __future__ import annotations

import dataclasses

from bot import texts
from bot.dispatch import Reply
from bot.handlers.context import ASKS, COMPLAINT_FAQ, TurnContext
from bot.router import Router
from kb.search import ANSWER

router: Router[TurnContext] = Router(name=__name__)

# Below this confidence a "complaint" that the FAQ answers ("用了刺痛正常吗") is a question: the answer,
# and a person only on request. Above it the shopper goes to a person, with the FAQ's answer if one fits.
SURE_COMPLAINT = 0.7
# Below this a "complaint" is more likely something else: one that asks what the product's own line
# answers ("都是哑光的吗", "礼盒里面有啥") is a question about the product. Between this and
# SURE_COMPLAINT a message such as "才用两天就没声音了 什么质量" is still the complaint it reads as.
DOUBTFUL_COMPLAINT = 0.5


@router.intent("complaint")
async def answer_complaint(ctx: TurnContext) -> Reply:
    """Apologise and hand off with priority: complaints are for people. What the FAQ says about it
    (how to report damage, what to do on a reaction) comes with the apology, so the shopper can act
    while waiting; a doubtful complaint the FAQ answers gets that answer alone, and a more doubtful one
    that asks what the product's own line answers gets that line."""
    confidence = ctx.parse.confidence if ctx.parse else 1.0
    ctx.conv.context.pop(COMPLAINT_FAQ, None)  # an earlier complaint's rule is not this one's
    product = await ctx.product()
    if product is not None and confidence < DOUBTFUL_COMPLAINT and ASKS.search(ctx.text):
        about = await ctx.about_product(product, at_least=ctx.kb.thresholds.product_followup if ctx.kb else None)
        if about is None:
            about = ctx.spec_asked(product)  # "都是哑光的吗" of a palette whose 质地 is 哑光/珠光/亮片
        if about is not None:
            return dataclasses.replace(about, text=f"{about.text}\n{texts.HUMAN_ON_REQUEST}", intent="complaint")
    sure = confidence >= SURE_COMPLAINT
    # A sure complaint is about what went wrong, which the shop's rule for it answers ("收到外壳就裂了":
    # broken on arrival); a doubtful one is more often a question about the product ("打一次多久"), its
    # own FAQ entry first and the rule for what went wrong only when nothing else answers it.
    rule = await ctx.complaint_faq(product) if sure else None
    if rule is None and product is not None:
        rule = await ctx.about_product(product, faq_only=True)
    if rule is None:
        result = await ctx.search_message()
        if result and result.decision == ANSWER and result.top and result.top.kind == "faq":
            rule = await ctx.answer_hit(result, intent="complaint")
            ctx.conv.context[COMPLAINT_FAQ] = result.top.ref
    if rule is None and not sure and ctx.kb is not None:
        rule = await ctx.complaint_faq(product, at_least=ctx.kb.thresholds.product_followup)
    answer = rule.text if rule is not None else None
    if answer and not sure:
        return Reply(f"{answer}\n{texts.HUMAN_ON_REQUEST}", intent="complaint")
    ctx.faq_answer = answer
    prefix = f"{texts.COMPLAINT}\n{answer}" if answer else texts.COMPLAINT
    return await ctx.handoff("complaint", prefix)
