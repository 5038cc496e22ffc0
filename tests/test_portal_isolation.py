"""Trust isolation, as a generated matrix (issue 16, Tests): two Trusts of the same network, A
and B (so the network's scope does not hide B from A's staff: the Trust's scope must), each with
two perinatal services ("1": maternity, "2": neonatal) holding the same things (a risk answered
with a file and one awaiting its response, their letters, a visit and its report with an
accuracy point and its evidence, an action plan with an action evidenced by a file, a
self-assessment, a board review with its measure alert) and the Trust's annual report with a
version received.

Every route of ``create_app()`` with an id, token or code in its path (enumerated: a new one
without a fill value fails ``test_every_id_route_has_a_fill_value``) is asked by Trust A's people:

- ``lead``: the Service Lead of A1 (granted from its contact, in the service's scope);
- ``ceo``: the Chief Executive of A (from its contact, in the Trust's scope);
- ``commissioner``: the Responsible Commissioner of A1 only.

With their own things (A1; the Chief Executive also A2) each gets what the role allows
(``OWN``: 200 or 303, a form's own refusal, or the role's refusal written below). With another's
(B1 and B2 for all; A2 for the lead and the commissioner, whose grant is A1's) the answer is 404,
as for a missing id, or the very refusal the route gives the role with its own things (the route
refuses the role whatever the id: the same status for the own id, the other's id and a missing
one). No body ever holds a string of the other's things (each carries its place's mark).

Two kinds of path value are not a Trust's: a network's code (the other one is a network Trust A
is not in) and a capability token (an invitation link, a calendar feed's token), which opens
its page to whoever holds it: there, the signed-in session must add nothing (the same status as
nobody signed in holding the same token).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from models import Organisation, Reviewer
from states.clock import SystemClock, local_date
from states.principal import Principal
from tests import support_accounts
from tests.factories import MRH
from tests.support_portal_world import (
    Kit,
    api_token,
    build_kit,
    contact_of,
    from_contact,
    live_invitation,
    load_standards,
    module_database,
    new_service,
    reference,
    sign_in,
    staff_accounts,
    trust_submission,
)
from tests.support_reports import fire, report_of_visit
from tests.test_web_matrix import routes_cache as routes
from web.app import create_app

with warnings.catch_warnings():  # starlette asks for httpx2 on import; httpx 0.28 works the same here
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

TRUST_B_SERVICE = "Severnside Trauma Unit"  # Severnside NHS Foundation Trust: network WMTN, as Midland Royal
USERS = ("lead", "ceo", "commissioner")
PLACES = ("A1", "A2", "B1", "B2")
MARKS = {p: f"mk{p}zz" for p in PLACES}
MISSING = "987654321"  # an id no row has
DRAFT_ONLY = "Draft-only finding: no consultant-led handover"


@dataclass
class User:
    principal: Principal
    cookie: str
    csrf: str
    api: str  # an API token
    feed: str  # a calendar feed token
    spare: dict[str, int]  # place -> a token of its own to revoke there (not the API one)


@dataclass
class World:
    kits: dict[str, Kit]
    users: dict[str, User]
    other_user: dict[str, int]  # place -> an account of that place (its service lead)
    other_token: dict[str, int]  # place -> an API token id of that account
    feed: dict[str, str]  # place -> a feed token of that place's service lead
    invitation: dict[str, str]  # place -> a live invitation link's token
    reviewer: dict[str, int]  # Trust -> a reviewer it employs
    app: Any
    today: str


def _org(db: Any, name: str) -> int:
    with Session(db) as s:
        row = s.exec(select(Organisation).where(Organisation.name == name)).one()
        assert row.id is not None
        return row.id


def _reviewer(db: Any, name: str) -> int:
    with Session(db) as s:
        found = s.exec(select(Reviewer.id).where(Reviewer.name == name)).one()
        return int(found)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with module_database(tmp_path_factory.mktemp("isolation")) as (url, db):
        services = reference(db)
        nm, office = staff_accounts(db)
        load_standards(db, office, "Maternity", "Neonatal")
        like = {"A": services[MRH], "B": services[TRUST_B_SERVICE]}
        svc = {
            p: new_service(db, f"{'Maternity' if p[1] == '1' else 'Neonatal'} service {MARKS[p]}",
                           "Maternity" if p[1] == "1" else "Neonatal", like[p[0]], MARKS[p])
            for p in PLACES
        }  # fmt: skip
        leads = {
            p: from_contact(db, contact_of(db, "service-lead", service_id=svc[p]), "service", svc[p]) for p in PLACES
        }
        kits = {p: build_kit(db, svc[p], MARKS[p], leads[p], nm, office, perinatal=True) for p in PLACES}
        orgs = {t: kits[f"{t}1"].organisation for t in "AB"}
        ceos = {t: from_contact(db, contact_of(db, "chief-executive", organisation_id=orgs[t]), "organisation", orgs[t])
                for t in "AB"}  # fmt: skip
        for t in "AB":
            trust_submission(db, kits[f"{t}1"], ceos[t], office)
            for key in ("submission", "submission_version"):  # one Trust-wide document: both services name it
                kits[f"{t}2"].ids[key] = kits[f"{t}1"].ids[key]
        commissioner = support_accounts.account(
            db, "Cass Commissioner", ("responsible-commissioner",), scope="service", scope_id=svc["A1"]
        )
        users = {}
        for name, p in (("lead", leads["A1"]), ("ceo", ceos["A"]), ("commissioner", commissioner)):
            cookie, csrf = sign_in(db, p)
            spare = {place: api_token(db, p)[0] for place in PLACES}
            users[name] = User(p, cookie, csrf, api_token(db, p)[1], api_token(db, p, "feed")[1], spare)
        with Session(db, expire_on_commit=False) as s:  # a report of A1 still being drafted by the network
            day = local_date(SystemClock().now()) - timedelta(days=14)
            _, draft = report_of_visit(s, {MRH: svc["A1"]}, day)
            fire(s, draft.id, "add_standard", day, ref="1.1", descriptor=DRAFT_ONLY, status="Unmet")  # type: ignore[arg-type]
            kits["A1"].ids["draft_report"] = draft.id  # type: ignore[assignment]
        invitation = {}
        for p in PLACES:
            invitation[p] = f"pwi_matrix_{MARKS[p]}_invitation_token_0123456789"
            live_invitation(db, office, contact_of(db, "lead-doctor", service_id=svc[p]), invitation[p])
        yield World(
            kits=kits,
            users=users,
            other_user={p: leads[p].user_id for p in PLACES},
            other_token={p: api_token(db, leads[p])[0] for p in PLACES},
            feed={p: api_token(db, leads[p], "feed")[1] for p in PLACES},
            invitation=invitation,
            reviewer={"A": _reviewer(db, "Dr Felix Okoro"), "B": _reviewer(db, "Ms Ada Lindqvist")},
            app=create_app(url),
            today=local_date(SystemClock().now()).isoformat(),
        )


# ------------------------------------------------------------------------ filling the paths

# The path parameters that name no row (a kind, a step, a decision): a route with only these is
# not asked (tests/test_web_matrix.py asks it).
NOT_IDS = frozenset({"kind", "trigger", "decision", "action"})
# A capability token: whoever holds it opens the page, signed in or not.
CAPABILITY = frozenset({"token"})
# Item pages: each kind of the place's things.
ITEM_KINDS = {"risk": "risk", "visit": "visit", "report": "report", "action_plan": "plan",
              "selfassessment": "selfassessment", "submission": "submission"}  # fmt: skip


def _params(path: str) -> list[str]:
    return [part.split("}")[0] for part in path.split("{")[1:]]


def fills(world: World, user: str, place: str) -> dict[str, Callable[[str], str]]:
    """Each path parameter's value for ``place``'s things, asked by ``user`` (a function of the path)."""
    k = world.kits[place].ids
    trust = place[0]
    own = _owns(user, place)
    return {
        "item_id": lambda path: "",  # filled with the kind (``urls``)
        "message_id": lambda path: str(k["letter"]),
        "index": lambda path: "0",
        "contact_id": lambda path: str(k["contact"]),
        "change_id": lambda path: MISSING,  # no contact change waits in this world: the same for every place
        "reviewer_id": lambda path: str(world.reviewer[trust]),
        "user_id": lambda path: str(world.other_user[place]),
        "token_id": lambda path: str(world.users[user].spare[place] if own else world.other_token[place]),
        # a network's code: B's is a network Trust A is not in; a feed's, the network its token's owner is in
        "code": lambda path: "WMTN" if trust == "A" or path.startswith("/feeds/") else "CMMTN",
        "token": lambda path: _token(world, user, place, path),
        "service_id": lambda path: str(world.kits[place].service),
        "visit_id": lambda path: str(k["visit"]),
        "report_id": lambda path: str(k["report"]),
        "risk_id": lambda path: str(k["risk_waiting"] if path.endswith("/respond") else k["risk"]),
        "upload_id": lambda path: str(k["upload_response"]),
        "plan_id": lambda path: str(k["plan"]),
        "action_id": lambda path: str(k["action"]),
        "milestone_id": lambda path: str(k["milestone"]),
        "assessment_id": lambda path: str(k["selfassessment"]),
        "submission_id": lambda path: str(k["submission"]),
        "version": lambda path: str(k["submission_version"]),
        "alert_id": lambda path: str(k["alert"]),
    }


def _token(world: World, user: str, place: str, path: str) -> str:
    if path.startswith("/invitation/"):
        return world.invitation[place]
    return world.users[user].feed if _owns(user, place) else world.feed[place]


def id_routes() -> list[tuple[str, str]]:
    return [(m, p) for m, p in routes() if set(_params(p)) - NOT_IDS]


def urls(world: World, user: str, place: str, method: str, path: str) -> list[str]:
    """The route's addresses for ``place``'s things: an item page for each kind it has."""
    values = fills(world, user, place)
    k = world.kits[place].ids
    if "{kind}" in path and "{item_id}" in path:
        if "/letters/" in path:
            pairs = [("risk", k["risk_waiting"])]
        elif "/act/" in path or path.endswith("/fire"):
            pairs = [("report", k["report"])]
        else:
            pairs = [(kind, k[key]) for kind, key in ITEM_KINDS.items()]
    else:
        pairs = [("", 0)]
    out = []
    for kind, item in pairs:
        url = path.replace("{kind}", kind).replace("{item_id}", str(item))
        url = url.replace("{trigger}", _trigger(path)).replace("{decision}", "confirm")
        url = url.replace("{action}", "retire" if "/reviewers/" in path else "disable")
        for name in _params(url):
            url = url.replace("{" + name + "}", values[name](path))
        out.append(url)
    return out


TRIGGERS = {"/visits/": "add_panel_member", "/reports/{report_id}/draft": "add_standard", "/plans/": "record_update"}


def _trigger(path: str) -> str:
    """A step the route is about: the accuracy point on a report, where no other is named."""
    return next((t for prefix, t in TRIGGERS.items() if path.startswith(prefix)), "record_inaccuracy")


def test_every_id_route_has_a_fill_value() -> None:
    missing = []
    for method, path in id_routes():
        names = set(_params(path)) - NOT_IDS
        unknown = names - FILL_NAMES
        if unknown:
            missing.append(f"{method} {path}: {', '.join(sorted(unknown))}")
    assert not missing, "no value for these path parameters: add them to fills() in this file\n" + "\n".join(missing)


FILL_NAMES = frozenset({"item_id", "message_id", "contact_id", "change_id", "reviewer_id", "user_id", "token_id",
                        "code", "token", "service_id", "visit_id", "report_id", "risk_id", "upload_id", "plan_id",
                        "action_id", "milestone_id", "assessment_id", "submission_id", "version", "alert_id",
                        "index"})  # fmt: skip


# ------------------------------------------------------------------------ asking


# What each of Trust A's people gets with their own things (A1; the Chief Executive also A2), where
# it is not the page (200) or, for a form posted empty, the form's own refusal (400, 409, 422) or
# its redirect (303). ``ALL`` is for the three.
ALL = "*"
OWN: dict[tuple[str, str], dict[str, frozenset[int]]] = {
    # administrators' pages; a contact change none is waiting for
    ("GET", "/admin/users/{user_id}"): {ALL: frozenset({403})},
    # the world's letters have no attachment: not found, for one's own as for another's
    ("GET", "/items/{kind}/{item_id}/letters/{message_id}/attachments/{index}"): {ALL: frozenset({404})},
    ("POST", "/admin/users/{user_id}/{action}"): {ALL: frozenset({403})},
    # contacts and reviewers are the network's pages (states.services.web_manage.require_network_side):
    # a Trust's people are refused whatever the id
    ("POST", "/contacts/changes/{change_id}/{decision}"): {ALL: frozenset({403})},
    ("GET", "/contacts/{contact_id}"): {ALL: frozenset({403})},
    ("POST", "/contacts/{contact_id}/invite"): {ALL: frozenset({403})},
    ("POST", "/contacts/{contact_id}/edit"): {ALL: frozenset({403})},
    ("POST", "/contacts/{contact_id}/retire"): {ALL: frozenset({403})},
    ("POST", "/reviewers/{reviewer_id}/{action}"): {ALL: frozenset({403})},
    # the network's dashboard and feeds, the outbox and the measure alerts are the network staff's
    ("GET", "/dashboard/{code}"): {ALL: frozenset({403, 404})},
    ("GET", "/feeds/{token}/{code}.ics"): {ALL: frozenset({401, 403, 404})},
    ("POST", "/outbox/{message_id}/retry"): {ALL: frozenset({403, 404})},
    ("POST", "/outbox/{message_id}/settle"): {ALL: frozenset({403, 404})},
    ("POST", "/perinatal/alerts/{alert_id}/raise"): {ALL: frozenset({403})},
    ("POST", "/perinatal/alerts/{alert_id}/dismiss"): {ALL: frozenset({403})},
    # the staff's workspaces on an item (the panel, the drafting, the accuracy decisions): the
    # Trust has its portal pages (states/views/item.py offers these to staff only)
    ("GET", "/visits/{visit_id}/panel"): {ALL: frozenset({403})},
    ("POST", "/visits/{visit_id}/panel/{trigger}"): {ALL: frozenset({403, 422})},
    ("GET", "/reports/{report_id}/draft"): {ALL: frozenset({403})},
    ("POST", "/reports/{report_id}/draft/{trigger}"): {ALL: frozenset({403, 422})},
    ("GET", "/reports/{report_id}/accuracy"): {ALL: frozenset({403})},
    ("POST", "/reports/{report_id}/accuracy/{trigger}"): {ALL: frozenset({403, 422})},
    # the service's own steps: a commissioner sees them, does not take them
    ("GET", "/items/{kind}/{item_id}/act/{trigger}"): {"commissioner": frozenset({403})},
    ("POST", "/items/{kind}/{item_id}/act/{trigger}"): {"commissioner": frozenset({403, 422})},
    ("GET", "/risks/{risk_id}/respond"): {"commissioner": frozenset({403})},
    ("POST", "/risks/{risk_id}/respond"): {"commissioner": frozenset({403})},
    ("GET", "/portal/perinatal/{service_id}/review"): {"commissioner": frozenset({403})},
    # the self-assessment is returned by the service's Leads and Managers
    ("GET", "/portal/selfassessments/{assessment_id}/online"): {"ceo": frozenset({403}),
                                                                "commissioner": frozenset({403})},
    ("POST", "/portal/selfassessments/{assessment_id}/online"): {"ceo": frozenset({403}),
                                                                 "commissioner": frozenset({403})},
    # the Trust's documents are the Trust's (its scope): a service's grant does not reach them
    ("GET", "/portal/submissions/{submission_id}"): {"ceo": frozenset({200}), ALL: frozenset({404})},
    ("POST", "/portal/submissions/{submission_id}"): {"ceo": frozenset({422}), ALL: frozenset({404})},
    ("GET", "/portal/submissions/{submission_id}/files/{version}"): {"ceo": frozenset({200}), ALL: frozenset({404})},
    # an invitation link posted without its form's cookie (the double-submit CSRF check)
    ("POST", "/invitation/{token}"): {ALL: frozenset({403})},
    # the API's fire with an empty body: refused for what it lacks
    ("POST", "/api/v1/items/{kind}/{item_id}/fire"): {ALL: frozenset({400, 403, 409, 422})},
    # the API's working pages on an item are the network staff's (the portal has the Trust's); its
    # outbox, contacts, reviewers and accounts are the network's and the administrators'
    ("GET", "/api/v1/visits/{visit_id}/panel"): {ALL: frozenset({403})},
    ("GET", "/api/v1/reports/{report_id}/draft"): {ALL: frozenset({403})},
    ("GET", "/api/v1/reports/{report_id}/accuracy"): {ALL: frozenset({403})},
    ("POST", "/api/v1/outbox/{message_id}/retry"): {ALL: frozenset({403})},
    ("POST", "/api/v1/outbox/{message_id}/settle"): {ALL: frozenset({403})},
    ("POST", "/api/v1/contacts/{contact_id}/edit"): {ALL: frozenset({403})},
    ("POST", "/api/v1/contacts/{contact_id}/retire"): {ALL: frozenset({403})},
    ("POST", "/api/v1/contacts/{contact_id}/invite"): {ALL: frozenset({403})},
    ("POST", "/api/v1/contacts/changes/{change_id}/confirm"): {ALL: frozenset({403})},
    ("POST", "/api/v1/contacts/changes/{change_id}/withdraw"): {ALL: frozenset({403})},
    ("POST", "/api/v1/reviewers/{reviewer_id}/edit"): {ALL: frozenset({403})},
    ("POST", "/api/v1/reviewers/{reviewer_id}/retire"): {ALL: frozenset({403})},
    ("GET", "/api/v1/users/{user_id}"): {ALL: frozenset({403})},
    ("POST", "/api/v1/users/{user_id}/disable"): {ALL: frozenset({403})},
    ("POST", "/api/v1/users/{user_id}/enable"): {ALL: frozenset({403})},
}  # fmt: skip
# An item page of the Trust's document: the Chief Executive's only (a service's grant does not reach it).
TRUST_WIDE_KINDS = frozenset({"submission"})
OK_GET = frozenset({200})
OK_POST = frozenset({303, 400, 409, 422})
REFUSALS = frozenset({400, 401, 403, 422})


def _owns(user: str, place: str, path: str = "") -> bool:
    """Whether ``place``'s things are ``user``'s own; a network's code is Trust A's for both its services."""
    if path and set(_params(path)) - NOT_IDS == {"code"}:
        return place[0] == "A"
    return place == "A1" or (user == "ceo" and place == "A2")


def own_expected(user: str, method: str, path: str, url: str) -> frozenset[int]:
    rule = OWN.get((method, path), {})
    if user in rule or ALL in rule:
        return rule.get(user, rule.get(ALL, frozenset()))
    kind = url.split("/")[-2] if path.endswith("/{kind}/{item_id}") else ""
    if kind in TRUST_WIDE_KINDS:
        return frozenset({200}) if user == "ceo" else frozenset({404})
    return OK_GET if method == "GET" else OK_POST


# Forms filled in as the service would (files too), posted only with another's ids: they reach the
# lookup an empty form may not (nothing of another Trust's may be stored, nor its existence told).


def full_form(path: str, today: str) -> tuple[dict[str, str], dict[str, Any] | None]:
    pdf = ("evidence.pdf", b"%PDF-1.4\n% isolation\n", "application/pdf")
    forms: dict[str, tuple[dict[str, str], dict[str, Any] | None]] = {
        "/portal/perinatal/{service_id}/review": (
            {"month": today[:7], "reviewed_on": today, "m-training_compliance_pct": "95"}, None),
        "/risks/{risk_id}/respond": ({"text": "Our response", "version": "1"}, {"files": pdf}),
        "/portal/reports/{report_id}/accuracy": ({"text": "The rota shows a consultant on site that morning"},
                                                 {"files": pdf}),
        "/portal/reports/{report_id}/appeal": ({"statement": "We appeal", "grounds": "compliance"}, {"files": pdf}),
        "/portal/submissions/{submission_id}": ({}, {"file": pdf}),
        "/portal/selfassessments/{assessment_id}/upload": ({}, {"spreadsheet": ("return.xlsx", b"PK\x03\x04x",
                                                                                "application/octet-stream")}),
        "/services/{service_id}/plans": ({"programme_year": "2027"}, None),
        "/plans/{plan_id}/actions": ({"text": "Another action", "owner_name": "Dr Who", "version": "9"}, None),
        "/plans/{plan_id}/steps/{trigger}": ({"note": "an update", "version": "9"}, None),
        "/items/{kind}/{item_id}/act/{trigger}": ({"text": "The rota shows a consultant on site that morning"}, None),
        "/perinatal/alerts/{alert_id}/dismiss": ({"reason": "within tolerance"}, None),
        "/contacts/{contact_id}/invite": ({}, None),
    }  # fmt: skip
    return forms.get(path, ({}, None))


# ------------------------------------------------------------------------ asking


def _client(world: World, user: str | None) -> TestClient:
    client = TestClient(world.app, follow_redirects=False, raise_server_exceptions=False)
    if user is not None:
        client.cookies.set("peerwatch_session", world.users[user].cookie)
    return client


def _ask(
    client: TestClient, world: World, user: str | None, method: str, url: str, path: str, full: bool = False
) -> Any:
    api = url.startswith("/api/")
    headers = {"Authorization": f"Bearer {world.users[user].api}"} if api and user else {}
    if method == "GET":
        return client.get(url, headers=headers)
    if api:
        return client.post(url, json={}, headers=headers)
    data, files = full_form(path, world.today) if full else ({}, None)
    data = {**data, "csrf_token": world.users[user].csrf if user else ""}
    return client.post(url, data=data, files=files, headers=headers)


def _missing(url: str, path: str, world: World, user: str) -> str:
    """The route's address with its first id replaced by one no row has."""
    values = fills(world, user, "A1")
    first = next(n for n in _params(path) if n not in NOT_IDS and n not in CAPABILITY)
    out = path.replace("{" + first + "}", MISSING)
    if "{kind}" in out:
        out = out.replace("{kind}", url.split("/")[3 if url.startswith("/api/") else 2])
    out = out.replace("{trigger}", _trigger(path)).replace("{decision}", "confirm")
    out = out.replace("{action}", "retire" if "/reviewers/" in path else "disable")
    for name in _params(out):
        out = out.replace("{" + name + "}", values[name](path))
    return out


def _marks(text: str, places: list[str]) -> list[str]:
    low = text.lower()
    return [p for p in places if MARKS[p].lower() in low]


def test_trust_a_gets_404_for_trust_b_and_what_its_role_allows_for_its_own(world: World) -> None:
    """The generated matrix: every id route x Trust A's three people x the four places' things."""
    assert set(fills(world, "lead", "A1")) == FILL_NAMES, "FILL_NAMES lists the parameters fills() fills"
    found: list[str] = []
    table: list[str] = []
    counted = 0
    for user in USERS:
        others = [p for p in PLACES if not _owns(user, p)]
        with _client(world, user) as client, _client(world, None) as anon:
            for method, path in id_routes():
                capability = bool(set(_params(path)) & CAPABILITY)
                for place in PLACES:
                    own = _owns(user, place, path)
                    for url in urls(world, user, place, method, path):
                        counted += 1
                        r = _ask(client, world, user, method, url, path, full=not own)
                        row = f"{user:12} {place} {method:4} {url:62} {r.status_code}"
                        leaked = [] if capability else _marks(r.text, others)
                        if leaked:
                            found.append(f"{row}: the body holds {', '.join(leaked)}'s strings")
                        if r.status_code >= 500:
                            found.append(f"{row}: a server error")
                        if own:
                            want = own_expected(user, method, path, url)
                            if r.status_code not in want:
                                found.append(f"{row}: own things, expected {sorted(want)}")
                        elif capability:
                            nobody = _ask(anon, world, None, method, url, path, full=True)
                            if r.status_code != nobody.status_code:
                                found.append(f"{row}: a capability link, nobody signed in gets {nobody.status_code}")
                        elif r.status_code != 404:
                            mine = _ask(client, world, user, method, urls(world, user, "A1", method, path)[0], path)
                            missing = _ask(client, world, user, method, _missing(url, path, world, user), path, True)
                            same = r.status_code == mine.status_code == missing.status_code
                            if not (same and r.status_code in REFUSALS):
                                found.append(f"{row}: expected 404 (own things {mine.status_code}, a missing id "
                                             f"{missing.status_code}): {_reason(r.text)}")  # fmt: skip
                        table.append(row)
    print("\n".join(table))
    with _client(world, "ceo") as client:  # the strings searched for are on the pages of who may see them
        a2 = world.kits["A2"].ids
        assert f"plan-{MARKS['A2']}.pdf" in client.get(f"/risks/{a2['risk']}/responses").text
        assert f"Action {MARKS['A2']}" in client.get(f"/plans/{a2['plan']}").text
    assert counted > 400, counted  # the matrix is generated: a broken enumeration would ask little
    assert not found, f"{len(found)} of {counted} requests outside the matrix:\n" + "\n".join(found)


def _reason(text: str) -> str:
    """The page's error line, for the report."""
    for marker in ('<a href="#', '"detail":"'):
        if marker in text:
            rest = text.split(marker, 1)[1]
            return rest.split(">", 1)[-1].split("<", 1)[0][:160] if marker.startswith("<a") else rest[:160]
    return text[:120].replace("\n", " ")


# Pages without an id (lists, the portal, the work page): A's people never see B's strings there.
def test_no_page_without_an_id_shows_trust_a_anything_of_trust_b(world: World) -> None:
    found = []
    for user in USERS:
        others = [p for p in PLACES if not _owns(user, p)]
        with _client(world, user) as client:
            for method, path in routes():
                if method != "GET" or ("{" in path and path != "/items/{kind}"):
                    continue
                for url in [path.replace("{kind}", k) for k in ITEM_KINDS] if "{kind}" in path else [path]:
                    r = client.get(url, headers={"Authorization": f"Bearer {world.users[user].api}"}
                                   if url.startswith("/api/") else {})  # fmt: skip
                    leaked = _marks(r.text, others)
                    if leaked or r.status_code >= 500:
                        found.append(f"{user:12} GET {url}: {r.status_code}, holds {leaked}")
    assert not found, "\n".join(found)


def test_a_report_being_drafted_shows_the_trust_none_of_its_findings(world: World) -> None:
    """Until the network sends the draft for the factual accuracy check, its findings are the
    network's (the portal's accuracy page shows them from then): no page the Trust's people may
    open on the report shows them, nor the API."""
    rid = world.kits["A1"].ids["draft_report"]
    pages = [f"/items/report/{rid}", f"/api/v1/items/report/{rid}", f"/reports/{rid}/draft", f"/reports/{rid}/accuracy",
             f"/portal/reports/{rid}/accuracy", f"/portal/reports/{rid}/appeal"]  # fmt: skip
    shown = []
    for user in USERS:
        with _client(world, user) as client:
            for url in pages:
                r = _ask(client, world, user, "GET", url, url)
                if DRAFT_ONLY in r.text:
                    shown.append(f"{user:12} GET {url}: {r.status_code}")
    with _client(world, "ceo") as client:  # the check sees what the network's draft holds
        assert client.get(f"/portal/reports/{rid}/accuracy").status_code == 200
    assert not shown, "a draft's finding shown to the Trust before it is sent to it:\n" + "\n".join(shown)
