"""``peerwatch cqc``: record CQC maternity ratings (seed 004). A rating meeting the rating criteria
enters the MSSP automatically; a warning notice, DHSC/NHSE request or HSIB flag refers the Trust
to the MSSCG; the exit criterion proposes exit to the MSSCG (``peerwatch mssp decide``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlmodel import Session

from cli.context import ROLE, of
from cli.output import console, print_json
from models import session_scope
from models.perinatal import CqcRating
from states.clock import parse_date
from states.machines.mssp import CRITERIA
from states.services.maternity import maternity_service_of
from states.services.mssp import record_cqc_assessment
from states.views.directory import organisation_by_name
from states.views.ratings import cqc_ratings

NAME = "cqc"
app = typer.Typer(
    help="CQC maternity ratings: recording one may enter the MSSP, refer the Trust to the MSSCG or propose exit.",
    no_args_is_help=True,
)

RATING = "Outstanding, Good, Requires Improvement (or RI), Inadequate"


@app.command("record")
def record(
    ctx: typer.Context,
    organisation: Annotated[str, typer.Option(help="Trust name.")],
    date_: Annotated[str, typer.Option("--date", help="Date of the CQC assessment (YYYY-MM-DD).")],
    overall: Annotated[str, typer.Option(help=RATING)],
    safe: Annotated[str, typer.Option(help=RATING)],
    well_led: Annotated[str, typer.Option("--well-led", help=RATING)],
    effective: Annotated[str | None, typer.Option(help=RATING)] = None,
    caring: Annotated[str | None, typer.Option(help=RATING)] = None,
    responsive: Annotated[str | None, typer.Option(help=RATING)] = None,
    warning_notice: Annotated[bool, typer.Option("--warning-notice", help="The CQC issued a warning notice.")] = False,
    review_request: Annotated[
        bool, typer.Option("--review-request", help="DHSC or NHSE/I requested a review of services or inquiry.")
    ] = False,
    hsib_concern: Annotated[
        bool, typer.Option("--hsib-concern", help="HSIB identified the Trust to the CQC with concerns.")
    ] = False,
    service: Annotated[
        int | None, typer.Option(help="Maternity service id (default: the Trust's one maternity service, if any).")
    ] = None,
    role: ROLE = None,
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Record a CQC assessment (audited); says whether the Trust entered the MSSP, was referred to the MSSCG, or exit is proposed."""
    run = of(ctx)
    day = parse_date(date_, "--date")
    run.db()
    with session_scope() as s:
        org = organisation_by_name(s, organisation)
        svc = maternity_service_of(s, org, service)
        who = run.acting(s, role)
        row = CqcRating(
            organisation_id=org.id,  # type: ignore[arg-type]
            service_id=svc.id if svc else None,
            assessed_on=day,
            overall=overall,
            safe=safe,
            well_led=well_led,
            effective=effective,
            caring=caring,
            responsive=responsive,
            warning_notice=warning_notice,
            dhsc_nhse_review_request=review_request,
            hsib_concern=hsib_concern,
            recorded_by=who.principal.name,  # both set by the service: the account, and the role it acts in
            recorded_role="",
            note=note,
        )
        out = record_cqc_assessment(s, row, principal=who.principal, clock=who.clock)
        result = _summary(out, org.name)
    if run.json:
        print_json(result)
        return
    for line in result["said"]:
        console.print(line, markup=False)


def _summary(out: Any, org_name: str) -> dict[str, Any]:
    r = out.rating
    said = [
        f"CQC assessment {r.id} recorded for {org_name} ({r.assessed_on.isoformat()}): overall {r.overall}, "
        f"safe {r.safe}, well-led {r.well_led}"
    ]
    if out.previous is not None:
        said.append(
            f"  compared with {out.previous.assessed_on.isoformat()}: safe {out.previous.safe}, well-led {out.previous.well_led}"
        )
    for case in out.exit_proposed:
        said.append(
            f"MSSP case {case.id}: exit criterion met: safe {case.baseline['safe']} -> {r.safe}, well-led "
            f"{case.baseline['well_led']} -> {r.well_led} (each at least one step better than at entry); exit proposed "
            f"to the MSSCG, which decides it (peerwatch mssp decide {case.id} --decision exit|remain ...)"
        )
    for case in out.continuing:
        if case.state == "exit_proposed":
            said.append(f"MSSP case {case.id}: assessment recorded; exit awaits the MSSCG's decision")
        else:
            said.append(
                f"MSSP case {case.id}: remains in the programme: exit is proposed when safe and well-led are each one "
                f"step better than at entry (safe {case.baseline.get('safe')} -> {r.safe}, "
                f"well-led {case.baseline.get('well_led')} -> {r.well_led})"
            )
    if out.entered is not None:
        said.append(
            f"MSSP case {out.entered.id}: entered the Maternity Safety Support Programme automatically "
            "(a CQC assessment meeting the rating criteria), criteria met:"
        )
        said += [f"  - {CRITERIA[c]}" for c in out.criteria]
    elif out.referred is not None:
        said.append(
            f"MSSP case {out.referred.id}: referred to the MSSCG, which decides entry "
            f"(peerwatch mssp decide {out.referred.id} --decision enter|not-enter ...), for:"
        )
        said += [f"  - {CRITERIA[c]}" for c in out.criteria]
    for case in out.awaiting:
        said.append(f"MSSP case {case.id}: already referred; the MSSCG's decision is awaited")
    if not out.criteria and not out.exit_proposed and not out.continuing:
        said.append("no MSSP entry criterion met")
    return {
        "rating_id": r.id,
        "organisation": org_name,
        "assessed_on": r.assessed_on,
        "criteria": out.criteria,
        "previous_rating_id": out.previous.id if out.previous else None,
        "mssp_entered": out.entered.id if out.entered else None,
        "mssp_referred": out.referred.id if out.referred else None,
        "mssp_exit_proposed": [c.id for c in out.exit_proposed],
        "mssp_continuing": [c.id for c in out.continuing],
        "mssp_awaiting_decision": [c.id for c in out.awaiting],
        "said": said,
    }


@app.command("list")
def list_ratings(
    ctx: typer.Context, organisation: Annotated[str | None, typer.Option(help="Only this Trust.")] = None
) -> None:
    """Recorded CQC maternity ratings, oldest first."""
    run = of(ctx)
    with Session(run.db()) as s:
        rows = cqc_ratings(s, organisation)
    run.rows(
        "CQC ratings",
        [
            "id",
            "trust",
            "service",
            "assessed",
            "overall",
            "safe",
            "effective",
            "caring",
            "responsive",
            "well_led",
            "events",
        ],
        rows,
    )
