"""Every text kefu sends to shoppers, in Chinese, in one place."""

from __future__ import annotations

WELCOME = "您好，欢迎光临！我是店铺智能客服，商品价格、库存、规格、发货、订单和售后都可以问我～"
SORRY_HANDOFF = "抱歉，我这边出了点问题，已为您转接人工客服，请稍候。"
UNSUPPORTED = "抱歉，暂时无法识别这类消息，请用文字描述您的问题，我马上为您解答～"
IMAGE_RECEIVED = "图片已收到～请再用文字简单说明一下您的问题（如商品名称或订单号），我马上为您处理。"
VOICE_UNRECOGNISED = "抱歉，没听清您的语音，麻烦用文字发给我，谢谢～"
LOCATION_RECEIVED = "位置已收到～如需修改收货地址，请告诉我订单号和新地址。"
