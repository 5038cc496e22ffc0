"""Hostile .xlsx files for the import's limits (issue 12 item 5), written byte by byte.

Each is a well-formed workbook a spreadsheet program would open: a minimal package
([Content_Types].xml, the relationships, the workbook, one sheet) whose sheet is built from
the rows given, streamed into the zip so that even the bomb never sits in memory.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator
from io import BytesIO
from xml.sax.saxutils import escape

from notifications.spreadsheets import COLUMNS, SHEET

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    "</Types>"
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    f'<sheets><sheet name="{SHEET}" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    "</Relationships>"
)


def _col(n: int) -> str:
    out = ""
    while n:
        n, rem = divmod(n - 1, 26)
        out = chr(65 + rem) + out
    return out


def row_xml(r: int | None, values: Iterable[object]) -> str:
    """One <row>: text as inline strings, numbers as numbers; ``r`` None leaves the numbers out."""
    cells = []
    for c, v in enumerate(values, start=1):
        ref = f' r="{_col(c)}{r}"' if r is not None else ""
        if v is None:
            continue
        if isinstance(v, int | float):
            cells.append(f"<c{ref}><v>{v}</v></c>")
        else:
            cells.append(f'<c{ref} t="inlineStr"><is><t>{escape(str(v))}</t></is></c>')
    return (f'<row r="{r}">' if r is not None else "<row>") + "".join(cells) + "</row>"


def workbook(rows: Iterable[str], dimension: str | None = None) -> bytes:
    """A package whose one sheet holds the header row then ``rows`` (each a <row> element's XML)."""
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", _CONTENT_TYPES)
        zf.writestr("_rels/.rels", _RELS)
        zf.writestr("xl/workbook.xml", _WORKBOOK)
        zf.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        with zf.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as part:
            part.write(
                b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            )
            if dimension:
                part.write(f'<dimension ref="{dimension}"/>'.encode())
            part.write(b"<sheetData>" + row_xml(1, COLUMNS).encode())
            chunk: list[str] = []
            for x in rows:
                chunk.append(x)
                if len(chunk) >= 4096:
                    part.write("".join(chunk).encode())
                    chunk = []
            part.write("".join(chunk).encode() + b"</sheetData></worksheet>")
    return buf.getvalue()


def zip_bomb(unzipped_bytes: int = 95_000_000) -> bytes:
    """About 415 KB zipped, 95 MB unzipped: the same row 500,000 times (deflate packs it ~230 to 1)."""
    same = row_xml(None, ["1.1", "x", "x", "x", "x", "Met", 99, "x", "x"])
    repeats = unzipped_bytes // len(same)

    def rows() -> Iterator[str]:
        for _ in range(repeats):
            yield same

    return workbook(rows())


def far_cell(row: int = 1_048_576) -> bytes:
    """A few kilobytes: the header and one cell in the last row a sheet can have."""
    return workbook([row_xml(row, ["1.1"])], dimension=f"A1:I{row}")


def many_bad_rows(n: int = 100_000) -> bytes:
    """``n`` rows, every one with problems (an unknown standard, a bad status, no evidence)."""
    return workbook(row_xml(r, [f"9.{r}", "x", "x", "x", "x", "Sort of", "n/a", "", None]) for r in range(2, n + 2))
