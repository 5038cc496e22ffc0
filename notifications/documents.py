"""Documents rendered from stored data: the peer review report as HTML and as PDF (fpdf2).

The data comes from ``states.report.document``; nothing here queries the database.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from notifications.render import environment

_LATIN1 = str.maketrans({"\u2013": "-", "\u2014": "-", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                         "\u2026": "...", "\u2022": "-", "\u2265": ">=", "\u2264": "<=", "\u00a0": " "})


def _t(value: Any) -> str:
    """Text the PDF core fonts can draw (Latin-1)."""
    text = "" if value is None else (value.strftime("%a %d %b %Y") if isinstance(value, date) else str(value))
    return text.translate(_LATIN1).encode("latin-1", "replace").decode("latin-1")


def render_report_html(doc: dict[str, Any], draft: bool = False) -> str:
    return environment().get_template("report.html.j2").render(**doc, draft=draft)


def render_report_pdf(doc: dict[str, Any], draft: bool = False) -> bytes:
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    pdf = FPDF(format="A4")
    pdf.set_title(_t(f"Peer review report: {doc['service']['name']}"))
    pdf.set_author(_t(doc["network"]["name"]))
    made = doc["report"].get("approved_on") or doc["report"]["basis_date"]
    pdf.set_creation_date(datetime(made.year, made.month, made.day, tzinfo=timezone.utc))  # same data, same bytes
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    heading = FontFace(emphasis="BOLD", fill_color=(220, 230, 242))

    def h(text: str, size: int = 13) -> None:
        pdf.ln(2)
        pdf.set_font("Helvetica", "B", size)
        pdf.multi_cell(0, 7, _t(text), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 10)

    def p(text: str) -> None:
        pdf.multi_cell(0, 5.5, _t(text), new_x="LMARGIN", new_y="NEXT")

    def table(headings: list[str], rows: list[list[Any]], widths: tuple[int, ...]) -> None:
        with pdf.table(col_widths=widths, headings_style=heading, line_height=5.5, text_align="LEFT") as t:
            t.row([_t(x) for x in headings])
            for r in rows:
                t.row([_t(x) for x in r])

    report, svc = doc["report"], doc["service"]
    h(f"{'DRAFT for factual accuracy check - ' if draft else ''}Peer review report", 16)
    p(f"{svc['name']} ({svc['kind']}), {doc['organisation']['name']}")
    p(f"{doc['network']['name']}. Report {report['id']}, issue {report['issue']}.")
    if doc["visit"]:
        p(f"Peer review visit on {_t(doc['visit']['date'])} ({doc['visit']['mode']}).")
    else:
        p(f"Based on the self-assessment received on {_t(report['basis_date'])}.")
    if report.get("approved_on"):
        p(f"Approved {_t(report['approved_on'])}." + (f" Published {_t(report['published_on'])}." if report.get("published_on") else "")
          + (f" Re-issued {_t(report['reissued_on'])} after an appeal." if report.get("reissued_on") else ""))

    h("Compliance against the standards")
    if doc["compliance"]:
        table(["Ref", "Standard", "Compliance", "Comment"],
              [[c["ref"], c.get("descriptor", ""), c["status"], c.get("comment", "")] for c in doc["compliance"]], (18, 80, 30, 62))
        counts = doc["counts"]
        p(f"Met {counts['Met']}, Partially Met {counts['Partially Met']}, Unmet {counts['Unmet']}"
          + (f"; total achievement {doc['achievement']}%." if doc["achievement"] is not None else "."))
    else:
        p("No standards recorded.")

    h("Positive developments and achievements")
    for text in doc["positives"] or ["None recorded."]:
        p(f"- {text}")

    h("Immediate risks, serious concerns and general concerns")
    if doc["risks"]:
        names = {"IR": "Immediate risk", "SC": "Serious concern", "GC": "General concern"}
        table(["Ref", "Level", "Finding", "Standard", "Score"],
              [[r["ref"], names[r["level"]], r["title"] + (" (withdrawn)" if r["state"] == "withdrawn" else ""),
                r["standard_ref"] or "", r["score"] or ""] for r in doc["risks"]],
              (18, 32, 92, 25, 23))
    else:
        p("None identified.")

    if doc["inaccuracies"]:
        h("Factual accuracy check")
        table(["#", "Inaccuracy stated by the service", "Outcome"],
              [[i["id"], i["text"], i["outcome"] or "pending"] for i in doc["inaccuracies"]], (12, 148, 30))
    return bytes(pdf.output())
