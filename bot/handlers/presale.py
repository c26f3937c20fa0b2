"""Before the sale: price, stock and variants, what a product is and does, shipping."""

from __future__ import annotations

import re

from bot import texts
from bot.dispatch import Reply
from bot.handlers.context import PREV_FAQ, SAYS_OUT, TurnContext, spec_line
from bot.router import Router
from kb.search import ANSWER, named_spec
from kb.units import asked_units

router: Router[TurnContext] = Router(name=__name__)

# How long a product keeps once it has arrived ("能放几天", "可以存多久"): no shipping question, though
# it asks "how many days" as "几天能到" does.
KEEPS = re.compile(r"(?:放|存|保存|储存|冷藏|冷冻)(?:得了|得住)?(?:多久|几天|多少天|多长时间|几个月|多少个月)|保质期")


# Words of a price ("几块", "多少钱一斤"): a unit the question holds beside them is what the price is per.
PRICE_WORDS = re.compile(r"钱|价|块|元|贵|便宜|优惠|折|划算")


# "还有…" leading a message: "and also", before whatever it asks.
ALSO = re.compile(r"^\s*(?:那|对了)?还有")
# Words that ask whether a thing can be had ("有蓝色吗", "黑色还有货吗", "红色能买吗").
STOCK_ASKED = re.compile(r"有|货|库存|缺|卖|补|拍|买|下单|发")


@router.intent("ask_price")
async def answer_ask_price(ctx: TurnContext) -> Reply:
    """Price from the live product row; bargaining and price protection from the FAQ."""
    if (
        ctx.parse is not None
        and ctx.parse.confidence < ctx.config.doubtful
        and not PRICE_WORDS.search(ctx.text)
        and not asked_units(ctx.text)  # "一瓶多少ml": its 净含量 line
        and ctx.conv.context.get(PREV_FAQ)
        and ctx.named_product() is None
    ):
        # "能补吗" right after the price-protection entry (ask_price 0.41): no price asked; the FAQ entry
        # it and the message before it find, if one answers.
        result = await ctx.search_message()
        if result and result.decision == ANSWER and result.top and result.top.kind == "faq":
            return await ctx.answer_hit(result, intent="ask_price")
    product = await ctx.product()
    if product is None:
        return await ctx.answer_from_kb()
    stating = ctx.kb.lines_stating_measure(product.sku, ctx.text) if ctx.kb and not PRICE_WORDS.search(ctx.text) else []
    if len(stating) == 1:
        # "多少毫安", "一包多少克": "how much" in a unit that one of the product's own lines states.
        return spec_line(product, stating[0])
    if stating:
        own = await ctx.about_product(product)  # several lines state it: the one closest to the question
        if own is not None:
            return own
    result = await ctx.search(ctx.text, product.sku)
    # "能便宜点吗" or "降价了能退差价吗" about a named product: the policy answers, not the price.
    if (
        result
        and result.decision == ANSWER
        and result.top
        and result.top.kind == "faq"
        and not ctx.faq_about_other(result, product)
    ):
        faq_answer = await ctx.answer_hit(result, intent="ask_price")
        return Reply(f"{await ctx.price_text(product)}\n{faq_answer.text}")
    return Reply(await ctx.price_text(product))


@router.intent("ask_stock")
async def answer_ask_stock(ctx: TurnContext) -> Reply:
    """Stock from the live row, per colour when one is asked; out of stock offers alternatives."""
    product = await ctx.product()
    if product is None:
        return await ctx.answer_from_kb()
    shipping = product.shipping or texts.SHIPS_SOON
    rest = ALSO.sub("", ctx.text).strip()
    if len(rest) >= 4 and not STOCK_ASKED.search(rest) and ctx.named_product() is None:
        # "还有wifi一直连不上" (还有: "and also") of the product talked about asks nothing of stock: the
        # product's own FAQ entry, if one answers ("那豆腐砂呢" names a product: its stock is asked).
        own = await ctx.about_product(product, faq_only=True)
        if own is not None:
            return own
    # Colours, sizes and the like come from the shop's own specs, never from a list in the code.
    kb = ctx.kb
    variant = kb.variant(product.sku, ctx.text) if kb else None
    named = named_spec(product, ctx.text) or (kb.choice_spec(product.sku, ctx.text) if kb else None)
    if variant is None and named and product.stock > 0:
        # "有几种颜色" names the spec key: its line is the answer.
        return Reply(texts.SPEC_ONE.format(name=product.name, key=named[0], value=named[1]) + ctx.stock_text(product))
    if variant and product.stock > 0 and not STOCK_ASKED.search(ctx.text):
        # "能用豆腐砂吗" of the litter box: what its 支持猫砂 line says, no stock asked.
        return spec_line(product, variant[0])
    if variant and product.stock > 0:
        key, wanted, options, available = variant
        if available:
            return Reply(
                texts.VARIANT_AVAILABLE.format(name=product.name, variant=wanted, stock=product.stock, shipping=shipping)
            )
        return Reply(texts.VARIANT_MISSING.format(name=product.name, key=key, values="、".join(options), variant=wanted))
    if product.stock <= 0:
        if variant and variant[3]:
            # "有棕色的吗" of a sold-out mascara: it comes in brown, none is in stock now.
            key, wanted, options, _ = variant
            text = texts.VARIANT_SOLD_OUT.format(
                name=product.name, variant=wanted, key=key, values="、".join(options), shipping=shipping
            )
            return Reply(text + await ctx.alternatives(product))
        out = texts.STOCK_OUT_SAID if SAYS_OUT.search(shipping) else texts.STOCK_OUT
        return Reply(out.format(name=product.name, shipping=shipping) + await ctx.alternatives(product))
    # "多少钱，有现货吗": the price travels with the stock.
    return Reply(await ctx.price_text(product))


@router.intent("ask_product_info")
async def answer_ask_product_info(ctx: TurnContext) -> Reply:
    """The product's own FAQ entry or spec line when one fits, else a shop-wide FAQ entry, else all specs."""
    product = await ctx.product()
    named = ctx.named_product()
    if product is not None and named == product.sku and ctx.kb is not None and ctx.kb.names_only(named, ctx.text):
        # "16pro透明壳", "100w的充电器": the product named and nothing asked of it gets its card.
        return await ctx.answer_entry("product", named, intent="ask_product_info")
    said = ctx.kb.description_says(product.sku, ctx.text) if product is not None and ctx.kb is not None else None
    if product is not None and said is not None:
        # "能给手机充几次", "带充电头吗": what only the description says (能给 iPhone 16 充约4次, 不含充电头).
        return Reply(texts.DESCRIPTION_SAYS.format(name=product.name, said=said))
    if product is not None:
        # The product's own FAQ entries and spec lines answer first: "敷多久", "孕妇能用吗", "多重".
        own = await ctx.about_product(product)
        if own is not None:
            return own
    result = await ctx.search(ctx.text, product.sku if product else None)
    if result and result.decision == ANSWER and result.top and result.top.kind == "faq":
        if product is None or not ctx.faq_about_other(result, product):
            return await ctx.answer_hit(result, intent="ask_product_info")
    if product is None:
        return await ctx.answer_from_kb()
    lines = "\n".join(f"· {k}：{v}" for k, v in product.specs)
    text = texts.SPECS.format(name=product.name, specs=lines)
    if product.description:
        text += f"\n{product.description}"
    return Reply(text)


@router.intent("ask_shipping")
async def answer_ask_shipping(ctx: TurnContext) -> Reply:
    """Shipping policy from the FAQ, with the named product's own shipping note; how long the product
    keeps ("能放几天") from its own lines."""
    # The product named, or the one being talked about: "现在买什么时候发" means its own shipping note.
    product = await ctx.product()
    if product is not None and (
        KEEPS.search(ctx.text) or (ctx.kb is not None and ctx.kb.states_measure_asked(product.sku, ctx.text))
    ):
        # "那它多重啊 我一个人带娃要经常拎上楼" (taken for shipping: 上楼) asks a weight its 车重 line gives.
        own = await ctx.about_product(product)
        if own is not None:
            return own
    policy = await ctx.answer_from_kb()
    if product and product.shipping:
        return Reply(texts.SHIPPING_PRODUCT.format(name=product.name, shipping=product.shipping) + "\n" + (policy.text or ""))
    return policy
