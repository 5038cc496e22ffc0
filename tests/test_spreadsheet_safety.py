"""The self-assessment spreadsheet against hostile files and real spreadsheet programs (issue 12
items 5, 6 and 8): limits checked before parsing, formulas never going back out live, a
layout that prints, and .ods/.xls refused with one clear error. LibreOffice (``soffice``) makes
the real .ods/.xls files and reads our exports back; without it those tests skip, unless
``PEERWATCH_REQUIRE_LIBREOFFICE=1`` (set by .ci/ensure-libreoffice) makes them fail."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import time
import tracemalloc
import zipfile
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import RefusedAttempt
from models.selfassessment import SelfAssessment, SelfAssessmentItem
from notifications.render import rendered
from notifications.spreadsheets import COLUMNS, csv_value, render_selfassessment_xlsx, text_lines
from states.clock import FixedClock
from states.machines.standards import SpreadsheetRejected
from states.principal import Principal
from states.services.selfassessment import import_spreadsheet
from states.services.selfassessment_import import check_upload, read_workbook
from tests import hostile_xlsx
from tests.factories import person
from tests.support_selfassessment import GOOD, circulate, fill, items_of, letters_to, library, run_cli, xlsx  # noqa: F401 (library, run_cli: pytest fixtures)

OFFICE = "network-office"
DDE = "=cmd|' /C calc'!A0"  # the payload of the report: a DDE command run by the spreadsheet program


# ---------------------------------------------------------------- item 5: limits before parsing


def _refused_quickly(
    db: Engine, row: SelfAssessment, data: bytes, clock: FixedClock
) -> tuple[SpreadsheetRejected, float, float]:
    """Import ``data``; it must be refused. Returns the refusal, the seconds the whole import took
    (refusal letter included), and the peak MB the reading allocated (measured apart: tracemalloc
    slows Python code ten times over)."""
    started = time.perf_counter()
    with pytest.raises(SpreadsheetRejected) as caught:
        import_spreadsheet(
            db, row.id, data, filename="hostile.xlsx", principal=person("Jo Office", OFFICE), clock=clock
        )  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    tracemalloc.start()
    try:
        with pytest.raises(SpreadsheetRejected):
            read_workbook(data)
        peak = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    print(f"refused in {seconds:.3f} s, reading peaked at {peak:.1f} MB allocated: {caught.value.problems[0][:100]}")
    return caught.value, seconds, peak


def _nothing_imported(session: Session, row: SelfAssessment, problem: str) -> None:
    session.expire_all()
    assert session.get(SelfAssessment, row.id).state == "circulated"  # type: ignore[union-attr]
    assert not session.exec(select(SelfAssessmentItem).where(SelfAssessmentItem.assessment_id == row.id)).all()
    (attempt,) = session.exec(select(RefusedAttempt).where(RefusedAttempt.kind == "selfassessment")).all()
    assert problem in attempt.data["problems"][0]


@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = hostile_xlsx.zip_bomb()
    assert 350_000 < len(data) < 500_000, len(data)  # the reported ~415 KB
    assert sum(i.file_size for i in zipfile.ZipFile(BytesIO(data)).infolist()) > 90_000_000
    return data


def test_a_415_kb_zip_bomb_is_refused_unopened_in_well_under_two_seconds(
    db: Engine, session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock, bomb: bytes
) -> None:
    row = circulate(session, services, clock)
    exc, seconds, peak = _refused_quickly(db, row, bomb, clock)
    assert (
        exc.problems == [exc.problems[0]]
        and "unzips to 95,0" in exc.problems[0]
        and "refused unopened" in exc.problems[0]
    )
    assert seconds < 2.0 and peak < 20, (seconds, peak)  # before: over four minutes of CPU
    _nothing_imported(session, row, "over the limit of 50,000,000")


def test_the_compression_ratio_is_a_limit_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    dense = hostile_xlsx.zip_bomb(unzipped_bytes=20_000_000)  # under the 50 MB cap, ~230 to 1
    with pytest.raises(
        SpreadsheetRejected, match=r"part xl/worksheets/sheet1.xml is compressed 2\d\d to 1, over the limit of 100 to 1"
    ):
        check_upload(dense)
    monkeypatch.setenv("PEERWATCH_SELFASSESSMENT_MAX_COMPRESSION_RATIO", "1000")
    with pytest.raises(SpreadsheetRejected, match=r"uses row 5,001, beyond the limit of 5,000 rows"):
        check_upload(dense)  # the rows are still counted, streamed, and stop at the limit


def test_one_cell_at_row_1048576_is_refused_by_its_declared_dimension_and_without_one(
    db: Engine, session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    row = circulate(session, services, clock)
    far = hostile_xlsx.far_cell()
    assert len(far) < 8000
    exc, seconds, peak = _refused_quickly(db, row, far, clock)
    assert exc.problems[0].startswith(
        "sheet part sheet1: declares its used range as A1:I1048576, to row 1,048,576, beyond the limit of 5,000 rows"
    )
    assert seconds < 2.0 and peak < 20, (seconds, peak)  # before: 2 GB
    # a file that does not declare its dimension is measured by its cells
    undeclared = hostile_xlsx.workbook([hostile_xlsx.row_xml(1_048_576, ["1.1"])])
    with pytest.raises(SpreadsheetRejected, match="uses row 1,048,576, beyond the limit of 5,000 rows"):
        check_upload(undeclared)
    wide = hostile_xlsx.workbook(['<row r="2"><c r="XFD2" t="inlineStr"><is><t>x</t></is></c></row>'])
    with pytest.raises(SpreadsheetRejected, match=r"has a cell at column XFD, beyond the limit of 50 columns \(AX;"):
        check_upload(wide)
    unnumbered = hostile_xlsx.workbook(
        ['<row><c r="B2"/>' + "<c/>" * 60 + "</row>"]
    )  # cells without references count on
    with pytest.raises(SpreadsheetRejected, match="has a cell at column AY, beyond the limit of 50 columns"):
        check_upload(unnumbered)
    _nothing_imported(session, row, "A1:I1048576")


def test_100000_rows_are_refused_as_one_problem_not_200000_lines(
    db: Engine, session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    row = circulate(session, services, clock)
    many = hostile_xlsx.many_bad_rows(100_000)
    exc, seconds, peak = _refused_quickly(db, row, many, clock)
    assert exc.count == 1 and "uses row 5,001, beyond the limit of 5,000 rows" in exc.problems[0]
    assert seconds < 2.0 and peak < 20, (seconds, peak)


def test_problems_listed_are_capped_with_the_count_in_the_error_the_cli_and_the_letter(
    db: Engine,
    training: None,
    me: Principal,
    session: Session,
    services: dict[str, int],
    library: dict[str, int],
    clock: FixedClock,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[..., int],
) -> None:
    row = circulate(session, services, clock)
    bad = hostile_xlsx.many_bad_rows(400)  # each row: unknown ref, bad status, figure not a number, no evidence
    with pytest.raises(SpreadsheetRejected) as caught:
        import_spreadsheet(db, row.id, bad, filename="bad.xlsx", principal=person("Jo Office", OFFICE), clock=clock)  # type: ignore[arg-type]
    exc = caught.value
    assert exc.count == 400 * 4 + 6 and len(exc.problems) == 50 and exc.more == exc.count - 50
    assert exc.problems[0].startswith("row 2, Ref No.: unknown standard '9.2'")
    assert str(exc).endswith(f"... and {exc.more} more") and str(exc).count("; row ") == 49
    session.expire_all()
    letter = letters_to(session, row)[-1]
    text = rendered(letter)
    assert letter.template == "selfassessment_refused" and "1606 problems to correct" in text.subject
    assert "  50. " in text.body_text and "  51. " not in text.body_text
    assert f"... and {exc.more} more problems." in text.body_text and "(the\nfirst 50 of 1606;" in text.body_text
    assert text.body_html.count("<li>") == 50
    # the command line: 50 lines and the count; and the cap is local policy
    path = tmp_path / "bad.xlsx"
    path.write_bytes(bad)
    os.environ["PEERWATCH_SELFASSESSMENT_MAX_PROBLEMS_LISTED"] = "5"
    try:
        capsys.readouterr()
        assert (
            run_cli(
                "--as-of",
                "2026-12-11",
                "selfassessment",
                "import",
                str(row.id),
                str(path),
                "--no-letter",
            )
            == 2
        )
    finally:
        del os.environ["PEERWATCH_SELFASSESSMENT_MAX_PROBLEMS_LISTED"]
    err = capsys.readouterr().err
    assert "bad.xlsx refused, nothing imported: 1606 problem(s), the first 5 listed" in err
    assert err.count("\n  - ") == 5 and "  ... and 1601 more" in err
    assert "written to" not in err
    session.expire_all()
    assert len(letters_to(session, row)) == 2  # --no-letter: the request and the first refusal only


def test_limits_are_local_policy_and_the_file_size_is_checked_before_reading(
    db: Engine,
    training: None,
    me: Principal,
    session: Session,
    services: dict[str, int],
    library: dict[str, int],
    clock: FixedClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[..., int],
) -> None:
    row = circulate(session, services, clock)
    good = fill(xlsx(session, row), GOOD)
    monkeypatch.setenv("PEERWATCH_SELFASSESSMENT_MAX_ROWS", "6")  # header + 6 standards need row 7
    with pytest.raises(SpreadsheetRejected, match="row 7, beyond the limit of 6 rows"):
        read_workbook(good)
    monkeypatch.delenv("PEERWATCH_SELFASSESSMENT_MAX_ROWS")
    monkeypatch.setenv("PEERWATCH_SELFASSESSMENT_MAX_FILE_BYTES", "1000")
    path = tmp_path / "return.xlsx"
    path.write_bytes(good)
    capsys.readouterr()
    assert run_cli("--as-of", "2026-12-11", "selfassessment", "import", str(row.id), str(path)) == 2
    err = capsys.readouterr().err
    assert f"file: {len(good):,} bytes is over the limit of 1,000 bytes" in err
    monkeypatch.setenv("PEERWATCH_SELFASSESSMENT_MAX_ROWS", "many")
    with pytest.raises(Exception, match="PEERWATCH_SELFASSESSMENT_MAX_ROWS='many' is not a whole number"):
        check_upload(good)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            b"Ref No.,Descriptor\n1.1,x\n",
            "file: not an .xlsx workbook (text (CSV?)): open it in Excel or LibreOffice Calc",
        ),
        (b"%PDF-1.7\n", "file: not an .xlsx workbook (a PDF)"),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504),
            "file: an Excel 97-2003 (.xls) or password-protected workbook",
        ),
        (b"PK\x03\x04 truncated", "file: not an .xlsx workbook (a damaged or unreadable zip)"),
        (b"", "file: not an .xlsx workbook"),
    ],
)
def test_files_that_are_not_xlsx_get_one_clear_error(data: bytes, problem: str) -> None:
    with pytest.raises(SpreadsheetRejected) as caught:
        read_workbook(data)
    assert caught.value.problems == [caught.value.problems[0]] and caught.value.problems[0].startswith(problem)
    assert "save it as .xlsx" in caught.value.problems[0] or "save it" in caught.value.problems[0]


def test_an_ods_package_and_a_dtd_are_refused_before_parsing() -> None:
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        zf.writestr("content.xml", "<office:document-content/>")
    with pytest.raises(
        SpreadsheetRejected,
        match=r"^.*file: an OpenDocument spreadsheet \(.ods\), which cannot be read: .*save it as .xlsx",
    ):
        read_workbook(buf.getvalue())
    laughs = hostile_xlsx.workbook([])  # a well-formed package, then a DTD in its sheet
    with zipfile.ZipFile(BytesIO(laughs)) as zf:
        parts = {n: zf.read(n) for n in zf.namelist()}
    parts["xl/worksheets/sheet1.xml"] = parts["xl/worksheets/sheet1.xml"].replace(
        b"<worksheet", b'<!DOCTYPE worksheet [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]><worksheet', 1
    )
    out = BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for n, d in parts.items():
            zf.writestr(n, d)
    with pytest.raises(SpreadsheetRejected, match="declares a DTD, which no spreadsheet does"):
        read_workbook(out.getvalue())


# ---------------------------------------------------------------- item 6: formula injection


def test_formulas_are_imported_as_their_text_and_exported_as_text_never_live(
    db: Engine, session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock, tmp_path: Path
) -> None:
    row = circulate(session, services, clock)
    # 1.1: typed into Comments as a live formula (openpyxl writes "=..." as one); 1.2: text
    # starting with "=" (a string cell); 1.3 and 1.4: the other OWASP triggers; 2.1: "@".
    answers = {
        **GOOD,
        "1.1": ("Met", None, DDE, "Operational Policy"),
        "1.3": ("Partially Met", 70, "+1+cmd|' /C calc'!A0", "work plan"),
        "1.4": ("Unmet", 90, "-2+3", '=HYPERLINK("http://evil.example","evidence")'),
        "2.1": ("Partially Met", None, "@SUM(1+1)", "rota"),
    }
    wb = load_workbook(BytesIO(fill(xlsx(session, row), answers)))
    ws = wb["Self-Assessment"]
    assert ws.cell(row=2, column=8).data_type == "f"  # a real formula in the returned file
    ws.cell(row=3, column=8).value = "=1+1 as text"
    ws.cell(row=3, column=8).data_type = "s"  # a text cell that starts with "="
    buf = BytesIO()
    wb.save(buf)
    import_spreadsheet(
        db, row.id, buf.getvalue(), filename="r.xlsx", principal=person("Jo Office", OFFICE), clock=clock
    )  # type: ignore[arg-type]
    items = items_of(session, row)
    assert items["1.1"].comments == DDE  # its literal text, not its (absent) result
    assert items["1.2"].comments == "=1+1 as text"
    assert items["1.4"].evidence_location == '=HYPERLINK("http://evil.example","evidence")'
    session.expire_all()
    exported = xlsx(session, session.get(SelfAssessment, row.id))  # type: ignore[arg-type]
    with zipfile.ZipFile(BytesIO(exported)) as zf:
        sheet_xml = zf.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet_xml and "<f " not in sheet_xml  # no formula anywhere in the file
    out = load_workbook(BytesIO(exported))["Self-Assessment"]
    for r, c, text in (
        (2, 8, DDE),
        (3, 8, "=1+1 as text"),
        (4, 8, "+1+cmd|' /C calc'!A0"),
        (5, 8, "-2+3"),
        (6, 8, "@SUM(1+1)"),
        (5, 9, '=HYPERLINK("http://evil.example","evidence")'),
    ):
        cell = out.cell(row=r, column=c)
        assert (cell.value, cell.data_type, cell.quotePrefix) == (text, "s", True), (r, c)
    assert out.cell(row=2, column=9).quotePrefix is False  # ordinary text is left alone
    # the round trip is stable: importing the export stores the same text again
    assert read_workbook(exported)[0]["comments"] == DDE
    if soffice_or_skip():
        path = tmp_path / "export.xlsx"
        path.write_bytes(exported)
        rows = list(csv.reader(io.StringIO(convert(path, "csv").read_text(encoding="utf-8"))))
        assert rows[0] == list(COLUMNS)
        assert [rows[1][7], rows[2][7], rows[3][7], rows[4][7], rows[5][7], rows[4][8]] == [
            DDE,
            "=1+1 as text",
            "+1+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(1+1)",
            '=HYPERLINK("http://evil.example","evidence")',
        ]
        flat = convert(path, "fods").read_text(encoding="utf-8")
        assert "table:formula" not in flat  # LibreOffice's own document model holds no formula


def test_csv_exports_follow_the_owasp_rule(tmp_path: Path) -> None:
    from states.views.workload import MEASURES, write_outputs

    assert [csv_value(v) for v in (DDE, "+1", "-1", "@x", "\t=1", "\r=1", "plain", -3, 2.5, "")] == [
        "'" + DDE,
        "'+1",
        "'-1",
        "'@x",
        "'\t=1",
        "'\r=1",
        "plain",
        -3,
        2.5,
        "",
    ]
    zero = {m: 0 for m in MEASURES}
    result: dict[str, Any] = {
        "quarters": ["2026-27 Q1"],
        "from": "2026-04-01",
        "to": "2026-06-30",
        "networks": [
            {
                "code": "@NET",
                "name": DDE,
                "cycle": "annual",
                "quarters": {"2026-27 Q1": {**zero, "letters": -1}},
                "totals": zero,
            }
        ],
        "by_cycle": {"annual": {"networks": 1, "quarters": {"2026-27 Q1": zero}, "totals": zero}},
    }
    write_outputs(result, tmp_path)
    with (tmp_path / "workload.csv").open(newline="") as f:  # closed: an unclosed file is a ResourceWarning
        rows = list(csv.reader(f))
    assert rows[1][:3] == ["'@NET", "'" + DDE, "annual"]
    assert rows[1][4] == "-1"  # a number stays a number


# ---------------------------------------------------------------- item 8: a layout that prints


def _long_doc(n: int = 40) -> dict[str, Any]:
    from datetime import date

    rows = []
    for i in range(n):
        rows.append(
            {
                "ref": f"{i // 10 + 1}.{i % 10 + 1}",
                "descriptor": f"Standard {i}: "
                + "patients admitted to critical care within four hours of the decision to admit " * (1 + i % 4)
                + f"ENDWORD{i}",
                "criteria_met": ">= 98% of admissions within 4 hours",
                "criteria_partly": "90-98%" if i % 2 else None,
                "criteria_unmet": "< 90% of admissions",
                "has_partly_band": bool(i % 2),
                "self_status": "Met",
                "figure": 98.5,
                "comments": "work in progress " * (i % 5),
                "evidence_location": "work plan",
            }
        )
    return {
        "service": {"name": "Severnside ACC", "kind": "Adult Critical Care"},
        "organisation": {"name": "Severnside NHS Trust"},
        "network": {"name": "WM ACC Network"},
        "assessment": {"ref": "SA-1", "programme_year": "2026-27", "return_by": date(2027, 1, 22)},
        "standard_set": {"name": "ACC", "version": "2026.1"},
        "rows": rows,
        "created": None,
    }


def test_the_spreadsheet_is_laid_out_to_read_and_to_print() -> None:
    data = render_selfassessment_xlsx(_long_doc())
    wb = load_workbook(BytesIO(data))
    ws = wb["Self-Assessment"]
    assert ws.freeze_panes == "B2"  # the header row (and the Ref No.) stay in view
    assert ws.print_title_rows == "$1:$1"  # the header row on every printed page
    for sheet in wb.worksheets:
        ps = sheet.page_setup
        assert (ps.orientation, str(ps.paperSize), ps.fitToWidth, ps.fitToHeight) == ("landscape", "9", 1, 0)  # 9: A4
        assert sheet.sheet_properties.pageSetUpPr.fitToPage is True
    widths = [ws.column_dimensions[chr(64 + c)].width for c in range(1, 10)]
    assert 180 <= sum(widths) <= 230 and min(widths) >= 8
    for r in range(1, ws.max_row + 1):
        height = ws.row_dimensions[r].height
        needed = max(text_lines(ws.cell(row=r, column=c).value, w) for c, w in enumerate(widths, start=1))
        assert height is not None and height >= 15 * needed, (r, height, needed)
    assert ws.row_dimensions[5].height >= 15 * 6  # standard 3: four sentences in a 40-wide column


def test_libreoffice_prints_it_landscape_fitted_to_width_with_the_header_on_every_page_and_no_text_cut(
    tmp_path: Path,
) -> None:
    soffice_or_skip(require=True)
    from pypdf import PdfReader

    path = tmp_path / "sa.xlsx"
    path.write_bytes(render_selfassessment_xlsx(_long_doc()))
    pdf = PdfReader(str(convert(path, "pdf")))
    pages = [p.extract_text() for p in pdf.pages]
    print(
        f"{len(pages)} pages, sizes {sorted({(round(float(p.mediabox.width)), round(float(p.mediabox.height))) for p in pdf.pages})}"
    )
    assert all(
        (round(float(p.mediabox.width)), round(float(p.mediabox.height))) == (842, 595) for p in pdf.pages
    )  # A4 landscape
    standards_pages = [t for t in pages if "ENDWORD" in t]
    assert 2 <= len(standards_pages) <= 6 and len(pages) == len(standards_pages) + 1  # and one page for About
    for t in standards_pages:  # the header repeated, and every column on the page's width
        assert "Criteria for 'Partially Met'" in t and "Evidence location" in t and "Supporting Comments" in t
    text = (
        subprocess.run(
            ["pdftotext", "-layout", str(tmp_path / "sa.pdf"), "-"], capture_output=True, text=True, check=True
        ).stdout
        if shutil.which("pdftotext")
        else "\n".join(pages)
    )
    assert {int(n) for n in re.findall(r"ENDWORD(\d+)", text)} == set(
        range(40)
    )  # no wrapped text cut off by a short row
    assert "Do not add, remove or rename columns" in pages[-1]


@pytest.mark.parametrize("fmt", ["ods", "xls"])
def test_real_ods_and_xls_files_are_refused_with_save_it_as_xlsx(
    db: Engine,
    session: Session,
    services: dict[str, int],
    library: dict[str, int],
    clock: FixedClock,
    tmp_path: Path,
    fmt: str,
) -> None:
    soffice_or_skip(require=True)
    row = circulate(session, services, clock)
    path = tmp_path / "return.xlsx"
    path.write_bytes(fill(xlsx(session, row), GOOD))
    other = convert(path, fmt)
    with pytest.raises(SpreadsheetRejected) as caught:
        import_spreadsheet(
            db, row.id, other.read_bytes(), filename=other.name, principal=person("Jo Office", OFFICE), clock=clock
        )  # type: ignore[arg-type]
    (problem,) = caught.value.problems
    assert problem.startswith(
        "file: an OpenDocument spreadsheet (.ods)" if fmt == "ods" else "file: an Excel 97-2003 (.xls)"
    )
    assert "save it as .xlsx" in problem
    _nothing_imported(session, row, "save it as .xlsx")


# ---------------------------------------------------------------- LibreOffice


def soffice_or_skip(require: bool = False) -> str | None:
    """The soffice program; absent, the test skips (or fails under PEERWATCH_REQUIRE_LIBREOFFICE=1).
    ``require`` False returns None instead of skipping, for tests with a LibreOffice part."""
    found = shutil.which("soffice") or shutil.which("libreoffice")
    if found:
        return found
    if os.environ.get("PEERWATCH_REQUIRE_LIBREOFFICE") == "1":
        pytest.fail("PEERWATCH_REQUIRE_LIBREOFFICE=1 but soffice is not on PATH (.ci/ensure-libreoffice installs it)")
    if require:
        pytest.skip("LibreOffice (soffice) is not installed: .ci/ensure-libreoffice installs it")
    return None


def convert(path: Path, fmt: str) -> Path:
    """``soffice --headless --convert-to fmt`` with a profile of its own, next to ``path``."""
    program = soffice_or_skip(require=True)
    assert program is not None
    profile = path.parent / "lo-profile"
    target = {"csv": "csv:Text - txt - csv (StarCalc):44,34,76,1", "xls": "xls:MS Excel 97"}.get(fmt, fmt)
    done = subprocess.run(
        [
            program,
            f"-env:UserInstallation={profile.as_uri()}",
            "--headless",
            "--norestore",
            "--convert-to",
            target,
            "--outdir",
            str(path.parent),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = path.with_suffix("." + fmt)
    assert done.returncode == 0 and out.is_file(), (done.returncode, done.stdout, done.stderr)
    return out
