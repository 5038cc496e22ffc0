"""The authorisation matrix over every route of the web application: each route of
``create_app()`` (enumerated, so a new route without an entry in ``MATRIX`` fails: add it) is
requested by each role of network A, a Network Manager of network B, and nobody signed in, with
its path filled for network A's items (GET, and POST with the session's CSRF token and an empty
form). The status must be in the set the table allows for that route and role:

- allowed: 200 or 303 (a POST with an empty form may also be refused for what it lacks: 400,
  409 or 422, but never for who is asking);
- forbidden: 403;
- network B's user on network A's item: 404, exactly as a missing one (never A's data);
- signed out: 303 to /sign-in (pages) or 401 (the API, whose credentials are tokens: a session
  cookie is not one);
- never a 500. No response to network B's user contains a title of network A's items.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import Contact, Network, OutboxMessage, OutboxStatus, Reviewer
from models.accounts import User
from states.clock import SystemClock, local_date
from states.roles import ADMINISTRATOR, AUDITOR, NETWORK_MANAGER, NETWORK_OFFICE, OPERATOR, REGIONAL_LEAD
from states.services import accounts, acting, intake, signin
from tests import support_accounts, support_portal_world
from tests.factories import MRH
from tests.support_reports import report_of_visit
from tests.test_api import MERSEY_MTC
from web.app import create_app

with warnings.catch_warnings():  # starlette 1.10 asks for httpx2 on import; httpx 0.28 works the same here
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

PASSWORD = "correct horse battery staple matrix"
# The people asking: each role in network A (an administrator holds the whole installation: it is
# granted no other way), a Network Manager of network B, and nobody.
ROLES: dict[str, tuple[str, str]] = {
    "office": (NETWORK_OFFICE, "WMTN"),
    "manager": (NETWORK_MANAGER, "WMTN"),
    "lead": (REGIONAL_LEAD, "WMTN"),
    "operator": (OPERATOR, "WMTN"),
    "auditor": (AUDITOR, "WMTN"),
    "admin": (ADMINISTRATOR, ""),
    "other": (NETWORK_MANAGER, "CMMTN"),
}
# Trust A's people (the world makes them): the Service Lead of network A's service (MRH), its
# Trust's Chief Executive (granted from the Trust's chief-executive contact, so an appeal resolves)
# and the service's Responsible Commissioner.
TRUST_SIDE = ("trust", "ceo", "commissioner")
ANON = "anon"
EVERYONE = frozenset(ROLES) | frozenset(TRUST_SIDE)
TRUST = frozenset(TRUST_SIDE)
ANSWER = frozenset({"trust", "ceo"})  # the service's own people, who answer for it
NETWORK = frozenset({"office", "manager", "lead"})  # network A's staff who decide (not the operator)
# "other" holds its role in network B: it may use a route that is not about network A's things
# (a scoped route answers it 404 whatever its role).
STAFF = frozenset({"office", "manager", "lead", "operator", "other"})
LEADS = frozenset({"manager", "lead", "other"})
ADMIN = frozenset({"admin"})
# Those who may not act ask first, so what they are refused is not a step already taken.
ORDER = (ANON, "other", "commissioner", "trust", "ceo", "auditor", "admin", "operator", "office", "lead", "manager")

OK_GET = frozenset({200})
OK_POST = frozenset({200, 303, 400, 409, 422})  # reached the handler: an empty form may lack what it needs
REDIRECT = frozenset({303})


@dataclass(frozen=True)
class Rule:
    """Who may use a route: ``who`` get the allowed statuses; the rest 403. ``scoped``: the route
    is about something of network A (an item, a contact, a network's page): network B's user
    gets 404 there (``hidden``), whatever its role. ``kind`` of route: page, api, public, feed."""

    who: frozenset[str] = EVERYONE
    scoped: bool = False
    hidden: frozenset[int] = frozenset({404})
    kind: str = "page"
    denied: frozenset[int] = frozenset({403})  # what the roles not in ``who`` get
    missing: bool = False  # the world has no such thing (yet): 404 for everyone signed in
    per: tuple[tuple[str, frozenset[int]], ...] = ()  # what a role gets, whatever else the rule says


def per(statuses: set[int], *roles: str) -> tuple[tuple[str, frozenset[int]], ...]:
    return tuple((r, frozenset(statuses)) for r in roles)


# The network's staff pages on an item (the panel, the drafting, the accuracy decisions): the
# Trust's people have the portal's pages instead (states/views/item.py offers these to staff).
STAFF_PAGE = per({403}, *TRUST_SIDE)
# The network's own pages (the outbox, contacts and reviewers, creating, the dashboards): the
# Trust's people are refused whatever the id (states.services.web_manage.require_network_side).
NETWORK_PAGE = per({403}, *TRUST_SIDE)
PLAN_REFUSED = frozenset({403, 409, 422})


PUBLIC = Rule(kind="public")
API = Rule(kind="api")
FEED = Rule(kind="feed")

MATRIX: dict[tuple[str, str], Rule] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/api/v1/openapi.json"): PUBLIC,
    ("GET", "/sign-in"): PUBLIC,
    ("POST", "/sign-in"): PUBLIC,
    ("GET", "/sign-in/oidc"): PUBLIC,
    ("GET", "/sign-in/oidc/callback"): PUBLIC,
    ("POST", "/sign-out"): Rule(),
    # the API: a token, never a session cookie (tests/test_api*.py have its roles): API_ROUTES below
    # My work, the lists, an item, acting on it
    ("GET", "/"): Rule(per=per({303}, *TRUST_SIDE)),  # the Trust's people are sent to the portal
    ("GET", "/items/{kind}"): Rule(),
    ("GET", "/items/{kind}/{item_id}"): Rule(who=EVERYONE, scoped=True),
    ("GET", "/items/{kind}/{item_id}/letters/{message_id}"): Rule(who=EVERYONE, scoped=True),
    # the world's letter has no attachment: "not found" to everyone (tests/test_attachments_web.py)
    ("GET", "/items/{kind}/{item_id}/letters/{message_id}/attachments/{index}"): Rule(missing=True),
    ("GET", "/items/{kind}/{item_id}/act/{trigger}"): Rule(who=LEADS, scoped=True),
    ("POST", "/items/{kind}/{item_id}/act/{trigger}"): Rule(who=LEADS, scoped=True),
    # creating
    ("GET", "/create"): Rule(per=NETWORK_PAGE),
    ("GET", "/create/{kind}"): Rule(who=STAFF),
    ("POST", "/create/{kind}"): Rule(who=STAFF),
    # the outbox
    ("GET", "/outbox"): Rule(per=NETWORK_PAGE),
    # a letter about another network's item is the same 404 as a missing one (its existence and
    # state are not told); in scope, a role that may not send it is refused (403)
    ("POST", "/outbox/{message_id}/retry"): Rule(who=STAFF, scoped=True, denied=frozenset({403, 404})),
    # every failed letter in the person's scopes: network B's manager has none to retry
    ("POST", "/outbox/retry-failed"): Rule(who=STAFF),
    # in scope, a letter not in doubt is refused as such (422): nothing changes
    ("POST", "/outbox/{message_id}/settle"): Rule(who=STAFF, scoped=True, denied=frozenset({403, 404, 422})),
    # contacts and reviewers
    ("GET", "/contacts"): Rule(per=NETWORK_PAGE),
    # Contacts and reviewers are reference data: staff and administrators edit them (an
    # auditor is shown the form; its post is refused by the service, the role being read-only).
    # An empty form is refused for what it lacks (422) before the role is asked.
    ("GET", "/contacts/new"): Rule(per=NETWORK_PAGE),
    ("POST", "/contacts/new"): Rule(who=STAFF | ADMIN, denied=frozenset({403, 422}), per=NETWORK_PAGE),
    ("GET", "/contacts/{contact_id}"): Rule(scoped=True, per=NETWORK_PAGE),
    ("POST", "/contacts/{contact_id}/edit"): Rule(
        who=STAFF | ADMIN, scoped=True, denied=frozenset({403, 422}), per=NETWORK_PAGE
    ),
    ("POST", "/contacts/{contact_id}/retire"): Rule(
        who=STAFF | ADMIN, scoped=True, denied=frozenset({403, 422}), per=NETWORK_PAGE
    ),
    # inviting a Trust's contact to the portal (the Service Lead's contact): the network office and leads
    ("POST", "/contacts/{contact_id}/invite"): Rule(who=NETWORK, scoped=True),
    ("POST", "/contacts/changes/{change_id}/{decision}"): Rule(missing=True, per=NETWORK_PAGE),
    ("GET", "/reviewers"): Rule(per=NETWORK_PAGE),
    ("POST", "/reviewers/new"): Rule(who=STAFF | ADMIN, denied=frozenset({403, 422}), per=NETWORK_PAGE),
    ("POST", "/reviewers/{reviewer_id}/{action}"): Rule(
        who=STAFF | ADMIN, scoped=True, denied=frozenset({403, 422}), per=NETWORK_PAGE
    ),
    # administrators; and each person's own tokens
    ("GET", "/admin/users"): Rule(who=ADMIN),
    ("GET", "/admin/users/new"): Rule(who=ADMIN),
    ("POST", "/admin/users/new"): Rule(who=ADMIN),
    ("GET", "/admin/users/{user_id}"): Rule(who=ADMIN),
    ("POST", "/admin/users/{user_id}/{action}"): Rule(who=ADMIN),
    ("GET", "/account"): Rule(),
    ("POST", "/account/password"): Rule(),  # an empty form: refused, nothing changed
    ("POST", "/account/sessions/end-others"): Rule(),
    ("GET", "/account/tokens"): Rule(),
    ("POST", "/account/tokens"): Rule(),
    # someone else's token is "no token N" to all but an administrator (no existence leak)
    ("POST", "/account/tokens/{token_id}/revoke"): Rule(who=ADMIN, denied=frozenset({404})),
    # the dashboard and its feeds (a feed's credential is the token in its address)
    ("GET", "/dashboard"): Rule(per=NETWORK_PAGE),
    ("GET", "/dashboard/{code}"): Rule(scoped=True, hidden=frozenset({403, 404}), per=NETWORK_PAGE),
    ("GET", "/feeds/{token}/{code}.ics"): FEED,
    ("GET", "/feeds/{token}/{code}/services/{service_id}.ics"): FEED,
    # panels, report drafting, factual accuracy
    # the panel's form is read (422 when empty) before the engine asks the role
    ("GET", "/visits/{visit_id}/panel"): Rule(scoped=True, per=STAFF_PAGE),
    ("POST", "/visits/{visit_id}/panel/{trigger}"): Rule(who=STAFF, scoped=True, denied=frozenset({403, 422})),
    ("GET", "/reports/{report_id}/draft"): Rule(scoped=True, per=STAFF_PAGE),
    ("POST", "/reports/{report_id}/draft/{trigger}"): Rule(who=STAFF, scoped=True, denied=frozenset({403, 422})),
    ("GET", "/reports/{report_id}/accuracy"): Rule(scoped=True, per=STAFF_PAGE),
    ("POST", "/reports/{report_id}/accuracy/{trigger}"): Rule(who=STAFF, scoped=True, denied=frozenset({403, 422})),
    # ---- the Trust portal (issue 16)
    # an invitation's link is its own credential (the world's is live): anyone holding it
    ("GET", "/invitation/{token}"): PUBLIC,
    ("POST", "/invitation/{token}"): PUBLIC,
    # what is asked of us; a letter as sent (a queued one of network A's risk); shared learning
    ("GET", "/portal"): Rule(),
    # the portal reads only Trust and commissioner grants: to anyone else a service is not theirs (404)
    ("GET", "/portal/services/{service_id}"): Rule(who=TRUST, scoped=True, denied=frozenset({404})),
    ("GET", "/portal/letters/{message_id}.eml"): Rule(scoped=True),
    ("GET", "/learning"): Rule(),
    ("GET", "/learning/{code}"): Rule(scoped=True, per=per({404}, "admin")),  # a network's members
    # the formal response: the service's own people answer a risk awaiting it; all who see it read them
    ("GET", "/risks/{risk_id}/respond"): Rule(who=ANSWER, scoped=True),
    ("POST", "/risks/{risk_id}/respond"): Rule(who=ANSWER, scoped=True),
    ("GET", "/risks/{risk_id}/responses"): Rule(scoped=True),
    ("GET", "/uploads/{upload_id}"): Rule(scoped=True),
    # action plans: read by all who see the service; a form posted empty lacks its version (422), or
    # carries a stale one (409), before anyone's role is asked
    ("GET", "/services/{service_id}/plans"): Rule(scoped=True),
    ("POST", "/services/{service_id}/plans"): Rule(who=STAFF | ANSWER, scoped=True, denied=PLAN_REFUSED),
    ("GET", "/plans/{plan_id}"): Rule(scoped=True),
    ("POST", "/plans/{plan_id}/actions"): Rule(who=STAFF | ANSWER, scoped=True, denied=PLAN_REFUSED),
    ("POST", "/plans/{plan_id}/actions/{action_id}/remove"): Rule(who=STAFF | ANSWER, scoped=True, denied=PLAN_REFUSED),
    ("POST", "/plans/{plan_id}/actions/{action_id}/milestones"): Rule(
        who=STAFF | ANSWER, scoped=True, denied=PLAN_REFUSED
    ),
    ("POST", "/plans/{plan_id}/actions/{action_id}/complete"): Rule(
        who=STAFF | ANSWER, scoped=True, denied=PLAN_REFUSED
    ),
    ("POST", "/plans/{plan_id}/milestones/{milestone_id}/done"): Rule(
        who=STAFF | ANSWER, scoped=True, denied=PLAN_REFUSED
    ),
    ("POST", "/plans/{plan_id}/steps/{trigger}"): Rule(who=STAFF | ANSWER, scoped=True, denied=PLAN_REFUSED),
    # the service's accuracy points, the Chief Executive's appeal: the pages say who may (and why not)
    ("GET", "/portal/reports/{report_id}/accuracy"): Rule(scoped=True),
    ("POST", "/portal/reports/{report_id}/accuracy"): Rule(who=ANSWER, scoped=True, denied=frozenset({403, 422})),
    ("GET", "/portal/reports/{report_id}/appeal"): Rule(scoped=True),
    ("POST", "/portal/reports/{report_id}/appeal"): Rule(who=ANSWER, scoped=True, denied=frozenset({403, 422})),
    # the Trust's documents: its Trust's scope (a service's grant does not reach them)
    ("GET", "/portal/submissions/{submission_id}"): Rule(scoped=True, per=per({404}, "trust", "commissioner")),
    ("POST", "/portal/submissions/{submission_id}"): Rule(
        who=STAFF | ANSWER, scoped=True, denied=frozenset({403, 422}), per=per({404}, "trust", "commissioner")
    ),
    ("GET", "/portal/submissions/{submission_id}/files/{version}"): Rule(
        scoped=True, per=per({404}, "trust", "commissioner")
    ),
    # the self-assessment: read by all who see it; returned by the service's Leads and Managers
    ("GET", "/portal/selfassessments/{assessment_id}"): Rule(scoped=True),
    ("GET", "/portal/selfassessments/{assessment_id}/spreadsheet"): Rule(scoped=True),
    # (or the network's staff for it, as the office imports a returned spreadsheet)
    ("GET", "/portal/selfassessments/{assessment_id}/online"): Rule(who=STAFF | {"trust"}, scoped=True),
    ("POST", "/portal/selfassessments/{assessment_id}/online"): Rule(who=STAFF | {"trust"}, scoped=True),
    ("POST", "/portal/selfassessments/{assessment_id}/upload"): Rule(
        who=STAFF | {"trust"}, scoped=True, denied=frozenset({403, 422})
    ),
    # the board reviews of network A's maternity service (not the Service Lead's: MRH's is its own)
    ("GET", "/portal/perinatal/{service_id}"): Rule(scoped=True, per=per({404}, "trust", "commissioner")),
    ("GET", "/portal/perinatal/{service_id}/review"): Rule(
        who=frozenset({"ceo"}), scoped=True, per=per({404}, "trust", "commissioner")
    ),
    # its form is read before the service is looked up: posted empty, 422 for any id, a missing one too
    # (tests/test_portal_isolation.py posts it filled in with another Trust's service: 404)
    ("POST", "/portal/perinatal/{service_id}/review"): Rule(
        who=frozenset({"ceo"}), scoped=True, denied=frozenset({403, 422}), hidden=frozenset({404, 422})
    ),
    ("GET", "/perinatal/alerts"): Rule(who=STAFF),
    # the alert is about the maternity service: the MRH Service Lead's and commissioner's grants do not reach it
    ("POST", "/perinatal/alerts/{alert_id}/raise"): Rule(
        who=STAFF, scoped=True, per=per({404}, "trust", "commissioner")
    ),
    ("POST", "/perinatal/alerts/{alert_id}/dismiss"): Rule(
        who=STAFF, scoped=True, per=per({404}, "trust", "commissioner")
    ),
}


# Every /api/v1 route (its path after /api/v1): a token, never a session cookie, so every one is API.
API_ROUTES = (
    "GET /me", "GET /work", "GET /items/{kind}", "GET /items/{kind}/{item_id}", "POST /items/{kind}/{item_id}/fire",
    "POST /risks", "GET /outbox", "POST /outbox/retry-failed", "POST /outbox/{message_id}/retry",
    "POST /outbox/{message_id}/settle", "POST /visits", "POST /complaints", "GET /visits/{visit_id}/panel",
    "POST /visits/{visit_id}/panel/add_panel_member", "POST /visits/{visit_id}/panel/remove_panel_member",
    "POST /visits/{visit_id}/panel/record_declaration", "POST /visits/{visit_id}/panel/give_feedback",
    "GET /reports/{report_id}/draft", "POST /reports/{report_id}/draft/add_standard",
    "POST /reports/{report_id}/draft/add_positive", "GET /reports/{report_id}/accuracy",
    "POST /reports/{report_id}/accuracy/record_inaccuracy", "POST /reports/{report_id}/accuracy/decide_inaccuracy",
    "GET /contacts", "POST /contacts", "POST /contacts/{contact_id}/edit", "POST /contacts/{contact_id}/retire",
    "POST /contacts/{contact_id}/invite", "POST /contacts/changes/{change_id}/confirm",
    "POST /contacts/changes/{change_id}/withdraw", "GET /reviewers", "POST /reviewers",
    "POST /reviewers/{reviewer_id}/edit", "POST /reviewers/{reviewer_id}/retire", "GET /users", "POST /users",
    "GET /users/{user_id}", "POST /users/{user_id}/grants", "POST /users/{user_id}/grants/revoke",
    "POST /users/{user_id}/disable", "POST /users/{user_id}/enable", "GET /portal", "POST /risks/{risk_id}/responses",
)  # fmt: skip
MATRIX.update({(r.split(" ")[0], "/api/v1" + r.split(" ")[1]): API for r in API_ROUTES})


def routes() -> list[tuple[str, str]]:
    """Every (method, path) the application answers (HEAD aside), from its routers."""
    app = create_app("sqlite://")
    out = set()
    for r in iter_route_contexts(app.routes):
        for method in r.methods or ():
            if method != "HEAD" and r.path:
                out.add((method, r.path))
    return sorted(out)


def test_every_route_is_in_the_matrix() -> None:
    answered = set(routes_cache())
    missing = [f"{m} {p}" for m, p in sorted(answered) if (m, p) not in MATRIX]
    assert not missing, "add these routes to MATRIX in tests/test_web_matrix.py: " + "; ".join(missing)
    gone = [f"{m} {p}" for m, p in MATRIX if (m, p) not in answered]
    assert not gone, "MATRIX names routes the application no longer has: " + "; ".join(gone)


# ---------------------------------------------------------------- the world the matrix asks about


@dataclass
class World:
    ids: dict[str, Any]
    titles_a: list[str]
    sessions: dict[str, tuple[str, str]]  # role -> (cookie, csrf)
    people: dict[str, Any]  # role -> its Principal
    db: Engine

    def fresh(self) -> dict[str, tuple[str, str]]:
        """New sessions for everyone (the matrix's own test signs each out at its end)."""
        return {name: support_portal_world.sign_in(self.db, p) for name, p in self.people.items()}


def _network(s: Session, code: str) -> int:
    net = s.exec(select(Network).where(Network.code == code)).one()
    assert net.id is not None
    return net.id


def _world(db: Engine, services: dict[str, int]) -> World:
    boss = support_accounts.account(db, "Matrix Boss", (NETWORK_MANAGER,))
    today = local_date(SystemClock().now())
    ids: dict[str, Any] = {}
    titles: list[str] = []
    with Session(db, expire_on_commit=False) as s:
        wmtn, cmmtn = _network(s, "WMTN"), _network(s, "CMMTN")
        for net, service in (("a", MRH), ("b", MERSEY_MTC)):
            title = f"Matrix {net.upper()} {'oxygen cylinders unsecured' if net == 'a' else 'doors propped open'}"
            risk = intake.raise_risk(
                s, service=services[service], level="SC", title=title, standard=None, visit_date=today,
                identified=None, impact=None, likelihood=None, doctors_in_training=False, principal=boss,
                clock=SystemClock(), note=None,
            )  # fmt: skip
            visit = intake.propose_visit(s, services[service], principal=boss, clock=SystemClock(), reason="matrix")
            ids[f"risk_{net}"], ids[f"visit_{net}"] = risk.row.id, visit.row.id
            if net == "a":
                titles.append(title)
        s.commit()
    # network A's risk is formally notified: its letter failed (an incident in the outbox)
    out = acting.fire(db, boss, SystemClock(), "risk", ids["risk_a"], "send_formal_notification")
    ids["version"] = out["version"]
    with Session(db, expire_on_commit=False) as s:
        letter = s.exec(
            select(OutboxMessage).where(OutboxMessage.kind == "risk", OutboxMessage.item_id == ids["risk_a"])
        ).first()
        assert letter is not None, "the formal notification queues a letter"
        letter.status, letter.last_error = OutboxStatus.FAILED, "550 mailbox unavailable (the matrix's failure)"
        s.add(letter)
        s.commit()
        ids["message_a"] = letter.id
        ids["contact_a"] = s.exec(select(Contact.id).where(Contact.network_id == wmtn)).first()
        ids["reviewer_a"] = s.exec(select(Reviewer.id).where(Reviewer.network_id == wmtn)).first()
        ids["service_a"] = services[MRH]
        ids["wmtn"], ids["cmmtn"] = wmtn, cmmtn
    with Session(db, expire_on_commit=False) as s:
        _, report = report_of_visit(s, services)  # a visit at network A driven to its report
        ids["report_a"] = report.id
    victim = support_accounts.account(db, "Matrix Victim", (NETWORK_OFFICE,), scope="network", scope_id=wmtn)
    with Session(db) as s:
        row, _ = accounts.create_token(s, victim, SystemClock(), "matrix victim")
        s.commit()
        ids["victim"], ids["victim_token"] = victim.user_id, row.id
    sessions, principals = {}, {}
    for name, (role, code) in ROLES.items():
        scope = {"scope": "network", "scope_id": ids["wmtn"] if code == "WMTN" else ids["cmmtn"]} if code else {}
        p = principals[name] = support_accounts.account(db, f"Matrix {name.title()}", (role,), **scope)
        with Session(db) as s:
            user = s.get(User, p.user_id)
            assert user is not None
            user.password_hash = signin.hash_password(PASSWORD)
            email = user.email or ""
            s.add(user)
            s.commit()
        done = signin.sign_in(db, email, PASSWORD, None, SystemClock())
        sessions[name] = (done.token, done.csrf)
    portal, people, ids["invitation"] = support_portal_world.network_a_portal(db, services)
    ids.update(portal)
    sessions.update({name: support_portal_world.sign_in(db, p) for name, p in people.items()})
    titles += [support_portal_world.MATRIX_MARK, support_portal_world.MATERNITY_MARK]
    return World(ids, titles, sessions, {**principals, **people}, db)


TRIGGERS = {
    "/items/": "rescore",  # network leads, on an open risk, with parameters (an empty form lacks them)
    "/visits/": "add_panel_member",
    "/reports/{report_id}/draft": "add_standard",
    "/reports/{report_id}/accuracy": "record_inaccuracy",
    "/plans/": "record_update",
}


EVERY_KIND = ("/items/{kind}", "/items/{kind}/{item_id}")  # asked for each kind network A has an item of


def urls(method: str, path: str, ids: dict[str, Any]) -> list[str]:
    """The route's addresses for network A's things: an item of each kind for the item pages."""
    if method == "GET" and path in EVERY_KIND:
        return [fill(path, ids, kind) for kind in KINDS]
    return [fill(path, ids)]


KINDS = ("risk", "visit", "report")


def fill(path: str, ids: dict[str, Any], kind: str = "risk") -> str:
    """The route's path for network A's things (an id that exists, where one does)."""
    kind = "visit" if "/visits/" in path else kind
    trigger = next((t for prefix, t in TRIGGERS.items() if path.startswith(prefix)), "rescore")
    values = {
        "kind": kind,
        "item_id": ids[f"{kind}_a"],
        "visit_id": ids["visit_a"],
        "report_id": ids["report_a"],
        "message_id": ids["message_a"],
        "index": 0,
        "trigger": trigger,
        "contact_id": ids["contact_a"],
        "change_id": 999_999,
        "decision": "confirm",
        "reviewer_id": ids["reviewer_a"],
        "action": "retire" if "/reviewers/" in path else "disable",
        "user_id": ids["victim"],
        "token_id": ids["victim_token"],
        "code": "WMTN",
        "token": ids["invitation"] if path.startswith("/invitation/") else "pw_not_a_feed_token",
        "service_id": ids["maternity"] if path.startswith("/portal/perinatal/") else ids["service_a"],
        "risk_id": ids["kit_risk_waiting"] if path.endswith("/respond") else ids["kit_risk"],
        "upload_id": ids["kit_upload_response"],
        "plan_id": ids["kit_plan"],
        "action_id": ids["kit_action"],
        "milestone_id": ids["kit_milestone"],
        "assessment_id": ids["kit_selfassessment"],
        "submission_id": ids["kit_submission"],
        "version": ids["kit_submission_version"],
        "alert_id": ids["alert"],
    }
    if path.startswith("/portal/"):  # the portal's: a letter as sent (queued), the report in its accuracy check
        values.update(message_id=ids["kit_letter"], report_id=ids["kit_report"])
    if path.endswith("/invite"):  # a Trust's contact (the portal is for Trusts and commissioners)
        values["contact_id"] = ids["kit_contact"]
    out = path
    for name, value in values.items():
        out = out.replace("{" + name + "}", str(value))
    assert "{" not in out, f"no value for a parameter of {path}: add it to fill()"
    return out


def expected(rule: Rule, method: str, role: str) -> frozenset[int]:
    allowed = OK_GET if method == "GET" else OK_POST
    if rule.kind == "public":
        return frozenset(range(200, 500))  # anyone; only the 500 check and the leak check apply
    if rule.kind == "feed":
        return frozenset({401, 403, 404})  # a made-up feed token opens nothing, signed in or not
    if rule.kind == "api":
        return frozenset({401})
    if role == ANON:
        return REDIRECT
    if role in dict(rule.per):
        return dict(rule.per)[role]
    if rule.missing:
        return frozenset({404})
    if role == "other" and rule.scoped:
        return rule.hidden
    return allowed if role in rule.who else rule.denied


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, Any]]:
    """One world for the module's tests (its own database): they only ask, and look for 500s and leaks."""
    with support_portal_world.module_database(tmp_path_factory.mktemp("matrix")) as (url, db):
        services = support_portal_world.reference(db)
        yield _world(db, services), create_app(url)


def test_each_role_gets_what_the_matrix_allows_on_every_route(world: tuple[World, Any]) -> None:
    w, app = world
    found: list[str] = []
    leaks: list[str] = []
    table: dict[str, dict[str, int]] = {}
    order = sorted(MATRIX, key=lambda mp: mp == ("POST", "/sign-out"))  # signing out last
    for role in ORDER:
        with TestClient(app, follow_redirects=False, raise_server_exceptions=False) as client:
            if role != ANON:
                client.cookies.set("peerwatch_session", w.sessions[role][0])
            csrf = w.sessions[role][1] if role != ANON else ""
            answered = set(routes_cache())
            for method, path in order:
                if (method, path) not in answered:
                    continue
                for url in urls(method, path, w.ids):
                    r = (
                        client.get(url)
                        if method == "GET"
                        else client.post(url, data={"csrf_token": csrf, "version": str(w.ids["version"])})
                    )
                    table.setdefault(f"{method} {url}", {})[role] = r.status_code
                    want = expected(MATRIX[(method, path)], method, role)
                    if r.status_code >= 500 or r.status_code not in want:
                        found.append(f"{role:8} {method:4} {url}: {r.status_code}, expected {sorted(want)}")
                    if role == ANON and want == REDIRECT and not r.headers["location"].startswith("/sign-in"):
                        found.append(f"{role:8} {method:4} {url}: 303 to {r.headers['location']}")
                    if role == "other" and any(t in r.text for t in w.titles_a):
                        leaks.append(f"{method} {url} ({r.status_code})")
                    if role == "manager" and url == f"/items/risk/{w.ids['risk_a']}":
                        assert w.titles_a[0] in r.text, "the leak check looks for what network A's own user sees"
    print("\n".join(f"{k:55} {v}" for k, v in table.items()))
    assert not leaks, "network B's user saw network A's item titles: " + "; ".join(leaks)
    assert not found, "statuses outside the matrix:\n" + "\n".join(found)


_ROUTES: list[tuple[str, str]] = []


def routes_cache() -> list[tuple[str, str]]:
    if not _ROUTES:
        _ROUTES.extend(routes())
    return _ROUTES


ID_PARAMS = ("item_id", "message_id", "contact_id", "reviewer_id", "user_id", "token_id", "visit_id", "report_id",
             "change_id", "service_id", "risk_id", "upload_id", "plan_id", "action_id", "milestone_id", "assessment_id",
             "submission_id", "version", "alert_id", "index")  # fmt: skip
# 0, negative, just past PostgreSQL's INTEGER, the largest 64-bit, past 64 bits, not a number
ODD_IDS = (
    "0",
    "-1",
    str(2**31),
    str(2**63 - 1),
    str(2**63),
    "9" * 30,
    "1e3",
    "%20",
    "%C2%B2",
    "%D9%A1%D9%A1",
)  # ² and ١١: digits to str.isdigit, not to int()


def test_an_id_out_of_range_on_any_route_is_refused_never_a_500(world: tuple[World, Any]) -> None:
    """Every route with an id in its path, asked by network A's manager (and administrator) with
    ids no row can have: a refusal (400, 403, 404 or 422), never a 500 (on PostgreSQL ids are
    32-bit: a larger number must not reach a query)."""
    w, app = world
    sessions = w.fresh()
    found = []
    for role in ("manager", "admin"):
        with TestClient(app, follow_redirects=False, raise_server_exceptions=False) as client:
            client.cookies.set("peerwatch_session", sessions[role][0])
            for method, path in routes_cache():
                names = [n for n in ID_PARAMS if "{" + n + "}" in path]
                if not names or MATRIX[(method, path)].kind == "api":
                    continue  # the API's own probes are in tests/test_api.py (they need a token)
                for odd in ODD_IDS:
                    url = fill(path.replace("{" + names[0] + "}", odd), w.ids)
                    data = {"csrf_token": sessions[role][1], "version": "1"}
                    r = client.get(url) if method == "GET" else client.post(url, data=data)
                    if r.status_code not in (400, 403, 404, 422):
                        found.append(f"{role} {method} {url}: {r.status_code}")
    assert not found, "ids no row can have:\n" + "\n".join(found)


NUL_FIELDS = ("q", "state", "network", "service", "due_before", "note", "title", "name", "email", "text", "reason",
              "scope", "role", "level", "summary", "next", "password")  # fmt: skip


def test_a_nul_or_control_character_anywhere_is_refused_never_a_500(world: tuple[World, Any]) -> None:
    """Every page route asked with a NUL in the usual query and form fields (PostgreSQL refuses a
    NUL in text, so one must never reach a query): a page or a refusal, never a 500."""
    w, app = world
    sessions = w.fresh()
    found = []
    odd = {name: f"x\x00{name}\x1b" for name in NUL_FIELDS}
    with TestClient(app, follow_redirects=False, raise_server_exceptions=False) as client:
        client.cookies.set("peerwatch_session", sessions["manager"][0])
        for method, path in routes_cache():
            if MATRIX[(method, path)].kind == "api" or path == "/sign-out":
                continue
            for url in urls(method, path, w.ids):
                if method == "GET":
                    r = client.get(url, params=odd)
                else:
                    r = client.post(url, data={**odd, "csrf_token": sessions["manager"][1], "version": "1"})
                if r.status_code >= 500:
                    found.append(f"{method} {url}: {r.status_code}")
    assert not found, "a NUL in a field:\n" + "\n".join(found)
