"""Every text kefu sends to shoppers, in Chinese, in one place.

Compliance (shared/notes/wechat.md): nothing here asks for shares or offers anything for a review.
"""

from __future__ import annotations

WELCOME = "您好，欢迎光临！我是店铺智能客服，商品价格、库存、规格、发货、订单和售后都可以问我～"
GREET = "您好，我是智能客服，请问有什么可以帮您？商品、订单、售后都可以直接问我～"
THANKS = "不客气，能帮到您就好～还有其他问题随时找我。"
GOODBYE = "好的，感谢您的光临，祝您生活愉快！有需要随时找我～"
SORRY_HANDOFF = "抱歉，我这边出了点问题，已为您转接人工客服，请稍候。"
UNSUPPORTED = "抱歉，暂时无法识别这类消息，请用文字描述您的问题，我马上为您解答～"
IMAGE_RECEIVED = "图片已收到～请再用文字简单说明一下您的问题（如商品名称或订单号），我马上为您处理。"
VOICE_UNRECOGNISED = "抱歉，没听清您的语音，麻烦用文字发给我，谢谢～"
LOCATION_RECEIVED = "位置已收到～如需修改收货地址，请告诉我订单号和新地址。"
OUT_OF_SCOPE = "这个问题我可能帮不上忙😅 我主要负责本店的商品咨询、订单查询和售后服务，您可以问我商品价格、库存、发货或订单进度～"
NOT_CARRIED = (
    "不好意思，本店暂时没有您说的这款商品哦～您可以说说想要什么类型的，我帮您看看店里相近的；也可以回复“人工”转接人工客服。"
)
WE_HAVE = "有的～店里有：{items}，想了解哪一款可以直接告诉我。"
NOT_CARRIED_NAMED = "不好意思，本店没有{thing}哦～"
NOT_CARRIED_ASK = "您可以说说想要什么类型的，我帮您看看店里相近的；也可以回复“人工”转接人工客服。"
OURS_OF_KIND = "店里的{category}有：{items}，需要的话可以看看；也可以回复“人工”转接人工客服。"
DONT_KNOW = "抱歉，这个问题我暂时没找到准确答案。您可以换个说法，或回复“人工”为您转接人工客服。"
WHICH_PRODUCT = "请问您想了解哪一款商品呢？可以发商品名称，或直接发送商品卡片给我～"
CLARIFY_INTENT = "不好意思，我没太理解。请问您是想{a}，还是想{b}？"
CLARIFY_ENTRIES = "请问您问的是下面哪一个？\n1. {a}\n2. {b}\n回复序号即可～"
NLU_DOWN_HANDOFF = "系统有点忙，我先为您转接人工客服，请稍候～"

INTENT_MEANINGS = {
    "greet": "打个招呼",
    "goodbye": "结束咨询",
    "thanks": "表示感谢",
    "ask_price": "问商品价格",
    "ask_stock": "问有没有货",
    "ask_product_info": "了解商品规格或用法",
    "ask_shipping": "问发货和快递",
    "order_status": "查订单物流",
    "change_order": "修改订单信息",
    "cancel_order": "取消订单",
    "return_refund": "办理退货退款",
    "exchange": "换货",
    "complaint": "反馈问题或投诉",
    "ask_promotion": "了解优惠活动",
    "ask_invoice": "开发票",
    "ask_payment": "咨询付款",
    "human_agent": "转人工客服",
    "out_of_scope": "聊点别的",
}

PRICE = "【{name}】现价 ¥{price}。{stock}"
STOCK_IN = "目前有现货（库存 {stock} 件），{shipping}。"
STOCK_LOW = "库存仅剩 {stock} 件，喜欢的话尽快下单哦，{shipping}。"
STOCK_OUT = "【{name}】暂时缺货，{shipping}。"
STOCK_OUT_SAID = "【{name}】{shipping}。"  # the shop's shipping note says it is out of stock itself
STOCK_OUT_SHORT = "目前暂时缺货。"
STOCK_OUT_UNTIL = "目前暂时缺货，{shipping}。"
STOCK_OUT_UNTIL_SAID = "目前{shipping}。"
SUBSTITUTES = "和【{name}】同类、目前有现货的有：{items}，需要的话可以看看～"
ALTERNATIVES = "同类有现货的还有：{items}，需要的话可以看看～"
VARIANT_AVAILABLE = "【{name}】有{variant}，目前库存 {stock} 件，{shipping}。"
VARIANT_SOLD_OUT = "【{name}】有{variant}（可选{key}：{values}），不过暂时缺货，{shipping}。"
VARIANT_MISSING = "【{name}】的可选{key}是：{values}，暂时没有{variant}。"
SPECS = "【{name}】的规格：\n{specs}"
SPEC_ONE = "【{name}】{key}：{value}。"
DESCRIPTION_SAYS = "【{name}】{said}。"
SHIPPING_PRODUCT = "【{name}】{shipping}。"
PRODUCT_CARD = "收到～这是【{name}】，现价 ¥{price}，{stock}有什么想了解的可以直接问我（价格、规格、发货等）。"

ASK_ORDER_ID = "请把订单号发给我（在小程序“我的订单”里可以复制），我马上帮您查询～"
NO_ORDERS = "没有查到您名下的订单哦。如果是用其他微信账号下的单，请用下单的账号联系我们，或把订单号发给我。"
ORDER_NOT_FOUND = "没有查到订单号 {order_id} 的信息，请核对一下订单号（只能查询您本人微信下的订单）。"
PICK_ORDER = "您有 {count} 个订单，请问是哪一个？回复序号或订单号即可：\n{items}"
ORDER_LINE = "{index}. {order_id} {name}×{quantity}（{status}）"
ORDER_STATUS = {
    "pending_payment": "订单 {order_id}（{name}×{quantity}）待付款：还未付款，付款后会尽快为您发货。",
    "paid": "订单 {order_id}（{name}×{quantity}）待发货：已付款，正在备货，{shipping}。",
    "shipped": "订单 {order_id}（{name}×{quantity}）已发货：{carrier}，运单号 {tracking_no}。在小程序“我的订单”里可以看到实时物流。",
    "delivered": "订单 {order_id}（{name}×{quantity}）已签收（{carrier} {tracking_no}）。如果没有收到，请告诉我，我帮您联系快递核实。",
    "cancelled": "订单 {order_id}（{name}×{quantity}）已取消，款项会原路退回。",
    "refunding": "订单 {order_id}（{name}×{quantity}）正在退款中，验收后24小时内原路退回。",
    "refunded": "订单 {order_id}（{name}×{quantity}）已退款，款项已原路退回，请留意微信支付通知。",
}
CHANGE_TASK = "好的，订单 {order_id} 还没发货，您的修改需求已经记录并交给人工客服处理，处理好后会通知您。请把要修改的内容（新地址/收货人/电话/规格）完整发给我。"
CHANGE_SHIPPED = "订单 {order_id} 已经发货（{carrier} {tracking_no}），地址和规格无法直接修改了。可以联系快递改派（可能产生费用），或收货后申请换货。需要的话我为您转接人工客服。"
CHANGE_CLOSED = "订单 {order_id} 当前状态是“{status}”，不能再修改了。如需帮助请回复“人工”。"
CANCEL_TASK = "好的，已为订单 {order_id} 提交取消申请，人工客服确认后款项会原路退回，请留意通知。"
CANCEL_UNPAID = "订单 {order_id} 还没付款，不用申请取消：未付款的订单到时会自动取消，您也可以在小程序“我的订单”里直接取消。"
CANCEL_SHIPPED = "订单 {order_id} 已经发货，无法直接取消。您可以拒收包裹，或收到后在订单页申请退货退款。"
CANCEL_DONE = "订单 {order_id} 当前状态是“{status}”，无需再取消。"
REFUND_STATUS = "订单 {order_id} 正在退款中，我们验收后24小时内原路退回。"
REFUND_DONE = "订单 {order_id} 已退款，款项已原路退回，到账时间以支付渠道为准。"
HUMAN_ON_REQUEST = "如需人工客服，请回复“转人工”。"

HANDOFF_QUEUED = "已为您转接人工客服，您前面还有 {ahead} 位，预计等待约 {minutes} 分钟，请稍候～"
HANDOFF_NEXT = "已为您转接人工客服，马上就轮到您，请稍候～"
HANDOFF_CLOSED_HOURS = "已为您记录并转接人工客服。人工客服工作时间为 {hours}，将在 {back} 上班后第一时间联系您。"
HANDOFF_STILL_WAITING = "您已在人工客服队列中，前面还有 {ahead} 位，请稍候～"
COMPLAINT = "非常抱歉给您带来不好的体验！已为您优先转接人工客服处理。"
ESCALATION_APOLOGY = "非常抱歉让您久等了！客服主管已经收到您的问题，会尽快亲自为您处理。"
AGENT_HANDBACK = "人工客服已结束本次服务，如还有问题可以继续问我～"

# Fill-ins where the shop's data says nothing.
SHIPS_SOON = "付款后尽快发货"  # a product without its own shipping note
SHIPS_WITHIN_48_HOURS = "付款后48小时内发货"  # an order of a product without one
CARRIER_UNKNOWN = "快递"
TRACKING_NONE = "暂无"
# When the agents are back ("将在 明天 09:00 上班后").
WORKDAY = "工作日"
TODAY = "今天"
TOMORROW = "明天"
MONTH_DAY = "{month}月{day}日"
