"""Letters link to the portal (issue 16 item 11): a letter to a Trust or a commissioner names the
item's page, ``{PEERWATCH_PUBLIC_URL}/items/{kind}/{id}``, in its text and HTML parts, with words
saying signing in is needed, and no secret in the link; a letter to the network alone names none."""

from __future__ import annotations

import email
import re
from collections.abc import Callable
from datetime import date
from email import policy as email_policy
from urllib.parse import urlsplit

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import Risk
from models.tables import OutboxMessage
from notifications import links
from notifications.dispatch import dispatch
from notifications.render import rendered
from notifications.transports import MemoryTransport
from states import engine
from states.clock import FixedClock
from states.engine.sweep import run_sweep
from states.policy import Policy
from states.roles import COMMISSIONER_ROLES, TRUST_ROLES
from tests.factories import person

PUBLIC = "https://peerwatch.example.nhs.uk"
_HREF = re.compile(r'href="([^"]+)"')


def test_the_portal_roles_are_the_trust_and_commissioner_roles() -> None:
    assert frozenset((*TRUST_ROLES, *COMMISSIONER_ROLES)) == links.PORTAL_ROLES


def test_the_public_address_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(links.PUBLIC_URL_ENV, raising=False)
    assert links.public_url() == "http://127.0.0.1:8000"
    monkeypatch.setenv(links.PUBLIC_URL_ENV, PUBLIC + "/")
    assert links.portal_link("risk", 7) == PUBLIC + "/items/risk/7"
    monkeypatch.setenv(links.PUBLIC_URL_ENV, "https://example.nhs.uk/peerwatch")  # under a path
    assert links.portal_link("report", 3) == "https://example.nhs.uk/peerwatch/items/report/3"
    for bad in ("ftp://x.nhs.uk", "https://me:secret@x.nhs.uk", "https://x.nhs.uk/?token=abc", "javascript:alert(1)",
                "https://x.nhs.uk/#top", "https://x.nhs.uk/a b", 'https://x.nhs.uk/"', "peerwatch.nhs.uk"):  # fmt: skip
        monkeypatch.setenv(links.PUBLIC_URL_ENV, bad)
        with pytest.raises(ValueError, match="PEERWATCH_PUBLIC_URL"):
            links.public_url()
    monkeypatch.setenv(links.PUBLIC_URL_ENV, PUBLIC)
    for kind, item_id in (("risk", 0), ("risk", -1), ("../x", 1), ("risk", True)):
        with pytest.raises(ValueError):
            links.portal_link(kind, item_id)  # type: ignore[arg-type]


def test_a_letter_to_the_trust_names_the_items_page_in_both_parts(
    session: Session, raise_risk: Callable[..., Risk], clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(links.PUBLIC_URL_ENV, PUBLIC + "/")
    risk = raise_risk("SC")
    engine.fire(session, "risk", risk.id, "send_formal_notification", principal=person("nm", "network-manager"),  # type: ignore[arg-type]
                clock=clock)  # fmt: skip
    session.commit()
    (row,) = session.exec(select(OutboxMessage).where(OutboxMessage.template == "formal_notification")).all()
    assert {p["role"] for p in row.to} & set(TRUST_ROLES)
    transport = MemoryTransport()
    dispatch(session, transport, clock, Policy())
    (sent,) = transport.sent
    msg = email.message_from_bytes(sent.as_bytes(), policy=email_policy.default)
    want = f"{PUBLIC}/items/risk/{risk.id}"
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    (line,) = [x for x in text.splitlines() if "peerwatch portal" in x]
    assert "sign in" in line and line.endswith(want)
    assert [h for h in _HREF.findall(html) if "/items/" in h] == [want]
    assert "sign in to see it" in html
    parts = urlsplit(want)
    assert (parts.scheme, parts.netloc, parts.path, parts.query, parts.fragment) == (
        "https", "peerwatch.example.nhs.uk", f"/items/risk/{risk.id}", "", ""
    )  # fmt: skip
    session.refresh(row)
    assert want in (row.body_text or "") and want in (row.body_html or "")  # kept as sent


def test_a_letter_to_the_network_alone_names_no_page(
    db: Engine, session: Session, raise_risk: Callable[..., Risk], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(links.PUBLIC_URL_ENV, PUBLIC)
    risk = raise_risk("IR", visit=date(2026, 12, 1))  # the formal notification is owed by the network
    run_sweep(db, FixedClock(date(2026, 12, 15)), Policy())
    session.expire_all()
    rows = session.exec(select(OutboxMessage).where(OutboxMessage.item_id == risk.id)).all()
    overdue = [r for r in rows if r.template == "formal_notification_overdue"]
    assert overdue and all(not ({p["role"] for p in r.to + r.cc} & links.PORTAL_ROLES) for r in overdue)
    for r in overdue:
        letter = rendered(r)
        assert "/items/" not in letter.body_text and "/items/" not in letter.body_html
        assert "peerwatch portal" not in letter.body_text
