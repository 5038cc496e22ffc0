"""The installation's public address (``PEERWATCH_PUBLIC_URL``): where people reach the web
application. Read by the use cases (an invitation's link) and by the letters (an item's page in
the portal), which may share nothing but ``models``: one reading, one rule."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

PUBLIC_URL_ENV = "PEERWATCH_PUBLIC_URL"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


def public_url() -> str:
    """The web application's address, without a trailing slash; ``ValueError`` naming the
    setting when it is not an http(s) address of a host alone (no user or password, query or
    fragment: nothing secret, nothing a letter should carry)."""
    raw = (os.environ.get(PUBLIC_URL_ENV) or "").strip() or DEFAULT_PUBLIC_URL
    parts = urlsplit(raw)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.query
        or parts.fragment
        or any(c.isspace() or ord(c) < 32 or c in "<>\"'\\" for c in raw)
    ):
        raise ValueError(
            f"{PUBLIC_URL_ENV}={raw!r}: give the web application's address as people reach it, "
            "e.g. https://peerwatch.example.nhs.uk (http or https, no user, query or fragment)"
        )
    return raw.rstrip("/")
