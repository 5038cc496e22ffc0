"""The demo's Trust side (issue 16): what the Trusts do through the portal's own use cases, as
their own accounts, never by the network office on their behalf.

The network office invites the Trusts' people from the contacts (``trust_accounts.invite_contact``:
an account, the contact role granted in the contact's scope, a single-use link emailed by the
dispatcher); in the demo's training database they then sign in with the demo passphrase like
everyone else. Through the story the Service Leads send the formal responses to the risks
(``responses.submit``), Midland Royal's Service Lead states the report's inaccuracies
(``portal_submissions.record_inaccuracy``) and builds the action plan answering the report's
recommendations (``action_plans``), and the Trust's Medical Director and Chief Executive appeal
(``portal_submissions.submit_appeal``: only the Chief Executive may).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models import Contact, Network, Risk, Service, session_scope
from models.portal import ActionPlan, PlanAction
from states.clock import FixedClock
from states.errors import PeerwatchError
from states.principal import Principal
from states.services import accounts, action_plans, portal_submissions, recommendations, responses, trust_accounts

MRH, STU, MHM = "Midland Royal Major Trauma Centre", "Severnside Trauma Unit", "Mersey Harbour Major Trauma Centre"
# The Trusts' people the network office invites: (service, contact role), or (service's Trust, role).
INVITED_AT_SERVICE = (
    (MRH, "service-lead"),
    (STU, "service-lead"),
    (MHM, "service-lead"),
)
INVITED_AT_TRUST = (
    (MRH, "chief-executive"),
    (MRH, "medical-director"),
    (MHM, "chief-executive"),
)
COMMISSIONERS = ("WMTN",)  # the network's responsible commissioner: every service it commissions


@dataclass
class TrustSide:
    """The Trusts' accounts and their acts in the story; each act appends a line to ``timeline``."""

    db: Engine
    clock: FixedClock
    svc: dict[str, int]
    ids: dict[str, int]
    timeline: list[tuple[date, str, str]]
    lead: Callable[[Session], Principal]  # the network lead who agrees or returns a plan
    people: dict[tuple[str, str], str] = field(default_factory=dict)  # (service, role) -> email

    def day(self) -> date:
        return FixedClock.now(self.clock).date()

    def who(self, s: Session, service: str, role: str) -> Principal:
        """The Trust's own account (its email), acting in its contact role."""
        return accounts.training_principal(s, self.people[(service, role)], role)

    def name(self, service: str, role: str) -> str:
        with Session(self.db) as s:
            return accounts.find_user(s, self.people[(service, role)]).name

    def _note(self, item: str, what: str) -> None:
        self.timeline.append((self.day(), item, what))

    def _try(self, item: str, step: Callable[[], str]) -> None:
        """Take a step; a refusal is shown in the timeline, not fatal. ``item``: the thing's label
        in ``ids`` (a risk's, a plan's) or a name; shown as its reference (SC-5, Plan-1)."""
        try:
            what = step()
        except PeerwatchError as exc:
            what = f"REFUSED: {exc}"
        self._note(self.ref(item), what)

    def ref(self, label: str) -> str:
        if label not in self.ids:
            return label
        with Session(self.db) as s:
            if label.startswith("plan-"):
                return f"Plan-{self.ids[label]}"
            risk = s.get(Risk, self.ids[label]) if label[:3] in ("IR-", "SC-", "GC-") else None
            return f"{risk.level}-{risk.id}" if risk is not None else label

    # ------------------------------------------------------------ accounts

    def invite(self, office: Callable[[Session, str], Principal]) -> None:
        """The network's staff (``office``: given the network's code) invite each Trust person
        and commissioner to the portal."""
        with session_scope() as s:
            asked = [(svc, role, "service") for svc, role in INVITED_AT_SERVICE]
            asked += [(svc, role, "organisation") for svc, role in INVITED_AT_TRUST]
            for service, role, level in asked:
                row = s.get(Service, self.svc[service])
                assert row is not None
                where = (
                    Contact.service_id == row.id
                    if level == "service"
                    else Contact.organisation_id == row.organisation_id
                )
                query = select(Contact).where(Contact.role == role, where)
                if level == "organisation":
                    query = query.where(col(Contact.service_id).is_(None))
                contact = s.exec(query).one()
                network = s.get(Network, row.network_id)
                assert network is not None
                sent = trust_accounts.invite_contact(s, office(s, network.code), contact.id or 0, self.clock)
                self.people[(service, role)] = sent.email
                self._note("account", f"{sent.name} ({role}, {service}) invited to the portal: link by email")
            for code in COMMISSIONERS:
                contact = s.exec(
                    select(Contact).where(
                        Contact.role == "responsible-commissioner",
                        Contact.email.startswith("commissioning@" + code.lower()),
                    )  # type: ignore[attr-defined]
                ).one()
                sent = trust_accounts.invite_contact(s, office(s, code), contact.id or 0, self.clock)
                self.people[(code, "responsible-commissioner")] = sent.email
                self._note("account", f"{sent.name} (responsible commissioner, {code}) invited to the portal")

    # ------------------------------------------------------------ risks and concerns

    def respond(self, label: str, service: str, role: str, text: str, files: Sequence[tuple[str, bytes]] = ()) -> None:
        """The Trust's formal response to a risk, from its own account."""

        def step() -> str:
            with Session(self.db) as s:
                me = self.who(s, service, role)
            row = responses.submit(self.db, me, self.ids[label], text, list(files), self.clock)
            return (
                f"formal response {row.number} sent by {me.name} ({row.submitted_role}) in the portal"
                f"{f' with {len(files)} file(s)' if files else ''} -> response_received: the Network Manager judges it"
            )

        self._try(label, step)

    # ------------------------------------------------------------ the report

    def inaccuracies(self, service: str, texts: Sequence[str]) -> None:
        with Session(self.db) as s:
            me = self.who(s, service, "service-lead")
        for text in texts:

            def step(text: str = text) -> str:
                item = portal_submissions.record_inaccuracy(
                    self.db, report_id=self.ids["report"], text=text, principal=me, clock=self.clock
                )
                return f"inaccuracy {item.id} stated in the portal by {me.name} (service-lead): {text[:60]}"

            self._try(f"Report-{self.ids['report']}", step)

    def appeal(self, service: str, role: str, grounds: Sequence[str], how: str) -> None:
        def step() -> str:
            with Session(self.db) as s:
                me = self.who(s, service, role)
            row = portal_submissions.submit_appeal(
                self.db,
                report_id=self.ids["report"],
                statement="The serious concern rests on a single audit period; the protocol is audited quarterly.",
                grounds=list(grounds),
                principal=me,
                clock=self.clock,
            )
            self.ids["appeal"] = row.id or 0
            return f"appeal submitted in the portal by {me.name} ({how}) -> {row.state} (result due 8 weeks later)"

        self._try("Appeal", step)

    # ------------------------------------------------------------ action plans

    def recommend(self, office: Callable[[Session], Principal], texts: Sequence[tuple[str, str | None]]) -> None:
        with session_scope() as s:
            for n, (text, ref) in enumerate(texts, 1):
                row = recommendations.add_recommendation(s, office(s), self.ids["report"], text, ref, clock=self.clock)
                self.ids[f"recommendation-{n}"] = row.id or 0
        self._note(f"Report-{self.ids['report']}", f"{len(texts)} recommendations recorded by the network office")

    def plan(self, label: str, service: str, actions: Sequence[dict[str, Any]], **opened: Any) -> None:
        """The Service Lead opens a plan and adds its actions (each with its milestones)."""

        def step() -> str:
            with session_scope() as s:
                me = self.who(s, service, "service-lead")
                plan = action_plans.create_plan(s, me, self.svc[service], clock=self.clock, **opened)
                self.ids[label] = plan.id or 0
                for a in actions:
                    action_plans.add_action(s, me, plan.id or 0, clock=self.clock, **a)
                return f"action plan opened by {me.name} with {len(actions)} action(s) -> draft"

        self._try(label, step)

    def plan_step(self, label: str, trigger: str, who: tuple[str, str] | None, note: str | None = None) -> None:
        """A plan's step: by the service's own account (``who`` = (service, role)) or, with
        ``who`` None, by the network lead (``lead``)."""

        def step() -> str:
            with session_scope() as s:
                me = self.who(s, *who) if who else self.lead(s)
                row = action_plans.act(s, me, self.ids[label], trigger, note=note, clock=self.clock)
                return f"{trigger.replace('_', ' ')} by {me.name} -> {row.state}"

        self._try(label, step)

    def add_action(self, label: str, service: str, action: dict[str, Any]) -> None:
        def step() -> str:
            with session_scope() as s:
                me = self.who(s, service, "service-lead")
                row = action_plans.add_action(s, me, self.ids[label], clock=self.clock, **action)
                return f"action added by {me.name}: {row.text[:60]}"

        self._try(label, step)

    def plan_summary(self, label: str) -> str:
        with Session(self.db) as s:
            plan = s.get(ActionPlan, self.ids[label])
            n = len(s.exec(select(PlanAction.id).where(PlanAction.plan_id == self.ids[label])).all())
            return f"Plan-{self.ids[label]} {plan.state if plan else '?'} ({n} actions)"


def script(trust: TrustSide, office: Callable[[Session], Principal]) -> dict[date, list[Callable[[], None]]]:
    """The Trusts' acts by day (after the network's acts of the same day): the formal responses,
    the recommendations the network office records for the plan to answer, and the plans."""
    ids = trust.ids
    return {
        date(2027, 1, 4): [
            lambda: trust.respond(
                "IR-midland",
                MRH,
                "service-lead",
                "Interim rota in place from 21 December: a second consultant on call overnight. Action plan with "
                "milestones attached.",
                [("interim-rota.txt", b"Interim consultant rota from 21 December 2026\n")],
            )
        ],
        date(2027, 1, 12): [
            lambda: trust.respond(
                "SC-mersey", MHM, "service-lead", "A registrar will attend resus overnight when the consultant cannot."
            )
        ],
        date(2027, 1, 13): [
            lambda: trust.respond(
                "SC-midland",
                MRH,
                "service-lead",
                "Massive haemorrhage protocol audit now quarterly; action plan attached.",
            )
        ],
        date(2027, 1, 22): [
            lambda: trust.respond(
                "SC-mersey", MHM, "service-lead", "Further response: the registrar arrangement continues; recruiting."
            )
        ],
        date(2027, 2, 25): [
            lambda: trust.respond(
                "SC-mersey",
                MHM,
                "chief-executive",
                "Third response: a consultant in resus overnight from 1 March; action plan with milestones.",
            )
        ],
        date(2027, 1, 11): [
            lambda: trust.recommend(
                office,
                [
                    ("Provide a consultant-led trauma team 24 hours a day, 7 days a week", "MTC-3"),
                    ("Audit time to CT monthly and act on delays over 60 minutes", "MTC-5"),
                ],
            ),
        ],
        date(2027, 2, 4): [
            lambda: trust.plan(
                "plan-midland",
                MRH,
                [
                    {
                        "text": "Recruit two trauma consultants to complete a 24/7 consultant-led rota",
                        "owner_name": "Clinical Director, Major Trauma",
                        "recommendation_id": ids["recommendation-1"],
                        "milestones": [("Posts advertised", date(2027, 3, 12)), ("Rota live", date(2027, 9, 1))],
                    },
                    {
                        "text": "Monthly time-to-CT audit reported to the divisional board",
                        "owner_name": "Lead Radiographer",
                        "recommendation_id": ids["recommendation-2"],
                        "milestones": [("First monthly report", date(2027, 4, 1))],
                    },
                ],
                programme_year=2026,
                report_id=ids["report"],
            )
        ],
        date(2027, 2, 5): [lambda: trust.plan_step("plan-midland", "submit", (MRH, "service-lead"))],
        date(2027, 2, 10): [
            lambda: trust.plan_step(
                "plan-midland", "return_plan", None, "Add an interim action for nights until the rota is complete"
            )
        ],
        date(2027, 2, 11): [
            lambda: trust.add_action(
                "plan-midland",
                MRH,
                {
                    "text": "Interim: a second consultant on call overnight until the rota is complete",
                    "owner_name": "Clinical Director, Major Trauma",
                    "interim": True,
                    "recommendation_id": ids["recommendation-1"],
                },
            )
        ],
        date(2027, 2, 12): [lambda: trust.plan_step("plan-midland", "submit", (MRH, "service-lead"))],
        date(2027, 2, 16): [lambda: trust.plan_step("plan-midland", "agree", None)],
        date(2027, 3, 17): [
            lambda: trust.plan(
                "plan-severnside",
                STU,
                [
                    {
                        "text": "Audit every trauma team activation against the criteria, monthly",
                        "owner_name": "Trauma Unit Lead Nurse",
                        "milestones": [("First audit to the governance meeting", date(2027, 4, 30))],
                    }
                ],
                programme_year=2026,
                risk_id=ids["SC-severnside-2"],
            )
        ],
    }
