"""What every HTTP answer carries, and who is asking: security headers, the client's address and scheme.

Behind a proxy (``KEFU_TRUST_PROXY``) the address and https come from X-Forwarded-For and
X-Forwarded-Proto; without one those headers are ignored, since any client can send them.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web

TRUST_PROXY = web.AppKey("trust_proxy", bool)

# The console serves its own script and stylesheet and nothing inline; pages are never framed.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _trusts_proxy(request: web.Request) -> bool:
    return bool(request.app.get(TRUST_PROXY, False))


def client_address(request: web.Request) -> str:
    """The client's IP: the proxy's X-Forwarded-For (its last hop) when trusted, else the peer."""
    if _trusts_proxy(request):
        forwarded = request.headers.get("X-Forwarded-For", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if hops:
            return hops[-1]  # appended by our own proxy; earlier entries are the client's claim
    return request.remote or ""


def is_https(request: web.Request) -> bool:
    """Whether the browser reached us over TLS (directly, or through a trusted proxy)."""
    if request.secure:
        return True
    return _trusts_proxy(request) and request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def is_loopback(address: str) -> bool:
    """Whether ``address`` is this machine."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def same_origin(request: web.Request, origin: str) -> bool:
    """Whether a browser's Origin header names this server."""
    scheme = "https" if is_https(request) else "http"
    return origin.rstrip("/") == f"{scheme}://{request.host}"


def bearer_ok(request: web.Request, token: str) -> bool:
    """Constant-time check of an ``Authorization: Bearer`` header against a non-empty token."""
    given = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Add the headers above to every answer, errors included."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(HEADERS)
        raise
    if not response.prepared:  # a WebSocket or streamed answer has sent its headers already
        response.headers.update(HEADERS)
    return response
