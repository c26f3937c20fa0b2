"""The WeChat message push protocol: verify, decrypt, parse, render.

WeChat types stop here: a pushed message becomes an ``Inbound`` and a reply text
becomes the XML or JSON body WeChat expects. Rules: shared/notes/wechat.md and
https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_standard_messages.html
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import logging
import struct
from dataclasses import dataclass, field
from typing import Any
from xml.parsers import expat
from xml.parsers.expat import ExpatError

import xmltodict
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException
from wechatpy.replies import TextReply

from bot.bodies import BadBody, load_json_object

logger = logging.getLogger(__name__)

MODES = ("plain", "compat", "safe")
FORMATS = ("xml", "json")


class WeChatRequestError(Exception):
    """A push WeChat would never send: answered with an HTTP error, nothing stored."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class WeChatConfig:
    """What the endpoint needs to know about the account."""

    token: str
    appid: str
    aes_key: str
    mode: str = "plain"
    fmt: str = "xml"
    max_clock_skew: float = 300.0


@dataclass(frozen=True)
class Inbound:
    """One shopper message or event, independent of WeChat's wire format."""

    dedup_key: str
    openid: str
    account: str
    kind: str
    text: str
    created_at: int
    product_hint: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    channel: str = "wechat"


@dataclass(frozen=True)
class Envelope:
    """A decoded push: the message fields and how to answer (format, encryption)."""

    message: dict[str, Any]
    fmt: str
    encrypted: bool


def sign(*parts: str) -> str:
    """WeChat's signature: sha1 over the sorted parts."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()  # noqa: S324 - sha1 is WeChat's protocol


def _check(expected: str, given: str) -> None:
    # Constant-time compare; wechatpy's check_signature uses != (shared/notes/wechat.md).
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise WeChatRequestError(403, "invalid signature")


def verify_request(config: WeChatConfig, query: dict[str, str], now: float) -> None:
    """Check the URL signature and timestamp before anything in the body is read."""
    signature = query.get("signature", "")
    timestamp = query.get("timestamp", "")
    nonce = query.get("nonce", "")
    if not (signature and timestamp and nonce):
        raise WeChatRequestError(403, "missing signature, timestamp or nonce")
    _check(sign(config.token, timestamp, nonce), signature)
    try:
        ts = int(timestamp)
    except ValueError as exc:
        raise WeChatRequestError(403, "bad timestamp") from exc
    if abs(now - ts) > config.max_clock_skew:
        raise WeChatRequestError(403, "timestamp too far from now")


MAX_DEPTH = 8  # WeChat's pushes nest two or three levels (<xml><ScanCodeInfo><ScanType>); more is not WeChat


def _check_xml(text: str) -> None:
    """Refuse a DOCTYPE or entity anywhere, and nesting deeper than MAX_DEPTH, before building anything."""
    scanner = expat.ParserCreate()
    depth = 0

    def start(name: str, attrs: object) -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_DEPTH:
            raise WeChatRequestError(400, f"XML nested deeper than {MAX_DEPTH} levels")

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1

    def doctype(*args: object) -> None:
        # Never expand entities: WeChat sends none, an attacker would (billion laughs, XXE).
        raise WeChatRequestError(400, "XML with DOCTYPE or entities is refused")

    scanner.StartElementHandler = start
    scanner.EndElementHandler = end
    scanner.StartDoctypeDeclHandler = doctype
    scanner.EntityDeclHandler = doctype
    try:
        scanner.Parse(text, True)
    except ExpatError as exc:
        raise WeChatRequestError(400, f"malformed XML: {expat.errors.messages.get(exc.code, exc)}") from exc


class NonceMemory:
    """The nonces of recent plain-mode pushes: a signature covers only token, timestamp and nonce, so
    within the clock-skew window the same signed query must not carry another body (WeChat's own
    retries resend the same body, and dedup answers them)."""

    def __init__(self, window: float = 300.0, limit: int = 100_000) -> None:
        self.window = window
        self.limit = limit
        self._seen: dict[tuple[str, str], tuple[float, str]] = {}

    def check(self, query: dict[str, str], body: bytes, now: float) -> None:
        """Remember this push's nonce; 403 when it was already used with a different body."""
        key = (query.get("timestamp", ""), query.get("nonce", ""))
        digest = hashlib.sha256(body).hexdigest()
        seen = self._seen.get(key)
        if seen is not None and seen[0] > now - 2 * self.window and seen[1] != digest:
            raise WeChatRequestError(403, "nonce already used with another message")
        if len(self._seen) >= self.limit:
            self._forget(now)
        self._seen[key] = (now, digest)

    def _forget(self, now: float) -> None:
        self._seen = {k: v for k, v in self._seen.items() if v[0] > now - 2 * self.window}
        while len(self._seen) >= self.limit:  # a flood of valid signatures: drop the oldest half
            for k in list(self._seen)[: self.limit // 2]:
                del self._seen[k]


def _load(body: bytes) -> tuple[dict[str, Any], str]:
    """Parse a body as XML or JSON, whatever its Content-Type says."""
    text = body.decode("utf-8", errors="strict").strip() if body else ""
    if not text:
        raise WeChatRequestError(400, "empty body")
    if text.startswith("{"):
        try:
            return load_json_object(text, MAX_DEPTH), "json"
        except BadBody as exc:
            raise WeChatRequestError(400, str(exc)) from exc
    _check_xml(text)
    try:
        parsed = xmltodict.parse(text, disable_entities=True)
    except (ExpatError, ValueError) as exc:
        raise WeChatRequestError(400, "malformed XML") from exc
    root = parsed.get("xml") if isinstance(parsed, dict) else None
    if not isinstance(root, dict):
        raise WeChatRequestError(400, "XML root must be <xml>")
    return dict(root), "xml"


def decode_body(config: WeChatConfig, query: dict[str, str], body: bytes) -> Envelope:
    """Turn a verified POST body into message fields, decrypting in safe/compat mode."""
    try:
        outer, fmt = _load(body)
    except UnicodeDecodeError as exc:
        raise WeChatRequestError(400, "body is not UTF-8") from exc
    encrypted = query.get("encrypt_type", "raw") == "aes"
    if config.mode == "safe" and not encrypted:
        raise WeChatRequestError(400, "safe mode requires encrypted messages")
    if config.mode == "plain" or not encrypted:
        return Envelope(outer, fmt, False)
    encrypt = outer.get("Encrypt")
    if not isinstance(encrypt, str) or not encrypt:
        raise WeChatRequestError(400, "missing Encrypt field")
    _check(sign(config.token, query.get("timestamp", ""), query.get("nonce", ""), encrypt), query.get("msg_signature", ""))
    try:
        plain = PrpCrypto(_aes_key(config)).decrypt(encrypt, config.appid)
    except InvalidAppIdException as exc:
        raise WeChatRequestError(403, "message encrypted for another appid") from exc
    except (ValueError, TypeError, IndexError, struct.error, binascii.Error) as exc:
        # bad base64, padding or length: what wechatpy's cipher raises on a mangled Encrypt field
        raise WeChatRequestError(400, "cannot decrypt message") from exc
    inner, inner_fmt = _load(plain.encode() if isinstance(plain, str) else plain)
    return Envelope(inner, inner_fmt, True)


def _aes_key(config: WeChatConfig) -> bytes:
    return WeChatCrypto(config.token, config.aes_key, config.appid).key  # type: ignore[no-any-return]


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def to_inbound(message: dict[str, Any]) -> Inbound:
    """Build our dataclass from the pushed fields (the same names in XML and JSON)."""
    openid = _text(message.get("FromUserName"))
    account = _text(message.get("ToUserName"))
    msg_type = _text(message.get("MsgType")).lower()
    if not openid or not msg_type:
        raise WeChatRequestError(400, "message lacks FromUserName or MsgType")
    try:
        created = int(str(message.get("CreateTime", "0")))
    except ValueError as exc:
        raise WeChatRequestError(400, "bad CreateTime") from exc
    msg_id = _text(str(message.get("MsgId", "") or ""))
    if msg_type == "event":
        event = _text(message.get("Event")).lower()
        key = f"evt:{openid}:{created}:{event}"
    else:
        event = ""
        key = f"msg:{msg_id}" if msg_id else f"msg:{openid}:{created}:{msg_type}"
    hint = None
    if msg_type == "text":
        kind, text = "text", _text(message.get("Content"))
    elif msg_type == "voice":
        text = _text(message.get("Recognition"))
        kind = "text" if text else "voice"
    elif msg_type == "image":
        kind, text = "image", ""
    elif msg_type == "location":
        kind, text = "location", _text(message.get("Label"))
    elif msg_type == "link":
        kind, text = "link", _text(message.get("Title"))
    elif msg_type == "miniprogrampage":
        # A product card: its title names the product, its page path usually holds the SKU.
        kind, text = "product_card", _text(message.get("Title"))
        hint = _text(message.get("PagePath")) or None
    elif msg_type == "event" and event in ("subscribe", "user_enter_tempsession"):
        kind, text = f"event:{event}", ""
    elif msg_type == "event":
        kind, text = "event:other", ""
    else:
        kind, text = "unsupported", ""
    return Inbound(key, openid, account, kind, text, created, hint, dict(message))


def render_reply(
    config: WeChatConfig, envelope: Envelope, inbound: Inbound, text: str, *, nonce: str, now: int
) -> tuple[str, str]:
    """The HTTP body (and its content type) that answers ``inbound`` with ``text``."""
    if envelope.fmt == "json":
        body = json.dumps(
            {
                "ToUserName": inbound.openid,
                "FromUserName": inbound.account,
                "CreateTime": now,
                "MsgType": "text",
                "Content": text,
            },
            ensure_ascii=False,
        )
    else:
        # CDATA cannot hold "]]>"; WeChat shows the text as is, so break the sequence.
        safe = text.replace("]]>", "]] >")
        body = TextReply(target=inbound.openid, source=inbound.account, content=safe, time=now).render()
    if not envelope.encrypted:
        return body, "application/json" if envelope.fmt == "json" else "application/xml"
    encrypt = PrpCrypto(_aes_key(config)).encrypt(body, config.appid)
    encrypt = encrypt.decode() if isinstance(encrypt, bytes) else encrypt
    signature = sign(config.token, str(now), nonce, encrypt)
    if envelope.fmt == "json":
        return (
            json.dumps({"Encrypt": encrypt, "MsgSignature": signature, "TimeStamp": now, "Nonce": nonce}),
            "application/json",
        )
    xml = (
        f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt><MsgSignature><![CDATA[{signature}]]></MsgSignature>"
        f"<TimeStamp>{now}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
    )
    return xml, "application/xml"
