"""Opening a letter's attachments from an item's page (GET
/items/{kind}/{id}/letters/{message_id}/attachments/{index}): the file as it was sent, to exactly
who may read the letter (the network's people where the item sits; a Trust's people only the
letters to them; another network nobody: the same 404 as a missing file), always a download
(Content-Disposition attachment, a hostile file name made safe), nosniff and never cached."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import Risk
from models.tables import Attachment, Network, Organisation, OutboxMessage, Service
from states.roles import NETWORK_MANAGER
from tests.factories import MRH
from tests.support_web import client_for, signed_in

PDF = b"%PDF-1.4 the report as sent\n"
HOSTILE = 'report "final"\r\nSet-Cookie: x=1;.pdf'


def _ids(db: Engine, code: str) -> int:
    with Session(db) as s:
        return int(s.exec(select(Network.id).where(Network.code == code)).one())  # type: ignore[arg-type]


def _org_of(db: Engine, service: str) -> int:
    with Session(db) as s:
        svc = s.exec(select(Service).where(Service.name == service)).one()
        org = s.get(Organisation, svc.organisation_id)
        assert org is not None and org.id is not None
        return org.id


def _letters(db: Engine, risk_id: int) -> dict[str, int]:
    """Two letters about the risk: one to the Trust (two files, one not written yet), one the
    network's own (one file)."""
    to_trust = [{"name": "Sam Lead", "role": "service-lead", "email": "sam@trust.nhs.example"}]
    to_network = [{"name": "Nia Manager", "role": "network-manager", "email": "nia@network.nhs.example"}]
    with Session(db) as s:
        out = {}
        for name, to in (("trust", to_trust), ("own", to_network)):
            m = OutboxMessage(idempotency_key=f"risk:{risk_id}:{name}", kind="risk", item_id=risk_id,
                              template="formal_notification", to=to, subject=f"Letter {name}", body_text="sent")  # fmt: skip
            s.add(m)
            s.flush()
            assert m.id is not None
            out[name] = m.id
        s.add(Attachment(idempotency_key=f"risk:{risk_id}:trust", filename=HOSTILE, content_type="application/pdf",
                         data=PDF))  # fmt: skip
        s.add(Attachment(idempotency_key=f"risk:{risk_id}:trust", filename="later.xlsx",
                         content_type="application/vnd.ms-excel", data=None, renderer="selfassessment_xlsx"))  # fmt: skip
        s.add(Attachment(idempotency_key=f"risk:{risk_id}:own", filename="visit.ics",
                         content_type="text/calendar\r\nX-Evil: 1", data=b"BEGIN:VCALENDAR"))  # fmt: skip
        s.commit()
    return out


@pytest.fixture
def world(db: Engine, services: dict[str, int], raise_risk: Callable[..., Risk]) -> dict[str, int]:
    risk = raise_risk("SC")
    assert risk.id is not None
    return {"risk": risk.id, **_letters(db, risk.id)}


def _url(w: dict[str, int], letter: str, index: int) -> str:
    return f"/items/risk/{w['risk']}/letters/{w[letter]}/attachments/{index}"


def test_the_network_opens_a_file_as_sent_as_a_safe_download(db_url: str, db: Engine, world: dict[str, int]) -> None:
    nm, _ = signed_in(db_url, db, "Nia Manager", (NETWORK_MANAGER,), scope="network", scope_id=_ids(db, "WMTN"))
    r = nm.get(_url(world, "trust", 0))
    assert r.status_code == 200 and r.content == PDF
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "no-store" in r.headers["cache-control"]
    cd = r.headers["content-disposition"]
    assert cd.startswith("attachment; ") and "\r" not in cd and "\n" not in cd
    plain = cd.split('filename="', 1)[1].split('"', 1)[0]
    assert '"' not in plain and "set-cookie" not in r.headers
    assert "filename*=UTF-8''report%20final" in cd  # the name in full, percent-encoded
    r = nm.get(_url(world, "own", 0))  # the network's own letter, to the network
    assert r.status_code == 200 and r.content == b"BEGIN:VCALENDAR"
    assert r.headers["content-type"] == "application/octet-stream"  # a stored type that is not a plain type/subtype
    # the item's page and the letter's page link to the written files, not to the one not written yet
    page = nm.get(f"/items/risk/{world['risk']}").text
    assert f'href="{_url(world, "trust", 0)}"' in page and f'href="{_url(world, "own", 0)}"' in page
    assert _url(world, "trust", 1) not in page and "later.xlsx" in page and "made when the letter is sent" in page
    letter = nm.get(f"/items/risk/{world['risk']}/letters/{world['trust']}").text
    assert f'href="{_url(world, "trust", 0)}"' in letter and _url(world, "trust", 1) not in letter


def test_a_trust_opens_only_the_files_of_letters_to_it(db_url: str, db: Engine, world: dict[str, int]) -> None:
    trust, _ = signed_in(db_url, db, "Sam Lead", ("service-lead",), scope="organisation", scope_id=_org_of(db, MRH))
    assert trust.get(_url(world, "trust", 0)).content == PDF
    r = trust.get(_url(world, "own", 0))  # the network's own mail: as missing
    assert r.status_code == 404 and "BEGIN:VCALENDAR" not in r.text
    assert "visit.ics" not in trust.get(f"/items/risk/{world['risk']}").text


@pytest.mark.parametrize(
    "path",
    [
        "/items/risk/{risk}/letters/{trust}/attachments/1",  # not written yet
        "/items/risk/{risk}/letters/{trust}/attachments/2",  # no such file
        "/items/risk/{risk}/letters/{trust}/attachments/99999999999999999",
        "/items/risk/{risk}/letters/{trust}/attachments/-1",
        "/items/risk/{risk}/letters/{trust}/attachments/%C2%B2",  # a Unicode digit
        "/items/risk/{risk}/letters/999999/attachments/0",
        "/items/risk/999999/letters/{trust}/attachments/0",
        "/items/visit/{risk}/letters/{trust}/attachments/0",  # another kind's id
        "/items/nonsense/{risk}/letters/{trust}/attachments/0",
        "/items/risk/{risk}/letters/x/attachments/0",
    ],
)
def test_anything_else_is_not_found(db_url: str, db: Engine, world: dict[str, int], path: str) -> None:
    nm, _ = signed_in(db_url, db, "Nia Manager", (NETWORK_MANAGER,), scope="network", scope_id=_ids(db, "WMTN"))
    r = nm.get(path.format(**world))
    assert r.status_code == 404, (path, r.status_code)
    assert PDF not in r.content


def test_another_network_and_nobody_signed_in_get_nothing(db_url: str, db: Engine, world: dict[str, int]) -> None:
    other, _ = signed_in(db_url, db, "Bo Elsewhere", (NETWORK_MANAGER,), scope="network", scope_id=_ids(db, "CMMTN"))
    for letter in ("trust", "own"):
        r = other.get(_url(world, letter, 0))
        assert r.status_code == 404 and PDF not in r.content
    r = client_for(db_url).get(_url(world, "trust", 0), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/sign-in?next=")
