"""Build WeChat pushes the way WeChat does: signed, and encrypted with wechatpy's own crypto."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.utils import check_signature

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "test-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wx0000000000000000"


def fixture(name: str, **replace: Any) -> str:
    """A recorded push with some fields replaced (CreateTime, MsgId, Content ...)."""
    text = (FIXTURES / "wechat" / name).read_text(encoding="utf-8").strip()
    for key, value in replace.items():
        if name.endswith(".json"):
            data = json.loads(text)
            data[key] = value
            text = json.dumps(data, ensure_ascii=False)
        else:
            text = re.sub(
                rf"<{key}>.*?</{key}>",
                f"<{key}><![CDATA[{value}]]></{key}>" if isinstance(value, str) else f"<{key}>{value}</{key}>",
                text,
            )
    return text


def signed_query(timestamp: int, nonce: str | None = None, token: str = TOKEN, **extra: str) -> dict[str, str]:
    """Query string WeChat puts on every push (a fresh nonce unless given); checked with wechatpy's check_signature."""
    import hashlib

    nonce = nonce or secrets.token_hex(6)

    signature = hashlib.sha1("".join(sorted([token, str(timestamp), nonce])).encode()).hexdigest()
    check_signature(token, signature, str(timestamp), nonce)  # raises if our own helper were wrong
    return {"signature": signature, "timestamp": str(timestamp), "nonce": nonce, **extra}


def encrypt_xml(plain: str, timestamp: int, nonce: str | None = None) -> tuple[str, dict[str, str]]:
    """Safe-mode XML body and query, built by wechatpy's WeChatCrypto."""
    nonce = nonce or secrets.token_hex(6)
    crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)
    body = crypto.encrypt_message(plain, nonce, str(timestamp))
    msg_signature = re.search(r"<MsgSignature><!\[CDATA\[(.*?)\]\]>", body).group(1)  # type: ignore[union-attr]
    query = signed_query(timestamp, nonce, encrypt_type="aes", msg_signature=msg_signature)
    return body, query


def encrypt_json(plain: str, timestamp: int, nonce: str | None = None) -> tuple[str, dict[str, str]]:
    """Mini-program safe-mode JSON body and query."""
    import hashlib

    nonce = nonce or secrets.token_hex(6)

    crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)
    encrypt = PrpCrypto(crypto.key).encrypt(plain, APPID)
    encrypt = encrypt.decode() if isinstance(encrypt, bytes) else encrypt
    msg_signature = hashlib.sha1("".join(sorted([TOKEN, str(timestamp), nonce, encrypt])).encode()).hexdigest()
    body = json.dumps({"ToUserName": "gh_kefu_mini", "Encrypt": encrypt})
    return body, signed_query(timestamp, nonce, encrypt_type="aes", msg_signature=msg_signature)


def decrypt_xml_reply(body: str, query_nonce: str | None = None) -> str:
    """Open an encrypted XML reply the way WeChat would (checks MsgSignature too)."""
    crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)
    signature = re.search(r"<MsgSignature><!\[CDATA\[(.*?)\]\]>", body).group(1)  # type: ignore[union-attr]
    timestamp = re.search(r"<TimeStamp>(.*?)</TimeStamp>", body).group(1)  # type: ignore[union-attr]
    nonce = re.search(r"<Nonce><!\[CDATA\[(.*?)\]\]>", body).group(1)  # type: ignore[union-attr]
    return str(crypto.decrypt_message(body, signature, timestamp, nonce))


def decrypt_json_reply(body: str) -> dict[str, Any]:
    """Open an encrypted mini-program JSON reply, checking its signature."""
    import hashlib

    data = json.loads(body)
    expected = hashlib.sha1("".join(sorted([TOKEN, str(data["TimeStamp"]), data["Nonce"], data["Encrypt"]])).encode()).hexdigest()
    assert expected == data["MsgSignature"]
    crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)
    plain = PrpCrypto(crypto.key).decrypt(data["Encrypt"], APPID)
    return dict(json.loads(plain))
