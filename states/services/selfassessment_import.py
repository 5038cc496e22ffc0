"""Reading a returned Appendix 2 spreadsheet (seed 000 s5.1): input handling, before the machine.

``check_upload`` refuses, before anything parses it, a file that is not an .xlsx or is too big
for one (the limits are local policy, ``SelfAssessmentPolicy``); ``read_workbook`` reads the
rows as plain values, text as text (a formula's literal text, never its result);
``parse_spreadsheet`` reads and judges them against the standard set
(``states.machines.standards.check_rows``). Pure: nothing here stores anything.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from datetime import date, datetime
from io import BytesIO
from typing import Any

from models.selfassessment import Standard
from models.sheets import ABOUT, ABOUT_REFERENCE, COLUMNS, SHEET
from states.machines.standards import SelfAssessmentPolicy, SpreadsheetRejected, cell_text, check_rows

SAVE_AS_XLSX = "open it in Excel or LibreOffice Calc, choose Save As, and save it as .xlsx (Excel 2007-365 workbook)"
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Excel 97-2003 .xls, or an encrypted (password) .xlsx
_ROW_OR_CELL = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(row|c)(?=[\s>/])([^>]*)>")  # in document order
_REF_ATTR = re.compile(rb"\sr\s*=\s*[\"']\$?([A-Za-z]{0,3})\$?(\d*)[\"']")
_DIMENSION = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?dimension\s[^>]*?ref\s*=\s*[\"']([^\"']*)[\"']")
_CELL_REF = re.compile(r"\$?([A-Za-z]{1,3})\$?(\d+)")


def _column_number(letters: str | bytes) -> int:
    n = 0
    for ch in (letters.decode("ascii") if isinstance(letters, bytes) else letters).upper():
        n = n * 26 + ord(ch) - 64
    return n


def _column_letters(n: int) -> str:
    out = ""
    while n:
        n, rem = divmod(n - 1, 26)
        out = chr(65 + rem) + out
    return out


def too_big(size: int, limit: int) -> str:
    return (
        f"file: {size:,} bytes is over the limit of {limit:,} bytes for a self-assessment spreadsheet "
        "(PEERWATCH_SELFASSESSMENT_MAX_FILE_BYTES): send the Appendix 2 workbook only, without pictures"
    )


def check_upload(data: bytes, policy: SelfAssessmentPolicy | None = None) -> None:
    """Refuse, before anything parses it, a file that is not an .xlsx or is too big for one.

    In order, each a single clear problem: the file's size; an .xls or OpenDocument (.ods)
    file ("save it as .xlsx"); not a zip; too many parts; the total unzipped size and the
    compression ratio (from the zip's directory: Python's zipfile never inflates a part beyond
    its declared size, it fails the CRC instead); a DTD (no spreadsheet has one: entity
    expansion); and, reading each XML part in 1 MB pieces, a sheet whose declared dimension
    (``<dimension ref>``) or whose actual rows and cells reach beyond the row and column
    limits. Nothing here holds more than one piece of one part in memory.
    """
    policy = policy or SelfAssessmentPolicy.from_env()
    limit = policy.selfassessment_max_file_bytes
    if len(data) > limit:
        raise SpreadsheetRejected([too_big(len(data), limit)])
    if data.startswith(_OLE2):
        raise SpreadsheetRejected(
            [
                f"file: an Excel 97-2003 (.xls) or password-protected workbook, which cannot be read: {SAVE_AS_XLSX}, "
                "without a password"
            ]
        )
    if not data.startswith(b"PK"):
        kind = "a PDF" if data.startswith(b"%PDF") else "text (CSV?)" if data[:512].isascii() else "not a spreadsheet"
        raise SpreadsheetRejected([f"file: not an .xlsx workbook ({kind}): {SAVE_AS_XLSX}"])
    try:
        zf = zipfile.ZipFile(BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise SpreadsheetRejected(
            [f"file: not an .xlsx workbook (a damaged or unreadable zip): {SAVE_AS_XLSX}"]
        ) from None
    names = {i.filename for i in infos}
    if "mimetype" in names or "content.xml" in names:
        mime = (
            zf.read("mimetype")[:100].decode("ascii", "replace").strip()
            if "mimetype" in names and zf.getinfo("mimetype").file_size < 200
            else ""
        )
        what = (
            "an OpenDocument spreadsheet (.ods)"
            if "spreadsheet" in mime or not mime
            else f"an OpenDocument file ({mime})"
        )
        raise SpreadsheetRejected([f"file: {what}, which cannot be read: {SAVE_AS_XLSX}"])
    if "[Content_Types].xml" not in names or not any(n.startswith("xl/") for n in names):
        raise SpreadsheetRejected([f"file: not an .xlsx workbook (a zip without a workbook in it): {SAVE_AS_XLSX}"])
    if len(infos) > policy.selfassessment_max_parts:
        raise SpreadsheetRejected(
            [f"file: {len(infos):,} parts inside the workbook, over the limit of {policy.selfassessment_max_parts:,}"]
        )
    total = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos)
    cap, ratio = policy.selfassessment_max_uncompressed_bytes, policy.selfassessment_max_compression_ratio
    if total > cap:
        raise SpreadsheetRejected(
            [
                f"file: unzips to {total:,} bytes, over the limit of {cap:,} "
                "(PEERWATCH_SELFASSESSMENT_MAX_UNCOMPRESSED_BYTES): refused unopened"
            ]
        )
    big = 1_000_000
    for i in infos:
        if i.file_size > big and i.file_size > ratio * max(1, i.compress_size):
            raise SpreadsheetRejected(
                [
                    f"file: part {i.filename} is compressed {i.file_size // max(1, i.compress_size):,} to 1, over the limit "
                    f"of {ratio} to 1 (PEERWATCH_SELFASSESSMENT_MAX_COMPRESSION_RATIO): refused unopened"
                ]
            )
    if total > big and total > ratio * max(1, packed):
        raise SpreadsheetRejected(
            [
                f"file: compressed {total // max(1, packed):,} to 1, over the limit of {ratio} to 1 "
                "(PEERWATCH_SELFASSESSMENT_MAX_COMPRESSION_RATIO): refused unopened"
            ]
        )
    for info in infos:
        if info.filename.lower().endswith((".xml", ".rels", ".vml")):
            _check_part(zf, info, policy)


def _check_part(zf: Any, info: Any, policy: SelfAssessmentPolicy) -> None:
    """Stream one XML part: no DTD; a sheet's declared and actual extent within the limits."""
    max_rows, max_cols = policy.selfassessment_max_rows, policy.selfassessment_max_columns
    where = info.filename.rsplit("/", 1)[-1].removesuffix(".xml")

    def beyond(row: int, col: int, how: str) -> None:
        if row > max_rows:
            raise SpreadsheetRejected(
                [
                    f"sheet part {where}: {how} row {row:,}, beyond the limit of {max_rows:,} rows "
                    "(PEERWATCH_SELFASSESSMENT_MAX_ROWS): delete the rows below the standards and save again"
                ]
            )
        if col > max_cols:
            raise SpreadsheetRejected(
                [
                    f"sheet part {where}: {how} column {_column_letters(col)}, beyond the limit of "
                    f"{max_cols} columns ({_column_letters(max_cols)}; PEERWATCH_SELFASSESSMENT_MAX_COLUMNS): "
                    "delete the extra columns and save again"
                ]
            )

    row_no, col_no, first, carry = 0, 0, True, b""
    last_row = str(max_rows).encode()  # compared as text: no number parsed per cell
    row_digits = len(last_row)
    try:
        with zf.open(info) as part:
            while True:
                piece = part.read(1 << 20)
                text = carry + piece
                if not piece:
                    break
                cut = text.rfind(b"<")
                if cut <= 0:
                    cut = len(text) if len(text) > 4096 else 0  # no tag start to keep: a long text run
                body, carry = text[:cut], text[cut:]
                if first:
                    head = body[:4096].upper()
                    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
                        raise SpreadsheetRejected(
                            [f"file: part {info.filename} declares a DTD, which no spreadsheet does: refused unopened"]
                        )
                    dim = _DIMENSION.search(body[:65536])
                    if dim:
                        for corner in dim.group(1).decode("ascii", "replace").split(":"):
                            cell = _CELL_REF.fullmatch(corner.strip())
                            if cell:
                                beyond(
                                    int(cell.group(2)),
                                    _column_number(cell.group(1)),
                                    f"declares its used range as {dim.group(1).decode('ascii', 'replace')}, to",
                                )
                    first = False
                elif b"<!ENTITY" in body.upper():
                    raise SpreadsheetRejected(
                        [f"file: part {info.filename} declares an entity, which no spreadsheet does: refused unopened"]
                    )
                for m in _ROW_OR_CELL.finditer(body):
                    ref = _REF_ATTR.search(m.group(2))
                    if m.group(1) == b"row":
                        row_no = int(ref.group(2)) if ref and ref.group(2) else row_no + 1
                        col_no = 0
                        if row_no > max_rows:
                            beyond(row_no, 0, "uses")
                    elif ref and ref.group(1):
                        letters, digits = ref.group(1).upper(), ref.group(2)
                        col_no = _column_number(letters)
                        if (
                            col_no > max_cols
                            or len(digits) > row_digits
                            or (len(digits) == row_digits and digits > last_row)
                        ):
                            beyond(int(digits or 0), col_no, "has a cell at")
                    else:  # a cell without a reference is the next column
                        col_no += 1
                        if col_no > max_cols:
                            beyond(row_no, col_no, "has a cell at")
    except zipfile.BadZipFile:
        raise SpreadsheetRejected(
            [f"file: part {info.filename} is damaged (it does not unzip to its declared size): refused"]
        ) from None
    except (
        OSError,
        EOFError,
        NotImplementedError,
        RuntimeError,
        zlib.error,
    ) as exc:  # zlib errors, encrypted parts, unknown compression
        raise SpreadsheetRejected(
            [f"file: part {info.filename} cannot be unzipped ({type(exc).__name__}): {SAVE_AS_XLSX}"]
        ) from None


def read_workbook(data: bytes, expected_ref: str | None = None) -> list[dict[str, Any]]:
    """The rows of a returned Appendix 2 workbook, as plain values with their spreadsheet row numbers.

    ``check_upload`` refuses an oversized or hostile file first. Text is read as text: a cell
    holding a formula (``=cmd|' /C calc'!A0``) is stored as the formula's literal text, never
    its result; only Figure Achieved takes a formula's result (the value Excel saved with it).
    """
    from openpyxl import load_workbook  # lazy: openpyxl is slow to import; only an import reads a workbook

    check_upload(data)
    try:
        wb = load_workbook(BytesIO(data), data_only=False)
    except Exception as exc:
        raise SpreadsheetRejected([f"file: not an .xlsx workbook ({type(exc).__name__}): {SAVE_AS_XLSX}"]) from None
    if not wb.worksheets:
        raise SpreadsheetRejected([f"file: the workbook has no sheet: {SAVE_AS_XLSX}"])
    ws = wb[SHEET] if SHEET in wb.sheetnames else wb.worksheets[0]
    problems: list[str] = []
    if expected_ref and ABOUT in wb.sheetnames:
        for label, value, *_ in wb[ABOUT].iter_rows(min_col=1, max_col=2, values_only=True):
            if label == ABOUT_REFERENCE and value and str(value).strip() != expected_ref:
                problems.append(
                    f"sheet {ABOUT}, {ABOUT_REFERENCE}: this spreadsheet is for {str(value).strip()}, not {expected_ref}"
                )
    header = next(
        (r for r in range(1, min(ws.max_row, 10) + 1) if cell_text(ws.cell(row=r, column=1).value) == COLUMNS[0]), None
    )
    if header is None:
        raise SpreadsheetRejected([*problems, f"sheet {ws.title}: no header row with {COLUMNS[0]!r} in column A"])
    for c, name in enumerate(COLUMNS, start=1):
        got = cell_text(ws.cell(row=header, column=c).value)
        if not got.lower().startswith(name.lower()):
            problems.append(f"row {header}, column {c} header: {got!r} should be {name!r}")
    if problems:
        raise SpreadsheetRejected(problems)
    results: Any = None  # the values Excel saved with its formulas, read only if a figure is a formula
    rows = []
    for cells in ws.iter_rows(min_row=header + 1, max_row=ws.max_row, min_col=1, max_col=len(COLUMNS)):
        if all(c.value is None or (isinstance(c.value, str) and not c.value.strip()) for c in cells):
            continue
        r = cells[0].row
        fig_cell = cells[6]
        figure = fig_cell.value
        if fig_cell.data_type == "f":
            if results is None:
                results = load_workbook(BytesIO(data), data_only=True)[ws.title]
            figure = results.cell(row=r, column=7).value
        if isinstance(figure, int | float) and not isinstance(figure, bool) and "%" in (fig_cell.number_format or ""):
            figure = round(float(figure) * 100, 6)  # typed as 98% in Excel: stored as 0.98
        elif isinstance(figure, datetime | date):
            figure = figure.isoformat()
        rows.append(
            {
                "row": r,
                "ref": cell_text(cells[0].value),
                "status": cell_text(cells[5].value) or None,
                "figure": figure,
                "comments": cell_text(cells[7].value),
                "evidence": cell_text(cells[8].value),
            }
        )
    return rows


def parse_spreadsheet(data: bytes, standards: list[Standard], expected_ref: str | None = None) -> list[dict[str, Any]]:
    """Read and judge a returned workbook; pure: stores nothing, raises SpreadsheetRejected with every problem."""
    return check_rows(read_workbook(data, expected_ref), standards)
