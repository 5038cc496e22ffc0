"""``peerwatch demo``: a fresh demo database, a visit, risks and a report, and the real
Prefect ``chase`` and ``dispatch`` flows run day by day over simulated weekdays.

The story (West Midlands and Cheshire & Mersey, autumn 2026 to March 2027):
- Visit to Midland Royal MTC, proposed from the weighting list, scheduled for Fri 11 Dec:
  the service is notified, a conflicted reviewer (works for the Trust) and one from the same
  shared pathway are refused, the panel is built across two networks, one late conflict
  declaration is chased, the visit is prepared and held, and high level feedback raises an
  IR and a GC; the report is drafted, checked for factual accuracy (one inaccuracy accepted,
  one rejected, one "we have since..." refused), approved, distributed with its PDF, published.
- The IR (notified Fri 18 Dec) is answered adequately before its deadline of Wed 6 Jan 2027.
- An SC at Severnside Trauma Unit (visit Thu 10 Dec) is never answered: reminded, chased,
  then escalated to the Commissioning Lead and the CQC.
- An SC at Mersey Harbour MTC (visit Fri 11 Dec), doctors in training affected, scored 16:
  the ASCT is told; the response is inadequate twice: Commissioning Lead, CQC, TPD and RA;
  a third response, adequate, on Mon 1 Mar puts it in monitoring: its first quarterly review
  is the Network Manager's (Ms Zara Ahmed) to record, in her "My work" in the web application.
- After publication: an appeal from the Medical Director is refused; the Chief Executive's
  appeal on the last day of the 4-week window is accepted, a second one a day late refused;
  two involved people are refused a seat on the subgroup; the appeal is upheld, which
  withdraws the serious concern it names and re-issues the report as issue 2.
- Two complaints: one about arrangements (to the network office) is acknowledged,
  investigated and resolved; one about a person is closed as not acceptable.
- The Trusts act for themselves in the portal (``cli/demo_portal.py``), from accounts their
  network's staff invited from the contacts: the Service Leads send the formal responses (the
  Network Manager judges each), Midland Royal's Service Lead states the inaccuracies and builds
  the action plan answering the report's recommendations (returned with comments, revised,
  agreed; an overdue milestone chased), its Medical Director's appeal is refused and its Chief
  Executive's accepted. A new SC at Severnside (Wed 10 Mar) stands at the end awaiting the
  Trust's response, with the Service Lead's draft plan: for a person to answer in the portal.

It runs on a training database (``peerwatch init --training``: simulated dates, ``--as``): the
OS user running it is its administrator, who adds the cast as accounts (``cli.seed.seed_cast``);
each step is taken by a named account in one of its roles, scoped to its network; the sweeps
and the dispatcher are the flows' own (the system principal). Every account gets the demo's
passphrase for the web application (``cli.demo_accounts``), printed at the end.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from cli.context import os_login
from cli.demo_accounts import print_sign_in, set_demo_passwords
from cli.demo_portal import MHM, MRH, STU, TrustSide
from cli.demo_portal import script as trust_script
from cli.demo_report import escalations_since, last_letter_id, print_summary
from cli.output import table
from cli.seed import seed_cast, seed_reference
from flows.chase import chase
from flows.dispatch import dispatch
from flows.views import views
from models import Complaint, OutboxMessage, Report, Reviewer, Risk, Visit, init_db, session_scope
from states import engine
from states.clock import FixedClock
from states.engine import keys
from states.errors import PeerwatchError
from states.principal import Principal
from states.services import accounts, clocks
from states.views.weighting import candidates

START, END = date(2026, 11, 16), date(2027, 3, 19)
# Who acts (accounts made by seed_cast from each network's contacts, each role granted for its
# network only): West Midlands Trauma Network's staff, and Cheshire & Mersey's for its own risk.
NM, RL, OFFICE = (
    ("Dr Asha Patel", "network-manager"),
    ("Mr Tom Hughes", "regional-lead"),
    ("Ms Grace Okafor", "network-office"),
)
CM_NM, CM_RL = ("Ms Zara Ahmed", "network-manager"), ("Mr Gareth Jones", "regional-lead")


def _weekdays(start: date, end: date) -> list[date]:
    days, d = [], start
    while d <= end:
        if d.weekday() < 5:
            days.append(d)
        d += timedelta(days=1)
    return days


def story(db_path: Path, outbox: Path, api: str, keep_server: bool) -> None:
    db = init_db()
    clock = FixedClock(START)
    keys.create_key_file()  # as peerwatch init: the audit key, unless one is set or made already
    with session_scope() as s:  # peerwatch init --training --demo, then the administrator adds the cast
        accounts.mark_training(s)
        accounts.bootstrap(s, clock, os_login=os_login(), name="Demo Administrator")
        svc = seed_reference(s)
        cast = seed_cast(s, accounts.peer_principal(s, os_login()), clock)
        reviewers = {r.name: r.id for r in s.exec(select(Reviewer))}
    ids: dict[str, int] = {}
    timeline: list[tuple[date, str, str]] = []

    def as_(s: Session, who: tuple[str, str]) -> Principal:
        """The named account acting in one of its roles (--as, in this training database)."""
        return accounts.training_principal(s, cast[who[0]], who[1])

    # The Trusts' people, invited to the portal by their network's staff; they act for themselves.
    trust = TrustSide(db, clock, svc, ids, timeline, lead=lambda s: as_(s, NM))
    trust.invite(lambda s, network: as_(s, OFFICE if network == "WMTN" else CM_NM))
    with session_scope() as s:  # a training database: every account gets the demo passphrase
        set_demo_passwords(s, accounts.peer_principal(s, os_login()), clock)

    def ref(kind: str, row: Any) -> str:
        return f"{row.level}-{row.id}" if kind == "risk" else f"{kind.title()}-{row.id}"

    def act(kind: str, label: str, trigger: str, who: tuple[str, str], note: str | None = None, **params: Any) -> None:
        """One operator action through the engine; an expected refusal is shown, not fatal."""
        try:
            with session_scope() as s:
                before = last_letter_id(s)
                out = engine.fire(
                    s, kind, ids[label], trigger, principal=as_(s, who), clock=clock, note=note, params=params
                )
                what = (
                    f"{trigger} proposed by {who[0]}: awaiting a second person"
                    if out.proposed
                    else f"{trigger} -> {out.row.state} {_due(out.event.data)}".strip()
                )
                s.flush()
                told = escalations_since(s, before, kind, ids[label]).get((kind, ids[label]))
                what += f": {told}" if told else ""
                timeline.append((clock_day(), ref(kind, out.row), what))
        except PeerwatchError as exc:
            timeline.append((clock_day(), f"{kind.title()}-{ids[label]}", f"REFUSED {trigger}: {exc}"))

    def clock_day() -> date:
        return FixedClock.now(clock).date()

    def raise_risk(
        label: str,
        service: str,
        level: str,
        title: str,
        standard: str,
        impact: int | None = None,
        likelihood: int | None = None,
        dit: bool = False,
        who: tuple[str, str] = NM,
    ) -> None:
        with session_scope() as s:
            before = last_letter_id(s)
            out = engine.create(
                s,
                "risk",
                Risk(
                    service_id=svc[service],
                    level=level,
                    title=title,
                    standard_ref=standard,
                    identified_on=clock_day(),
                    visit_date=clock_day(),
                    impact=impact,
                    likelihood=likelihood,
                    doctors_in_training=dit,
                    state="new",
                ),
                "raise",
                principal=as_(s, who),
                clock=clock,
                note="found at the visit; verbal notification at high level feedback",
            )
            ids[label] = out.row.id  # type: ignore[assignment]
            s.flush()
            told = escalations_since(s, before, "risk", out.row.id).get(("risk", out.row.id))  # type: ignore[arg-type]
            timeline.append(
                (
                    clock_day(),
                    ref("risk", out.row),
                    f"raised at visit -> {out.row.state} {_due(out.event.data)}".strip()
                    + (f": {told}" if told else ""),
                )
            )

    def visit_feedback() -> None:
        act(
            "visit",
            "visit",
            "give_feedback",
            NM,
            risks=[
                {
                    "level": "IR",
                    "title": "Trauma team not consultant-led out of hours",
                    "standard_ref": "MTC-3",
                    "impact": 5,
                    "likelihood": 3,
                },
                {"level": "SC", "title": "Major haemorrhage protocol not audited", "standard_ref": "MTC-9"},
                {"level": "GC", "title": "Patient information leaflets out of date", "standard_ref": "MTC-27"},
            ],
        )
        with session_scope() as s:
            for r in s.exec(select(Risk).where(Risk.visit_id == ids["visit"]).order_by(Risk.id)):  # type: ignore[arg-type]
                ids[f"{r.level}-midland"] = r.id  # type: ignore[assignment]
                timeline.append((clock_day(), ref("risk", r), f"raised at high level feedback -> {r.state}"))
            rep = s.exec(select(Report).where(Report.visit_id == ids["visit"])).one()
            ids["report"] = rep.id  # type: ignore[assignment]
            timeline.append((clock_day(), f"Report-{rep.id}", "drafting started (report due 8 weeks after the visit)"))

    def propose_visit() -> None:
        with session_scope() as s:
            top = candidates(s, "WMTN", clock_day())[0]
            out = engine.create(
                s,
                "visit",
                Visit(service_id=top["service_id"], state="new"),
                "propose",
                principal=as_(s, NM),
                clock=clock,
                params={"reason": f"top of the WMTN weighting list, score {top['score']}"},
            )
            ids["visit"] = out.row.id  # type: ignore[assignment]
            timeline.append(
                (clock_day(), f"Visit-{out.row.id}", f"proposed for {top['service']} (weighting score {top['score']})")
            )

    def inaccuracies() -> None:  # the service states them in the portal; the last is a later change: refused
        trust.inaccuracies(
            MRH,
            [
                "The report says two trauma consultants were on call; the rota shows three on the day",
                "Time to CT was 58 minutes, not 68 minutes as reported",
                "We have since appointed a major trauma coordinator",
            ],
        )

    def decide() -> None:
        act("report", "report", "decide_inaccuracy", NM, item_id=1, decision="accepted")
        act(
            "report", "report", "decide_inaccuracy", (NM[0], RL[1]), item_id=1, decision="accepted"
        )  # four eyes: refused
        act("report", "report", "decide_inaccuracy", RL, item_id=1, decision="accepted")
        act("report", "report", "decide_inaccuracy", NM, item_id=2, decision="rejected")
        act("report", "report", "decide_inaccuracy", RL, item_id=2, decision="rejected")

    def appeal(who: str, contact_role: str) -> None:  # the Trust's own account, in the portal
        trust.appeal(MRH, contact_role, [f"risk-{ids['SC-midland']}"], who)

    def complaint(label: str, category: str, name: str, email: str, summary: str, about_person: bool = False) -> None:
        with session_scope() as s:
            row = Complaint(
                network_id=1,
                service_id=svc[MRH],
                category=category,
                owner_role="",
                complainant_name=name,
                complainant_email=email,
                summary=summary,
                received_on=clock_day(),
                about_person=about_person,
                state="new",
            )
            out = engine.create(s, "complaint", row, "receive", principal=as_(s, OFFICE), clock=clock, note=summary)
            ids[label] = out.row.id  # type: ignore[assignment]
            timeline.append(
                (
                    clock_day(),
                    f"Complaint-{out.row.id}",
                    f"received ({category}) -> routed to {out.row.owner_role} {_due(out.event.data)}",
                )
            )  # type: ignore[attr-defined]

    script: dict[date, list[Any]] = {
        date(2026, 11, 16): [
            propose_visit,
            lambda: act("visit", "visit", "schedule", NM, date="2026-12-11", mode="in_person"),
            lambda: act("visit", "visit", "notify_service", OFFICE),
        ],
        date(2026, 11, 17): [
            lambda n=n: act("visit", "visit", "add_panel_member", OFFICE, reviewer_id=reviewers[n])
            for n in (
                "Dr Felix Okoro",
                "Ms Ada Lindqvist",
                "Dr Maya Fenwick",
                "Mr Idris Vaughan",
                "Ms Carys Holt",
                "Mr Rohan Mehta",
                "Ms Tessa Quinn",
                "Mrs Joan Pryce",
            )
        ],
        date(2026, 11, 20): [
            lambda n=n: act("visit", "visit", "record_declaration", OFFICE, reviewer_id=reviewers[n])
            for n in ("Dr Maya Fenwick", "Mr Idris Vaughan", "Ms Carys Holt", "Mr Rohan Mehta", "Ms Tessa Quinn")
        ],
        date(2026, 11, 30): [
            lambda: act("visit", "visit", "record_preparation", OFFICE, prep_session="held", evidence_received="yes")
        ],
        date(2026, 12, 1): [
            lambda: act("visit", "visit", "record_declaration", OFFICE, reviewer_id=reviewers["Mrs Joan Pryce"]),
            lambda: act("visit", "visit", "record_preparation", OFFICE, panel_confirmed="yes"),
            lambda: act("visit", "visit", "confirm_prepared", OFFICE),
        ],
        date(2026, 12, 10): [
            lambda: raise_risk(
                "SC-severnside",
                STU,
                "SC",
                "No rehabilitation prescription completed for major trauma patients",
                "TU-14",
            )
        ],
        date(2026, 12, 11): [
            lambda: act("visit", "visit", "hold", OFFICE),
            visit_feedback,
            lambda: raise_risk(
                "SC-mersey", MHM, "SC", "Junior doctors unsupervised in resus overnight", "MTC-8", 4, 4, True, CM_NM
            ),
            lambda: act("visit", "visit", "close", NM),
        ],
        date(2026, 12, 17): [lambda: act("risk", "SC-severnside", "send_formal_notification", NM, "letter emailed")],
        date(2026, 12, 18): [
            lambda: act("risk", "IR-midland", "send_formal_notification", NM, "letter emailed"),
            lambda: act("risk", "SC-midland", "send_formal_notification", NM, "letter emailed"),
            lambda: act("risk", "SC-mersey", "send_formal_notification", CM_RL, "letter emailed"),
        ],
        date(2027, 1, 5): [
            lambda: act(
                "risk",
                "IR-midland",
                "response_adequate",
                NM,
                "interim rota in place; action plan with milestones received",
            )
        ],
        date(2027, 1, 15): [
            lambda: act("risk", "SC-midland", "response_adequate", NM, "audit programme and action plan received")
        ],
        date(2027, 1, 11): [
            lambda: act(
                "report",
                "report",
                "add_standard",
                OFFICE,
                ref="MTC-3",
                descriptor="Consultant-led trauma team 24/7",
                status="Unmet",
            ),
            lambda: act(
                "report",
                "report",
                "add_standard",
                OFFICE,
                ref="MTC-5",
                descriptor="CT within 60 minutes of arrival",
                status="Partially Met",
            ),
            lambda: act(
                "report",
                "report",
                "add_standard",
                OFFICE,
                ref="MTC-12",
                descriptor="Rehabilitation prescription for every patient",
                status="Met",
            ),
            lambda: act(
                "report", "report", "add_positive", OFFICE, text="Outstanding major trauma rehabilitation pathway"
            ),
        ],
        date(2027, 1, 14): [
            lambda: act(
                "risk", "SC-mersey", "response_inadequate", CM_NM, "no interim supervision arrangements; no milestones"
            )
        ],
        date(2027, 1, 18): [lambda: act("report", "report", "send_for_accuracy_check", OFFICE)],
        date(2027, 1, 26): [
            lambda: act(
                "risk",
                "SC-mersey",
                "response_inadequate",
                CM_RL,
                "further response repeats the first; continued inadequate response",
            )
        ],
        date(2027, 1, 27): [inaccuracies],
        date(2027, 1, 28): [decide],
        date(2027, 1, 29): [lambda: act("report", "report", "approve", RL)],
        date(2027, 2, 1): [lambda: act("report", "report", "distribute", OFFICE)],
        date(2027, 2, 2): [lambda: act("report", "report", "publish", RL)],
        date(2027, 2, 3): [lambda: appeal("Medical Director", "medical-director")],
        date(2027, 2, 8): [
            lambda: complaint(
                "complaint-dates",
                "arrangements",
                "Kit Irwin",
                "kit.irwin@midland-royal-hospitals.nhs.example",
                "The visit agenda was sent only three weeks before the visit",
            )
        ],
        date(2027, 2, 9): [
            lambda: complaint(
                "complaint-person",
                "conduct",
                "Milo Frost",
                "milo.frost@midland-royal-hospitals.nhs.example",
                "I object to the reviewer's accent and manner of dress",
                about_person=True,
            ),
            lambda: act(
                "complaint",
                "complaint-person",
                "close_not_acceptable",
                NM,
                "This concerns the person, not the conduct of their role in the review (SOP 8.2)",
            ),
            lambda: act("complaint", "complaint-dates", "acknowledge", OFFICE),
        ],
        date(2027, 2, 15): [lambda: act("complaint", "complaint-dates", "investigate", OFFICE)],
        date(2027, 2, 22): [
            lambda: act(
                "complaint",
                "complaint-dates",
                "resolve",
                OFFICE,
                "Apology given; visit notifications now go at least six weeks ahead",
            )
        ],
        date(2027, 3, 1): [
            lambda: act(
                "risk",
                "SC-mersey",
                "response_adequate",
                CM_NM,
                "third response: a consultant in resus overnight from 1 March; action plan with milestones",
            )
        ],
        date(2027, 3, 2): [lambda: appeal("Chief Executive, the last day of the window", "chief-executive")],
        date(2027, 3, 3): [lambda: appeal("Chief Executive, one day late", "chief-executive")],
        date(2027, 3, 4): [lambda: act("appeal", "appeal", "begin_consideration", NM)],
        date(2027, 3, 8): [
            lambda: act(
                "appeal",
                "appeal",
                "add_subgroup_member",
                NM,
                name="Mr Tom Hughes",
                email="tom.hughes@wmtn.network.nhs.example",
            ),
            lambda: act(
                "appeal",
                "appeal",
                "add_subgroup_member",
                NM,
                name="Ms Carys Holt",
                email="carys.holt@reviewers.nhs.example",
            ),
            lambda: act(
                "appeal",
                "appeal",
                "add_subgroup_member",
                NM,
                name="Dr Nora Quist",
                email="nora.quist@cmmtn.network.nhs.example",
            ),
            lambda: act(
                "appeal", "appeal", "add_subgroup_member", NM, name="Prof Ian Marsh", email="ian.marsh@nhs.example"
            ),
            lambda: act("appeal", "appeal", "convene_subgroup", NM),
        ],
        date(2027, 3, 15): [
            lambda: act(
                "appeal",
                "appeal",
                "decide",
                NM,
                "The quarterly audits, available on the day, meet the standard",
                outcome="upheld",
                withdraw=[ids["SC-midland"]],
            ),  # proposed: four eyes
            lambda: act(
                "appeal",
                "appeal",
                "decide",
                NM,
                "The quarterly audits, available on the day, meet the standard",
                outcome="upheld",
                withdraw=[ids["SC-midland"]],
            ),  # the same person: refused
            lambda: act(
                "appeal",
                "appeal",
                "decide",
                RL,
                "The quarterly audits, available on the day, meet the standard",
                outcome="upheld",
                withdraw=[ids["SC-midland"]],
            ),
        ],  # confirmed by a second person
        date(2027, 3, 16): [lambda: act("appeal", "appeal", "communicate", NM)],
        date(2027, 3, 10): [
            lambda: raise_risk(
                "SC-severnside-2", STU, "SC", "No audit of trauma team activation against the criteria", "TU-4"
            )
        ],
        date(2027, 3, 12): [lambda: act("risk", "SC-severnside-2", "send_formal_notification", NM, "letter emailed")],
    }
    for day, steps in trust_script(trust, lambda s: as_(s, OFFICE)).items():
        script.setdefault(day, []).extend(steps)
    for day in _weekdays(START, END):
        clock.set(day)
        for step in script.get(day, []):
            step()
        with Session(db) as s:
            before = last_letter_id(s)
        result = chase(as_of=day.isoformat())
        for kind, n in sorted(result["counts"].items()):
            timeline.append((day, "sweep", f"chase flow: {n} x {kind}"))
        with Session(db) as s:
            for (kind, item_id), told in escalations_since(s, before).items():
                row = s.get(Risk, item_id) if kind == "risk" else None
                timeline.append(
                    (
                        day,
                        ref(kind, row) if row else f"{kind.title()}-{item_id}",
                        f"escalated by the chase flow: {told}",
                    )
                )
        with Session(db) as s:
            queued = s.exec(select(OutboxMessage.id).where(OutboxMessage.status == "queued")).first()
        if queued:  # the dispatcher runs only when there is something to send
            dispatch(as_of=day.isoformat())

    table(
        "What happened (simulated weekdays; the chase and dispatch flows ran each day)",
        ["date", "item", "event"],
        [(d.strftime("%a %d %b %Y"), item, what) for d, item, what in timeline],
    )
    site = views(as_of=END.isoformat())  # the manager's artifacts, dashboard and calendar feeds, as of the last day
    table(
        f"The views flow on {END:%a %d %b %Y}: artifacts in the Prefect UI, dashboard and calendar feeds",
        ["what", "where"],
        [("artifacts", ", ".join(site["artifacts"]))]
        + [("dashboard", p) for p in site["pages"]]
        + [("calendar feed", str(Path(p).with_name("calendar.ics"))) for p in site["pages"]],
    )
    print_summary(db, db_path, outbox, api, keep_server, ids, END)
    with Session(db) as s:  # the web application acts on the story's last day, not before it
        clocks.set_training_today(s, accounts.peer_principal(s, os_login()), FixedClock(END), END)
        s.commit()
    print_sign_in(
        db,
        db_path,
        ids,
        END,
        CM_NM[0],
        (trust.name(STU, "service-lead"), NM[0], f"SC-{ids['SC-severnside-2']}"),
    )


def _due(data: dict[str, Any]) -> str:
    dl = data.get("deadlines") or {}
    return ", ".join(f"({k} due {date.fromisoformat(v).strftime('%a %d %b %Y')})" for k, v in dl.items())
