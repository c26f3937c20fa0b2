"""Complaints: an apology and a person, with what the FAQ says about it."""

from __future__ import annotations

from bot import texts
from bot.dispatch import Reply
from bot.handlers.context import TurnContext
from bot.router import Router
from kb.search import ANSWER

router: Router[TurnContext] = Router(name=__name__)

# Below this confidence a "complaint" that the FAQ answers ("用了刺痛正常吗") is a question: the answer,
# and a person only on request. Above it the shopper goes to a person, with the FAQ's answer if one fits.
SURE_COMPLAINT = 0.7


@router.intent("complaint")
async def answer_complaint(ctx: TurnContext) -> Reply:
    """Apologise and hand off with priority: complaints are for people. What the FAQ says about it
    (how to report damage, what to do on a reaction) comes with the apology, so the shopper can act
    while waiting; a doubtful complaint the FAQ answers gets that answer alone."""
    confidence = ctx.parse.confidence if ctx.parse else 1.0
    product = await ctx.product()
    own = await ctx.about_product(product, faq_only=True) if product is not None else None
    answer = own.text if own is not None else None
    if answer is None:
        result = await ctx.search_message()
        if result and result.decision == ANSWER and result.top and result.top.kind == "faq":
            answer = (await ctx.answer_hit(result, intent="complaint")).text
    if answer and confidence < SURE_COMPLAINT:
        return Reply(f"{answer}\n{texts.HUMAN_ON_REQUEST}", intent="complaint")
    ctx.faq_answer = answer
    prefix = f"{texts.COMPLAINT}\n{answer}" if answer else texts.COMPLAINT
    return await ctx.handoff("complaint", prefix)
