"""Where peerwatch is reached from a letter (issue 16 item 11): the item's page in the portal.

``PEERWATCH_PUBLIC_URL`` (default ``http://127.0.0.1:8000``) is the web application's address as
the people written to reach it: the one place it is read. Every letter to a Trust or a
commissioner (a recipient, to or copied, holding one of their roles) names the item's page,
``{PEERWATCH_PUBLIC_URL}/items/{kind}/{id}``, with words saying that signing in is needed to see
it. The link holds no secret: it is the page's address, and the page asks who is there.

notifications/ may not import states/ (an import-linter contract), so the Trust and commissioner
roles are named here again; tests/test_letter_portal_link.py checks they are
``states.roles.TRUST_ROLES`` and ``COMMISSIONER_ROLES``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from models.public import DEFAULT_PUBLIC_URL, PUBLIC_URL_ENV, public_url

__all__ = ["DEFAULT_PUBLIC_URL", "PORTAL_ROLES", "PUBLIC_URL_ENV", "portal_context", "portal_link", "public_url"]

PORTAL_ROLES = frozenset(
    {
        # states.roles.TRUST_ROLES
        "chief-executive",
        "medical-director",
        "service-lead",
        "lead-doctor",
        "lead-nurse",
        "ahp-lead",
        "service-manager",
        "divisional-manager",
        "divisional-director",
        "responsible-executive",
        # states.roles.COMMISSIONER_ROLES
        "responsible-commissioner",
        "accountable-officer",
        "asct",
        "commissioning-lead",
        "icb",
        "lms-lead",
    }
)


def portal_link(kind: str, item_id: int) -> str:
    """The item's page in the web application: ``{public_url}/items/{kind}/{id}``."""
    if not kind.isascii() or not kind.replace("_", "").isalnum() or isinstance(item_id, bool) or item_id < 1:
        raise ValueError(f"no portal page for {kind!r} {item_id!r}")
    return f"{public_url()}/items/{kind}/{int(item_id)}"


def to_portal(people: Iterable[Mapping[str, Any]]) -> bool:
    """Does a letter to ``people`` (to and copied) go to a Trust or a commissioner?"""
    return any(p.get("role") in PORTAL_ROLES for p in people)


def portal_context(
    kind: str, item_id: int, to: Iterable[Mapping[str, Any]], cc: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """What the letter templates read as ``portal``: ``{"url": ...}`` for a letter to a Trust or a
    commissioner, else ``None`` (the letter names no page)."""
    if not to_portal([*to, *cc]):
        return {"portal": None}
    return {"portal": {"url": portal_link(kind, item_id)}}
