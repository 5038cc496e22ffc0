"""The Appendix 2 self-assessment declaration spreadsheet (000 s5.1), rendered with openpyxl,
and the formula-injection rule every spreadsheet or CSV export of the project follows.

Rendering only: the data comes from ``states.machines.selfassessment.workbook_document``; nothing
here queries the database or judges a row (the import's checks are in
``states/machines/standards.py`` and ``states/services/selfassessment_import.py``).

Formula injection (OWASP "CSV injection"): text that begins with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return would be read as a formula (``=cmd|' /C calc'!A0``) by Excel or
LibreOffice. Every exported cell goes through ``xlsx_value``/``set_text_cell`` (XLSX: the
cell is written as a string, never a formula, with Excel's "quote prefix" so editing it keeps
it text; the text itself is unchanged, so a round trip stores exactly what the service typed)
or ``csv_value`` (CSV: the OWASP rule, a leading ``'``).
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

# The Appendix 2 layout and the OWASP formula rule are shared with the import (states/): models/sheets.py.
from models.sheets import (  # noqa: F401  (re-exported: the renderer's public names)
    ABOUT,
    ABOUT_REFERENCE,
    COLUMNS,
    FORMULA_TRIGGERS,
    SHEET,
    XLSX_TYPE,
    csv_value,
    is_formula_like,
)

# Column widths (characters of the default font): wide enough to read, narrow enough that a
# landscape A4 page fitted to width keeps the text legible (about 8 pt).
_WIDTHS = (8, 40, 26, 26, 26, 15, 11, 30, 24)
_ABOUT_WIDTHS = (24, 110)
LINE_POINTS = 15.0  # one line of 11 pt Calibri / Carlito / Liberation Sans
MAX_ROW_POINTS = 409.0  # Excel's largest row height


def set_text_cell(cell: Any, value: Any) -> Any:
    """Write ``value`` to an openpyxl cell; text is always stored as text, never as a formula.

    openpyxl turns any string starting with ``=`` into a formula: here it stays a string, and
    formula-like text also gets the quote prefix (Excel and LibreOffice show it as typed and
    keep it text when it is edited)."""
    cell.value = value
    if isinstance(value, str):
        cell.data_type = "s"
        if is_formula_like(value):
            cell.quotePrefix = True
    return cell


def text_lines(value: Any, width: float) -> int:
    """Lines a wrapped cell of ``width`` characters needs (a word never split, as the programs wrap)."""
    if value is None or value == "":
        return 1
    per_line = max(1, int(width * 1.1) - 1)
    lines = 0
    for para in str(value).split("\n"):
        n, used = 1, 0
        for word in para.split():
            w = len(word)
            if used and used + 1 + w <= per_line:
                used += 1 + w
                continue
            if used:
                n += 1  # the word starts a new line
            full, rest = divmod(w, per_line)  # a word longer than the column breaks anywhere
            n, used = (n + full - 1, per_line) if rest == 0 else (n + full, rest)
        lines += n
    return lines


def fit_row_heights(ws: Any, widths: tuple[float, ...], first_row: int = 1) -> None:
    """Set each row's height to fit its wrapped text (the programs do not grow rows written by openpyxl)."""
    for r in range(first_row, ws.max_row + 1):
        lines = max(text_lines(ws.cell(row=r, column=c).value, w) for c, w in enumerate(widths, start=1))
        ws.row_dimensions[r].height = min(MAX_ROW_POINTS, lines * LINE_POINTS + 3)


def print_layout(ws: Any, title_rows: str | None = None) -> None:
    """Landscape A4, fitted to one page wide (as many tall as needed), header rows on every page."""
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.page_margins.top = ws.page_margins.bottom = 0.6
    ws.print_options.gridLines = True
    if title_rows:
        ws.print_title_rows = title_rows


def render_selfassessment_xlsx(doc: dict[str, Any]) -> bytes:
    """The spreadsheet a service fills in: one row per standard, the service's columns left open."""
    from openpyxl import Workbook  # lazy: start-up time (openpyxl loads only when a workbook is made)
    from openpyxl.styles import Alignment, Font, PatternFill  # lazy: openpyxl
    from openpyxl.utils import get_column_letter  # lazy: openpyxl
    from openpyxl.worksheet.datavalidation import DataValidation  # lazy: openpyxl

    wb = Workbook()
    ws = wb.active
    ws.title = SHEET
    for c, name in enumerate(COLUMNS, start=1):
        set_text_cell(ws.cell(row=1, column=c), name)
    head_fill = PatternFill("solid", fgColor="DCE6F2")
    for i, width in enumerate(_WIDTHS, start=1):
        cell = ws.cell(row=1, column=i)
        cell.font, cell.fill = Font(bold=True), head_fill
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        ws.column_dimensions[get_column_letter(i)].width = width
    ws.freeze_panes = "B2"  # the header row and the Ref No. stay in view

    with_band = DataValidation(
        type="list",
        formula1='"Met,Partially Met,Unmet"',
        allow_blank=True,
        error="Choose Met, Partially Met or Unmet",
        errorTitle="Self-Assessment",
    )
    no_band = DataValidation(
        type="list",
        formula1='"Met,Unmet"',
        allow_blank=True,
        error="This standard has no 'Partially Met' band: choose Met or Unmet",
        errorTitle="Self-Assessment",
    )
    figure = DataValidation(
        type="decimal",
        operator="between",
        formula1="0",
        formula2="100",
        allow_blank=True,
        error="A percentage from 0 to 100",
        errorTitle="Figure Achieved",
    )
    for dv in (with_band, no_band, figure):
        ws.add_data_validation(dv)
    wrap = Alignment(wrap_text=True, vertical="top")
    for r, std in enumerate(doc["rows"], start=2):
        values = [
            std["ref"],
            std["descriptor"],
            std["criteria_met"],
            std["criteria_partly"] or "",
            std["criteria_unmet"],
            std.get("self_status") or None,
            std.get("figure"),
            std.get("comments") or None,
            std.get("evidence_location") or None,
        ]
        for c, value in enumerate(values, start=1):
            cell = set_text_cell(ws.cell(row=r, column=c), value)
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
        (
            "Return by",
            a["return_by"].strftime("%a %d %b %Y") if a.get("return_by") else "as agreed with the network office",
        ),
        ("", ""),
        (
            "How to complete",
            "For each standard on the Self-Assessment sheet, fill in Self-Assessment (Met, Partially Met "
            "or Unmet), Figure Achieved, Supporting Comments and Evidence location.",
        ),
        (
            "",
            "Figure Achieved is a percentage from 0 to 100. Where a standard's criteria give percentages, the status "
            "follows the figure (e.g. 1.2: Met >= 98%, Partially Met 90-98%, Unmet < 90%), and the figure is required.",
        ),
        ("", "'Partially Met' applies only where the standard has a 'Partially Met' criterion."),
        (
            "",
            "Every row needs an Evidence location, e.g. work plan, annual report, Operational Policy or during visit.",
        ),
        ("", "Do not add, remove or rename columns, and keep the Ref No. of each standard."),
    ]
    for r, (label, value) in enumerate(lines, start=1):
        for c, v in enumerate((label, value), start=1):
            set_text_cell(about.cell(row=r, column=c), v).alignment = wrap
        about.cell(row=r, column=1).font = Font(bold=True)
    for i, width in enumerate(_ABOUT_WIDTHS, start=1):
        about.column_dimensions[get_column_letter(i)].width = width
    fit_row_heights(ws, _WIDTHS)
    fit_row_heights(about, _ABOUT_WIDTHS)
    print_layout(ws, title_rows="1:1")
    print_layout(about)

    made = doc.get("created")
    if made is not None:  # same data, same document properties
        wb.properties.created = wb.properties.modified = made.replace(tzinfo=None)
    wb.properties.creator = doc["network"]["name"]
    wb.properties.title = f"Self-assessment declaration {a['ref']}"
    buf = BytesIO()
    wb.save(buf)
    return buf.getvalue()
