"""CSRF tokens for the console's forms, bound to the browser and to the API token logged in.

Why a token at all: the console logs in with HTTP Basic, and a browser replays cached Basic
credentials on any request to the site, including a form another site submits. So every POST
must carry something a foreign page cannot know.

The design, with no server-side session to keep:
- Each browser gets a random 256-bit value in a cookie (HttpOnly, SameSite=Lax, Secure over
  HTTPS), set the first time it loads a console page.
- A form's token is HMAC-SHA256(key, token fingerprint + browser value), where the key is derived
  from the service's secret key (SECRET_KEY, or what every web process derives from the shared
  credentials) under a label of its own, so every process and worker agrees without sharing
  memory, and the token means nothing to any other feature signing with that secret.
- A POST is accepted only when its form token equals the one recomputed from the request's own
  cookie and credentials, compared with hmac.compare_digest.

What that buys: a foreign page cannot read our pages (same-origin policy), so it cannot learn a
token; it cannot compute one without the key; a token copied out of one browser is useless in
another (different cookie) or with another API token (different fingerprint); and SameSite=Lax
keeps the cookie off cross-site POSTs altogether. Clearing the cookie or rotating SECRET_KEY
voids every outstanding token. A token has no expiry of its own: it lives as long as the
browser's cookie, which is a session cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

COOKIE_NAME = "jobhooks_console"
FIELD_NAME = "csrf_token"
KEY_LABEL = b"jobhooks/console-csrf/v1"
_BROWSER_VALUE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def new_browser_value() -> str:
    return secrets.token_urlsafe(32)


def browser_value_from(cookie: str | None) -> str | None:
    """A cookie we could have set, or None: anything else is replaced, never trusted."""
    return cookie if cookie is not None and _BROWSER_VALUE.match(cookie) else None


def csrf_token(secret_key: bytes, token_fingerprint: str, browser_value: str) -> str:
    key = hmac.new(secret_key, KEY_LABEL, hashlib.sha256).digest()
    message = f"{token_fingerprint}\x00{browser_value}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def csrf_matches(
    given: str | None, secret_key: bytes, token_fingerprint: str, browser_value: str | None
) -> bool:
    if not given or browser_value is None:
        return False
    expected = csrf_token(secret_key, token_fingerprint, browser_value)
    return hmac.compare_digest(given.encode(), expected.encode())
