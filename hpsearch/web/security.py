"""Who may read the page and who may act: the secret token, its cookie, and CSRF checks.

On a shared machine every user reaches 127.0.0.1, so the address protects
nothing: every request must carry the token the service printed (query
parameter on the first visit, then an HttpOnly SameSite=Strict cookie, or the
``X-Hpsearch-Token`` header). Actions are POSTs that must also carry the CSRF
token of the page's meta tag (derived from the secret, so the page never holds
the secret itself) and come from the page's own origin.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

TOKEN_HEADER = "X-Hpsearch-Token"
CSRF_HEADER = "X-CSRF-Token"


def new_token() -> str:
    """A fresh secret for one service run (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def same_secret(given: str | None, token: str) -> bool:
    """``given`` is the token, compared in constant time."""
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())  # type: ignore[union-attr]


def csrf_token(token: str) -> str:
    """The CSRF token of pages served under ``token``: an HMAC of it, useless as a login."""
    return hmac.new(token.encode(), b"hpsearch-csrf", hashlib.sha256).hexdigest()


def cookie_name(port: int | None) -> str:
    """One cookie per port: browsers share a host's cookies across ports, so two services must not clash."""
    return f"hpsearch-token-{port}" if port else "hpsearch-token"


def same_origin(origin: str | None, referer: str | None, host: str) -> bool:
    """The request comes from a page of this server (``Origin``, else ``Referer``, names ``host``).

    Browsers send ``Origin`` on every POST made by ``fetch``; a request with
    neither header is not from a browser page and is judged by the tokens alone.
    """
    source = origin if origin and origin != "null" else referer
    if not source:
        return origin is None
    return urlsplit(source).netloc.lower() == host.lower()
