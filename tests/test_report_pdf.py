"""The report PDF as programs nobody on the project wrote read it (issue 12 item 7): names in
Polish, Vietnamese, Welsh and Irish come back letter for letter from poppler's ``pdftotext``
and from ``pypdf``; every page has the running header and "page N of M"; the first page has
the document-control block; the font is embedded.

The report is driven through the engine (tests/support_reports.py); the names reach the
PDF as a panel would type them: in the findings, the positive developments and the comments.
``pdftotext`` is Debian's poppler-utils (.ci installs it)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import unicodedata
from datetime import date
from pathlib import Path
from typing import Any

import pypdf
import pytest
from sqlmodel import Session

from notifications.documents import FONT_FAMILY, control_block, font_files, render_report_pdf
from states.machines.report import document
from tests.support_reports import documented, fire

NAMES = {
    "Polish": "Łukasz Wiśniewski",
    "Polish 2": "Zażółć gęślą jaźń",
    "Vietnamese": "Nguyễn Thị Ánh",
    "Vietnamese 2": "Trần Đức Thắng",
    "Welsh": "Llŷr Gwŷn",
    "Welsh 2": "Siân Ffŵrnes",
    "Irish": "Seán Ó Briain",
    "Irish 2": "Aoife Ní Dhónaill",
}


def _need(program: str) -> str:
    """The poppler program's path; absent, the test skips (fails under PEERWATCH_REQUIRE_POPPLER=1)."""
    found = shutil.which(program)
    if found:
        return found
    if os.environ.get("PEERWATCH_REQUIRE_POPPLER") == "1":
        pytest.fail(f"PEERWATCH_REQUIRE_POPPLER=1 but {program} is not on PATH (.ci/ensure-poppler installs it)")
    pytest.skip(f"{program} (poppler-utils) is not installed: .ci/ensure-poppler installs it")


def _pdftotext(data: bytes, tmp_path: Path, page: int | None = None) -> str:
    pdftotext = _need("pdftotext")
    src = tmp_path / "report.pdf"
    src.write_bytes(data)
    pages = ["-f", str(page), "-l", str(page)] if page else []
    out = subprocess.run(
        [pdftotext, "-enc", "UTF-8", "-layout", *pages, str(src), "-"], capture_output=True, check=True, timeout=60
    )
    return out.stdout.decode("utf-8")


def _pypdf_pages(data: bytes) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages]


def _flat(text: str) -> str:
    """One space between words, composed letters: how a reader compares what it sees."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def _named_report(session: Session, services: dict[str, int], standards: int = 3) -> dict[str, Any]:
    report, _ = documented(session, services)
    for lang, name in NAMES.items():
        fire(session, report.id, "add_positive", date(2026, 11, 20), text=f"{lang}: thanks to {name}")  # type: ignore[arg-type]
    for n in range(standards):
        lang, name = list(NAMES.items())[n % len(NAMES)]
        fire(
            session,
            report.id,
            "add_standard",
            date(2026, 11, 20),
            ref=f"U-{n + 1}",  # type: ignore[arg-type]
            descriptor=f"Standard {n + 1} for the rota",
            status="Met",
            comment=f"Evidence from {name} ({lang})",
        )
    return document(session, report)


def test_names_in_every_script_come_back_from_pdftotext_and_pypdf(
    session: Session, services: dict[str, int], tmp_path: Path
) -> None:
    doc = _named_report(session, services)
    data = render_report_pdf(doc)
    poppler = _flat(_pdftotext(data, tmp_path))
    theirs = _flat("\n".join(_pypdf_pages(data)))
    for lang, name in NAMES.items():
        assert f"{lang}: thanks to {name}" in poppler, (lang, poppler)
        assert f"{lang}: thanks to {name}" in theirs, (lang, theirs)
    assert "?" not in poppler and "?" not in theirs  # no letter replaced by "?"
    assert "Evidence from Nguyễn Thị Ánh" in poppler  # in a table cell too


def test_a_name_typed_with_combining_accents_prints_composed(
    session: Session, services: dict[str, int], tmp_path: Path
) -> None:
    report, _ = documented(session, services)
    decomposed = unicodedata.normalize("NFD", "Nguyễn Thị Ánh and Seán Ó Briain")
    assert decomposed != "Nguyễn Thị Ánh and Seán Ó Briain"
    fire(session, report.id, "add_positive", date(2026, 11, 20), text=decomposed)  # type: ignore[arg-type]
    text = _pdftotext(render_report_pdf(document(session, report)), tmp_path)
    assert "Nguyễn Thị Ánh and Seán Ó Briain" in _flat(text)


def test_the_unicode_font_is_embedded_and_no_core_font_is_used(session: Session, services: dict[str, int]) -> None:
    data = render_report_pdf(_named_report(session, services))
    fonts = set()
    embedded = []
    for page in pypdf.PdfReader(io.BytesIO(data)).pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            fonts.add(str(font["/BaseFont"]))
            for descendant in font.get("/DescendantFonts", []):
                embedded.append("/FontFile2" in descendant.get_object()["/FontDescriptor"])
    assert fonts and all(FONT_FAMILY in f for f in fonts), fonts  # subset tags: /ABCDEF+DejaVuSans
    assert not any("Helvetica" in f for f in fonts)
    assert embedded and all(embedded)
    assert {p.name for p in font_files().values()} == {"DejaVuSans.ttf", "DejaVuSans-Bold.ttf"}
    assert all("mpl-data" in str(p) for p in font_files().values())  # matplotlib's copy, pyplot not imported


def test_every_page_has_the_running_header_and_page_n_of_m(
    session: Session, services: dict[str, int], tmp_path: Path
) -> None:
    doc = _named_report(session, services, standards=60)
    data = render_report_pdf(doc)
    pages = len(pypdf.PdfReader(io.BytesIO(data)).pages)
    assert pages >= 3
    header = f"{doc['network']['code']} · {doc['service']['name']} · Report-{doc['report']['id']} issue {doc['report']['issue']} · Final"
    for n in range(1, pages + 1):
        text = _flat(_pdftotext(data, tmp_path, page=n))
        assert text.startswith(header), (n, text[:200])
        assert text.endswith(f"page {n} of {pages}"), (n, text[-200:])
        assert f"page {n} of {pages}" in _flat(_pypdf_pages(data)[n - 1])
    draft = _flat(_pdftotext(render_report_pdf(doc, draft=True), tmp_path, page=2))
    assert draft.startswith(header.replace("· Final", "· DRAFT"))


def test_first_page_has_the_document_control_block(session: Session, services: dict[str, int], tmp_path: Path) -> None:
    doc = _named_report(session, services)
    first = _flat(_pdftotext(render_report_pdf(doc), tmp_path, page=1))
    block = control_block(doc, draft=False)
    assert [k for k, _ in block] == ["Network", "Service", "Report id", "Issue", "Status", "Date"]
    for key, value in block:
        assert _flat(f"{key} {value}") in first, (key, value, first)
    assert dict(block)["Status"] == "Final" and dict(block)["Report id"] == f"Report-{doc['report']['id']}"
    assert f"{doc['network']['name']} ({doc['network']['code']})" == dict(block)["Network"]
    draft = _flat(_pdftotext(render_report_pdf(doc, draft=True), tmp_path, page=1))
    assert "Status DRAFT for factual accuracy check" in draft
    assert "Date draft of the visit on Thu 12 Nov 2026" in draft


def test_a_page_looks_right_when_rasterised(session: Session, services: dict[str, int], tmp_path: Path) -> None:
    """pdftoppm (poppler) renders the first page without a complaint about the fonts."""
    pdftoppm = _need("pdftoppm")
    src = tmp_path / "r.pdf"
    src.write_bytes(render_report_pdf(_named_report(session, services)))
    run = subprocess.run(
        [pdftoppm, "-png", "-r", "50", "-f", "1", "-l", "1", str(src), str(tmp_path / "page")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0 and not run.stderr, run.stderr
    (png,) = tmp_path.glob("page*.png")
    assert png.read_bytes().startswith(b"\x89PNG")
