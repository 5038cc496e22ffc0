"""Letters as a mail client sees them (issue 12, item 10): every letter kind's HTML part, and
every digest's, is ONE HTML document that html5lib parses without an error (one html, head and
body, no nested doctype); a digest has an introduction ("2 items need your attention") and a
heading per item; and no Subject comes back from Python's email parser with a leading space
(``email``'s own folder started subjects of 70-77 characters on a continuation line).

Every template is rendered with a stand-in context in which every name exists and every test
is true, so every branch's markup is in the output.
"""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import html5lib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import meta

from models.tables import OutboxMessage
from notifications.build import build_digest, build_letter
from notifications.render import TEMPLATES, environment, render, template_names
from notifications.transports import DEFAULT_SENDER
from states.clock import FixedClock

CLOCK = FixedClock(datetime(2027, 1, 18, 9, tzinfo=UTC))
PERSON = {
    "name": "Dr Łukasz Wiśniewski",
    "email": "lukasz.wisniewski@midland-royal.nhs.example",
    "role": "chief-executive",
    "role_name": "Chief Executive",
}


class Anything(str):
    """A stand-in value: every attribute, item and call exists, every test is true, it prints as 'x'."""

    def __new__(cls) -> Anything:
        return super().__new__(cls, "x")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return Anything()

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        return Anything()

    def __call__(self, *a: Any, **k: Any) -> Any:
        return Anything()

    def __iter__(self) -> Any:  # type: ignore[override]
        return iter([Anything()])

    def __len__(self) -> int:
        return 1

    def __bool__(self) -> bool:
        return True

    def __contains__(self, other: object) -> bool:  # type: ignore[override]
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Anything)

    def __hash__(self) -> int:
        return 1

    def __lt__(self, other: object) -> bool:
        return False

    __gt__ = __ge__ = __le__ = lambda self, other: True  # type: ignore[assignment]

    def __add__(self, other: object) -> Any:  # type: ignore[override]
        return Anything()

    __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __floordiv__ = __mod__ = __add__  # type: ignore[assignment]

    def __int__(self) -> int:
        return 1

    def __index__(self) -> int:
        return 1

    def __format__(self, spec: str) -> str:
        return "x"


def _names(template: str, seen: set[str] | None = None) -> set[str]:
    """The context names a template (and what it extends or includes) uses."""
    seen = seen if seen is not None else set()
    tree = environment().parse((TEMPLATES / template).read_text(encoding="utf-8"))
    out = set(meta.find_undeclared_variables(tree))
    for ref in meta.find_referenced_templates(tree):
        if ref and ref not in seen:
            seen.add(ref)
            out |= _names(ref, seen)
    return out


def _row(template: str, n: int = 0) -> OutboxMessage:
    context = {k: Anything() for k in _names(f"{template}.txt.j2") | _names(f"{template}.html.j2")}
    subject, text, html = render(template, context)
    return OutboxMessage(
        id=n,
        idempotency_key=f"risk:{n}:k:{template}",
        kind="risk",
        item_id=n,
        template=template,
        category="letter",
        subject=f"{subject} ({template})",
        body_text=text,
        body_html=html,
        to=[PERSON],
        cc=[],
    )


def _parse(msg: EmailMessage) -> EmailMessage:
    return email.message_from_bytes(bytes(msg), policy=email.policy.default)  # type: ignore[return-value]


def one_document(html: str) -> Any:
    """Parse with html5lib; fail unless it is one clean document. Returns the tree."""
    parser = html5lib.HTMLParser(namespaceHTMLElements=False)
    tree = parser.parse(html)
    assert parser.errors == [], parser.errors[:5]
    assert len(re.findall(r"<!doctype", html, re.I)) == 1
    for tag in ("html", "head", "body"):
        assert len(re.findall(rf"<{tag}\b", html, re.I)) == 1, tag
    return tree


KINDS = template_names()


def test_there_are_letter_kinds_to_check() -> None:
    assert len(KINDS) > 60


@pytest.mark.parametrize("template", KINDS)
def test_every_letter_kinds_html_part_is_one_document(template: str) -> None:
    row = _row(template)
    received = _parse(build_letter(row, DEFAULT_SENDER, CLOCK))
    part = received.get_body(("html",))
    assert part is not None
    one_document(part.get_content())
    assert str(received["Subject"]) == row.subject


@pytest.mark.parametrize("count", [2, len(KINDS)])
def test_a_digest_is_one_document_with_an_introduction_and_a_heading_per_item(count: int) -> None:
    rows = [_row(t, n) for n, t in enumerate(KINDS[:count], 1)]
    for r in rows:
        r.category = "reminder"
    received = _parse(build_digest(rows, DEFAULT_SENDER, CLOCK))
    assert str(received["Subject"]) == f"peerwatch: {count} items need your attention"
    part = received.get_body(("html",))
    assert part is not None
    tree = one_document(part.get_content())
    body = tree.find("body")
    text = " ".join("".join(body.itertext()).split())
    assert f"Dear {PERSON['name']}," in text and f"{count} items need your attention" in text
    headings = [" ".join("".join(h.itertext()).split()) for h in tree.iter("h2")]
    assert headings == [f"{n}. {r.subject}" for n, r in enumerate(rows, 1)]
    plain = received.get_body(("plain",))
    assert plain is not None and f"{count} items need your attention." in plain.get_content()


SERVICES = [
    "Midland Royal Major Trauma Centre",
    "Severnside Trauma Unit",
    "Ysbyty Gwynedd Uned Trawma",
    "Ospidéal Ollscoile Luimnigh Aonad Tráma",
    "Bệnh viện Chợ Rẫy Trung tâm Chấn thương",
    "Łódź Wiśniewski Centrum Urazowe",
]


@pytest.mark.parametrize("service", SERVICES)
def test_subjects_never_come_back_with_a_leading_space(service: str) -> None:
    """Every length from short to over two lines, across the window (70-77) where ``email``'s
    folder used to put the whole subject on a continuation line."""
    for pad in range(0, 90):
        subject = (
            f"Response overdue: serious concern SC-{pad} ({service[: max(1, pad)]}), please respond by Wed 20 Jan 2027"[
                : 30 + pad
            ]
        )
        subject = subject.strip()
        row = _row("chase", pad)
        row.subject = subject
        raw = bytes(build_letter(row, DEFAULT_SENDER, CLOCK))
        got = str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"])
        assert got == subject, (subject, raw.split(b"\n\n")[0])
        assert all(len(line) <= 78 for line in raw.split(b"\n\n")[0].split(b"\n"))


WORDS = st.text(
    alphabet=st.sampled_from(
        list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;()-'&/=?\"")
        + list("ŁłśćźżąęóńĆŚŻŹÓáéíúàâêôơưđĐăẫệữŵŷŴŶ")
    ),
    min_size=1,
    max_size=45,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(WORDS, min_size=1, max_size=18))
def test_any_subject_comes_back_from_the_parser_as_it_was(words: list[str]) -> None:
    subject = " ".join(words)
    row = _row("chase")
    row.subject = subject
    raw = bytes(build_letter(row, DEFAULT_SENDER, CLOCK))
    head = raw.split(b"\n\n")[0]
    assert str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"]) == subject, head
    assert all(len(line) <= 78 for line in head.split(b"\n")), head
