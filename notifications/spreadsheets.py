"""The Appendix 2 self-assessment declaration spreadsheet (000 s5.1), rendered with openpyxl.

Rendering only: the data comes from ``states.selfassessment.workbook_document``; nothing
here queries the database or judges a row (the import's checks are in
``states/selfassessment.py``).
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

# The Appendix 2 columns, exactly, in order. The import reads them back by these names.
COLUMNS = (
    "Ref No.",
    "Descriptor",
    "Criteria for 'Met'",
    "Criteria for 'Partially Met'",
    "Criteria for 'Unmet'",
    "Self-Assessment",
    "Figure Achieved",
    "Supporting Comments",
    "Evidence location",
)
SHEET = "Self-Assessment"
ABOUT = "About"
ABOUT_REFERENCE = "Reference"  # the About sheet's label of the assessment reference (checked on import)
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_WIDTHS = (8, 50, 32, 32, 32, 16, 12, 40, 32)


def render_selfassessment_xlsx(doc: dict[str, Any]) -> bytes:
    """The spreadsheet a service fills in: one row per standard, the service's columns left open."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    wb = Workbook()
    ws = wb.active
    ws.title = SHEET
    ws.append(list(COLUMNS))
    head_fill = PatternFill("solid", fgColor="DCE6F2")
    for i, width in enumerate(_WIDTHS, start=1):
        cell = ws.cell(row=1, column=i)
        cell.font, cell.fill = Font(bold=True), head_fill
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        ws.column_dimensions[get_column_letter(i)].width = width
    ws.freeze_panes = "C2"

    with_band = DataValidation(type="list", formula1='"Met,Partially Met,Unmet"', allow_blank=True,
                               error="Choose Met, Partially Met or Unmet", errorTitle="Self-Assessment")
    no_band = DataValidation(type="list", formula1='"Met,Unmet"', allow_blank=True,
                             error="This standard has no 'Partially Met' band: choose Met or Unmet", errorTitle="Self-Assessment")
    figure = DataValidation(type="decimal", operator="between", formula1="0", formula2="100", allow_blank=True,
                            error="A percentage from 0 to 100", errorTitle="Figure Achieved")
    for dv in (with_band, no_band, figure):
        ws.add_data_validation(dv)
    wrap = Alignment(wrap_text=True, vertical="top")
    for r, std in enumerate(doc["rows"], start=2):
        values = [std["ref"], std["descriptor"], std["criteria_met"], std["criteria_partly"] or "", std["criteria_unmet"],
                  std.get("self_status") or None, std.get("figure"), std.get("comments") or None, std.get("evidence_location") or None]
        for c, value in enumerate(values, start=1):
            cell = ws.cell(row=r, column=c, value=value)
            cell.alignment = wrap
        ws.cell(row=r, column=1).number_format = "@"  # "1.10" stays text, not the number 1.1
        ws.cell(row=r, column=7).number_format = "0.0"
        (with_band if std["has_partly_band"] else no_band).add(f"F{r}")
        figure.add(f"G{r}")

    about = wb.create_sheet(ABOUT)
    a = doc["assessment"]
    lines: list[tuple[str, Any]] = [
        ("Self-assessment declaration", f"{doc['service']['name']} ({doc['service']['kind']})"),
        ("Trust", doc["organisation"]["name"]),
        ("Network", doc["network"]["name"]),
        ("Programme year", a["programme_year"]),
        ("Standards", f"{doc['standard_set']['name']}, version {doc['standard_set']['version']}"),
        (ABOUT_REFERENCE, a["ref"]),
        ("Return by", a["return_by"].strftime("%a %d %b %Y") if a.get("return_by") else "as agreed with the network office"),
        ("", ""),
        ("How to complete", "For each standard on the Self-Assessment sheet, fill in Self-Assessment (Met, Partially Met "
                            "or Unmet), Figure Achieved, Supporting Comments and Evidence location."),
        ("", "Figure Achieved is a percentage from 0 to 100. Where a standard's criteria give percentages, the status "
             "follows the figure (e.g. 1.2: Met >= 98%, Partially Met 90-98%, Unmet < 90%), and the figure is required."),
        ("", "'Partially Met' applies only where the standard has a 'Partially Met' criterion."),
        ("", "Every row needs an Evidence location, e.g. work plan, annual report, Operational Policy or during visit."),
        ("", "Do not add, remove or rename columns, and keep the Ref No. of each standard."),
    ]
    for label, value in lines:
        about.append([label, value])
    about.column_dimensions["A"].width, about.column_dimensions["B"].width = 26, 100
    for row in about.iter_rows(min_col=1, max_col=1):
        row[0].font = Font(bold=True)

    made = doc.get("created")
    if made is not None:  # same data, same document properties
        wb.properties.created = wb.properties.modified = made.replace(tzinfo=None)
    wb.properties.creator = doc["network"]["name"]
    wb.properties.title = f"Self-assessment declaration {a['ref']}"
    buf = BytesIO()
    wb.save(buf)
    return buf.getvalue()
