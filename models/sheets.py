"""Spreadsheet formats shared by what reads them (``states/``) and what writes them (``notifications/``).

The Appendix 2 self-assessment layout (000 s5.1): its sheets and columns, exactly, in order;
the import reads a return back by these names and the renderer writes them. And the
formula-injection rule (OWASP "CSV injection") every spreadsheet or CSV export follows: text
that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would be read as a
formula (``=cmd|' /C calc'!A0``) by Excel or LibreOffice. A leaf: it imports nothing of the project.
"""

from __future__ import annotations

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
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")  # OWASP CSV injection: a cell starting so is a formula


def is_formula_like(value: Any) -> bool:
    """Text a spreadsheet program would read as a formula (or a DDE command)."""
    return isinstance(value, str) and value.startswith(FORMULA_TRIGGERS)


def csv_value(value: Any) -> Any:
    """A value for a CSV file: text that could be read as a formula gets a leading ``'`` (OWASP);
    numbers, dates and other text are left as they are."""
    if is_formula_like(value):
        return "'" + value
    return value
