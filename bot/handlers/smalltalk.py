"""Small talk and people: greetings, thanks, goodbyes, off-topic messages, asking for a person."""

from __future__ import annotations

import dataclasses
import re

from bot import texts
from bot.dispatch import Reply
from bot.handlers.context import TurnContext
from bot.router import Router
from kb.search import ANSWER, UNKNOWN

router: Router[TurnContext] = Router(name=__name__)

# Greetings, thanks, goodbyes (which close the conversation as resolved) and off-topic messages
# get one fixed, brief text each.
FIXED_REPLIES = {"greet": texts.GREET, "thanks": texts.THANKS, "goodbye": texts.GOODBYE}
# A question about the agents (when they work, how to reach them) rather than a request for one.
ABOUT_AGENTS = re.compile(r"[吗么呢？?]\s*$|几点|什么时候|多久|怎么|哪里|电话")
# Words asking for a person, rather than naming a product that has 机器人 in its name.
PERSON = re.compile(r"人工|客服|真人|活人|人呢|有人|经理|主管|投诉")


@router.intent(*FIXED_REPLIES)
async def answer_fixed(ctx: TurnContext) -> Reply:
    """The fixed text of the intent."""
    assert ctx.parse is not None
    return Reply(FIXED_REPLIES[ctx.parse.intent])


@router.intent("out_of_scope")
async def answer_out_of_scope(ctx: TurnContext) -> Reply:
    """Off the shop's usual topics: the FAQ may still answer it (agents' hours, installation); else a polite no."""
    result = await ctx.search_message()
    if result and result.decision == ANSWER and result.top and result.top.kind == "faq":
        return await ctx.answer_hit(result, intent="out_of_scope")
    about = await ctx.about_context(result)  # "尘杯多大" right after the vacuum cleaner
    if about is not None:
        return dataclasses.replace(about, intent="out_of_scope")
    return Reply(texts.OUT_OF_SCOPE)


@router.intent("human_agent")
async def answer_human_agent(ctx: TurnContext) -> Reply:
    """Straight to the agents' queue, unless it asks something about them the FAQ answers, or only
    names a product ("R5扫地机器人" is the product, not a wish for a person)."""
    named = ctx.named_product() if not PERSON.search(ctx.text) else None
    if named:
        return await ctx.answer_entry("product", named, intent="human_agent")
    if ABOUT_AGENTS.search(ctx.text):
        result = await ctx.search_message()
        # The shopper can still say 转人工; the best FAQ entry is worth giving unless search knows nothing.
        if result and result.decision != UNKNOWN and result.top and result.top.kind == "faq":
            answer = await ctx.answer_hit(result, intent="human_agent")
            return Reply(f"{answer.text}\n{texts.HUMAN_ON_REQUEST}", intent="human_agent")
    return await ctx.handoff("asked_for_human")
