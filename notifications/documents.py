"""Documents rendered from stored data: the peer review report as HTML and as PDF (fpdf2).

The data comes from ``states.machines.report.document``; nothing here queries the database.

The PDF embeds a Unicode font (DejaVu Sans, which ships with matplotlib, a dependency), so
names such as "Łukasz Wiśniewski", "Nguyễn Thị Ánh", "Llŷr Gwŷn" or "Seán Ó Briain" print as
written: the PDF core fonts (Helvetica) know only Latin-1 and turned every other letter into
"?" (issue 12 item 7). Every page carries a running header (network, service, report, issue,
draft or final) and a footer "page N of M"; the first page opens with a document-control block.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from notifications.render import environment

FONT_FAMILY = "DejaVuSans"
FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}
# Characters no font should draw: C0/C1 controls (a tab or newline is laid out as a space)
_CONTROLS = {c: " " for c in (*range(0x00, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)}


class FontMissing(RuntimeError):
    """The Unicode font the PDF needs is not installed."""


@lru_cache(maxsize=1)
def font_files() -> dict[str, Path]:
    """DejaVu Sans (regular and bold) from matplotlib's own data folder.

    ``matplotlib.get_data_path()`` does not import pyplot (nor any backend), so this stays cheap
    and display-free."""
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - matplotlib is a runtime dependency
        raise FontMissing("matplotlib is not installed: the report PDF needs its DejaVu Sans font") from exc
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    files = {style: folder / name for style, name in FONT_FILES.items()}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FontMissing(f"the report PDF's font is missing: {', '.join(missing)} (reinstall matplotlib)")
    return files


def _t(value: Any) -> str:
    """Text as the PDF draws it: dates as "Thu 12 Nov 2026", composed (NFC) so that a name typed
    with combining accents uses the font's precomposed letters, controls as spaces."""
    text = "" if value is None else (value.strftime("%a %d %b %Y") if isinstance(value, date) else str(value))
    return unicodedata.normalize("NFC", text).translate(_CONTROLS)


def render_report_html(doc: dict[str, Any], draft: bool = False) -> str:
    return environment().get_template("report.html.j2").render(**doc, draft=draft)


def control_block(doc: dict[str, Any], draft: bool) -> list[tuple[str, str]]:
    """The document-control block: which document this is, and which issue of it."""
    report, svc, net = doc["report"], doc["service"], doc["network"]
    if draft:
        status = "DRAFT for factual accuracy check (not for circulation)"
        when = (
            f"draft of the visit on {_t(doc['visit']['date'])}"
            if doc["visit"]
            else f"draft of the self-assessment received on {_t(report['basis_date'])}"
        )
    else:
        status = "Final" + (", published" if report.get("published_on") else "")
        issued = report.get("reissued_on") or report.get("approved_on")
        when = (
            f"{_t(issued)} ({'re-issued after an appeal' if report.get('reissued_on') else 'approved'})"
            if issued
            else _t(report["basis_date"])
        )
    return [
        ("Network", f"{net['name']} ({net['code']})" if net.get("code") else net["name"]),
        ("Service", f"{svc['name']} ({svc['kind']}), {doc['organisation']['name']}"),
        ("Report id", f"Report-{report['id']}"),
        ("Issue", str(report["issue"])),
        ("Status", status),
        ("Date", when),
    ]


def render_report_pdf(doc: dict[str, Any], draft: bool = False) -> bytes:
    from fpdf import FPDF  # lazy: start-up time (fpdf2 loads only when a PDF is made)
    from fpdf.fonts import FontFace  # lazy: start-up time (fpdf2)

    report, svc, net = doc["report"], doc["service"], doc["network"]
    running = _t(
        f"{net.get('code') or net['name']} · {svc['name']} · Report-{report['id']} issue {report['issue']} · "
        f"{'DRAFT' if draft else 'Final'}"
    )

    class Report(FPDF):
        def header(self) -> None:
            self.set_font(FONT_FAMILY, "", 8)
            self.set_text_color(90, 90, 90)
            self.cell(0, 5, running, new_x="LMARGIN", new_y="NEXT", align="L")
            self.set_draw_color(160, 160, 160)
            self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
            self.ln(3)
            self.set_text_color(0, 0, 0)
            self.set_font(FONT_FAMILY, "", 10)

        def footer(self) -> None:
            self.set_y(-12)
            self.set_font(FONT_FAMILY, "", 8)
            self.set_text_color(90, 90, 90)
            self.cell(0, 5, f"page {self.page_no()} of {self.str_alias_nb_pages}", align="C")
            self.set_text_color(0, 0, 0)

    pdf = Report(format="A4")
    for style, path in font_files().items():
        pdf.add_font(FONT_FAMILY, style, str(path))
    pdf.set_title(_t(f"Peer review report: {svc['name']}"))
    pdf.set_author(_t(net["name"]))
    pdf.set_subject(_t(f"Report-{report['id']} issue {report['issue']}, {'draft' if draft else 'final'}"))
    made = report.get("reissued_on") or report.get("approved_on") or report["basis_date"]
    pdf.set_creation_date(datetime(made.year, made.month, made.day, tzinfo=UTC))  # same data, same bytes
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_page()
    heading = FontFace(emphasis="BOLD", fill_color=(220, 230, 242))

    def h(text: str, size: int = 13) -> None:
        pdf.ln(2)
        pdf.set_font(FONT_FAMILY, "B", size)
        pdf.multi_cell(0, 7, _t(text), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT_FAMILY, "", 10)

    def p(text: str) -> None:
        pdf.multi_cell(0, 5.5, _t(text), new_x="LMARGIN", new_y="NEXT")

    def table(headings: list[str] | None, rows: list[list[Any]], widths: tuple[int, ...]) -> None:
        with pdf.table(
            col_widths=widths,
            headings_style=heading,
            line_height=5.5,
            text_align="LEFT",
            first_row_as_headings=headings is not None,
        ) as t:
            if headings is not None:
                t.row([_t(x) for x in headings])
            for r in rows:
                t.row([_t(x) for x in r])

    h(f"{'DRAFT for factual accuracy check - ' if draft else ''}Peer review report", 16)
    pdf.set_font(FONT_FAMILY, "", 9)
    table(None, [list(r) for r in control_block(doc, draft)], (30, 160))
    pdf.set_font(FONT_FAMILY, "", 10)
    pdf.ln(2)
    p(f"{svc['name']} ({svc['kind']}), {doc['organisation']['name']}")
    p(f"{net['name']}. Report {report['id']}, issue {report['issue']}.")
    if doc["visit"]:
        p(f"Peer review visit on {_t(doc['visit']['date'])} ({doc['visit']['mode']}).")
    else:
        p(f"Based on the self-assessment received on {_t(report['basis_date'])}.")
    if report.get("approved_on"):
        p(
            f"Approved {_t(report['approved_on'])}."
            + (f" Published {_t(report['published_on'])}." if report.get("published_on") else "")
            + (f" Re-issued {_t(report['reissued_on'])} after an appeal." if report.get("reissued_on") else "")
        )

    h("Compliance against the standards")
    if doc["compliance"]:
        table(
            ["Ref", "Standard", "Compliance", "Comment"],
            [[c["ref"], c.get("descriptor", ""), c["status"], c.get("comment", "")] for c in doc["compliance"]],
            (18, 80, 30, 62),
        )
        counts = doc["counts"]
        p(
            f"Met {counts['Met']}, Partially Met {counts['Partially Met']}, Unmet {counts['Unmet']}"
            + (f"; total achievement {doc['achievement']}%." if doc["achievement"] is not None else ".")
        )
    else:
        p("No standards recorded.")

    h("Positive developments and achievements")
    for text in doc["positives"] or ["None recorded."]:
        p(f"- {text}")

    h("Immediate risks, serious concerns and general concerns")
    if doc["risks"]:
        names = {"IR": "Immediate risk", "SC": "Serious concern", "GC": "General concern"}
        table(
            ["Ref", "Level", "Finding", "Standard", "Score"],
            [
                [
                    r["ref"],
                    names[r["level"]],
                    r["title"] + (" (withdrawn)" if r["state"] == "withdrawn" else ""),
                    r["standard_ref"] or "",
                    r["score"] or "",
                ]
                for r in doc["risks"]
            ],
            (18, 32, 92, 25, 23),
        )
    else:
        p("None identified.")

    if doc["inaccuracies"]:
        h("Factual accuracy check")
        table(
            ["#", "Inaccuracy stated by the service", "Outcome"],
            [[i["id"], i["text"], i["outcome"] or "pending"] for i in doc["inaccuracies"]],
            (12, 148, 30),
        )
    return bytes(pdf.output())
