"""Files sent through the portal (issue 16 item 12): judged by their bytes, limited in size before
anything is read, plainly named, stored with their SHA-256 as versions, and seen only by who may
see their item."""

from __future__ import annotations

import hashlib
import io
import time
import zipfile
from collections.abc import Callable

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from models import Risk
from models.portal import Upload
from states import uploads
from states.errors import InvalidInput, NotFound
from states.uploads import DOCX, JPEG, ODT, PDF, PNG, TEXT, XLSX, check_file, sniff, store_upload, uploads_of
from states.views.uploads import get_upload
from tests.support_accounts import account

PDF_BYTES = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 20
JPEG_BYTES = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 20
EXE_BYTES = (
    b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 40 + b"This program cannot be run in DOS mode"
)


def ooxml(main: str, extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/main.xml" ContentType="{main}"/></Types>',
        )
        z.writestr("main.xml", "<doc/>")
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return buf.getvalue()


def odf(mimetype: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), mimetype)  # stored, first, as ODF requires
        z.writestr("content.xml", "<office:document-content/>")
    return buf.getvalue()


DOCX_BYTES = ooxml("application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml")
XLSX_BYTES = ooxml("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml")
DOCM_BYTES = ooxml("application/vnd.ms-word.document.macroEnabled.main+xml", {"word/vbaProject.bin": b"\x00" * 64})
ODT_BYTES = odf("application/vnd.oasis.opendocument.text")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (PDF_BYTES, PDF),
        (PNG_BYTES, PNG),
        (JPEG_BYTES, JPEG),
        (DOCX_BYTES, DOCX),
        (XLSX_BYTES, XLSX),
        (ODT_BYTES, ODT),
        ("Action plan, milestone 1: done.\r\n\tNext: audit – £0\n".encode(), TEXT),
        (DOCM_BYTES, None),  # a macro-enabled document is not a .docx, whatever it is called
        (EXE_BYTES, None),
        (b"PK\x03\x04 not really a zip", None),
        (b"text with a NUL \x00 inside", None),
        ("caf\xe9".encode("latin-1"), None),  # not UTF-8
        (b"escape \x1b[31m red", None),
        (b"", None),
    ],
    ids=[
        "pdf",
        "png",
        "jpeg",
        "docx",
        "xlsx",
        "odt",
        "text",
        "docm",
        "exe",
        "fake-zip",
        "nul",
        "latin1",
        "ansi",
        "empty",
    ],
)
def test_the_type_is_read_from_the_bytes(data: bytes, expected: str | None) -> None:
    assert sniff(data) == expected


def test_a_zip_bomb_costs_a_bounded_read() -> None:
    """[Content_Types].xml inflating to 64 MB of nothing (a few KB compressed): refused without inflating it."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", b" " * (64 * 1024 * 1024))
    bomb = buf.getvalue()
    assert len(bomb) < 200_000
    started = time.perf_counter()
    assert sniff(bomb) is None
    assert time.perf_counter() - started < 1.0
    with pytest.raises(InvalidInput, match="not a kind of file accepted"):
        check_file("plan.docx", bomb)


def test_a_zip_whose_header_lies_about_its_size_is_still_read_no_further_than_the_bound() -> None:
    """The central directory says 100 bytes; the entry inflates to 8 MB: the read stops at the bound."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", b"<Types/>" + b" " * (8 * 1024 * 1024))
    raw = bytearray(buf.getvalue())
    # rewrite the uncompressed size in the central directory entry to 100
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 24 : cd + 28] = (100).to_bytes(4, "little")
    assert sniff(bytes(raw)) is None


@pytest.mark.parametrize(
    ("filename", "data", "problem"),
    [
        ("report.docx", PDF_BYTES, r"is a PDF file but its name ends with \.docx: name it with \.pdf"),
        ("evidence.pdf", EXE_BYTES, "not a kind of file accepted"),
        ("notes.pdf", b"plain words\n", r"is a plain text file but its name ends with \.pdf"),
        ("photo", JPEG_BYTES, "ends with no extension"),
        ("empty.pdf", b"", "is empty"),
        ("plan.docm", DOCM_BYTES, "not a kind of file accepted"),
        ("a\x00b.pdf", PDF_BYTES, "control or invisible character"),
        ("a\nb.pdf", PDF_BYTES, "control or invisible character"),
        ("invoice\u202efdp.exe", PDF_BYTES, r"control or invisible character \(U\+202E\)"),
        ("../../etc/passwd.pdf", PDF_BYTES, "without a folder"),
        ("C:\\Users\\me\\plan.pdf", PDF_BYTES, "without a folder"),
        ("dir/plan.pdf", PDF_BYTES, "without a folder"),
        (".pdf", PDF_BYTES, "no name before its extension"),
        ("", PDF_BYTES, "has no name"),
        (" plan.pdf", PDF_BYTES, "starts or ends with a space"),
        ("x" * 300 + ".pdf", PDF_BYTES, "longer than"),
    ],
)
def test_bad_files_are_refused_naming_the_problem(filename: str, data: bytes, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        check_file(filename, data)


def test_a_type_not_allowed_here_is_refused() -> None:
    with pytest.raises(InvalidInput, match="is a PNG image file, not accepted here"):
        check_file("scan.png", PNG_BYTES, allowed=frozenset({PDF}))
    assert check_file("scan.png", PNG_BYTES) == PNG
    assert check_file("Plan v2.DOCX", DOCX_BYTES) == DOCX  # extensions in any case
    assert check_file("rota.csv", b"name,shift\nA,day\n") == TEXT


def test_size_is_checked_before_the_content_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(_data: bytes) -> str | None:
        raise AssertionError("a file over the limit was read")

    monkeypatch.setattr(uploads, "sniff", never)
    with pytest.raises(InvalidInput, match=r"huge\.pdf is too large \(1 KB\): the largest file accepted is 1023 bytes"):
        check_file("huge.pdf", b"%PDF-" + b"0" * 1019, max_bytes=1023)
    monkeypatch.setenv("PEERWATCH_UPLOAD_MAX_BYTES", "10")
    with pytest.raises(InvalidInput, match="the largest file accepted is 10 bytes"):
        check_file("a.pdf", PDF_BYTES)
    with pytest.raises(InvalidInput, match=r"b\.pdf is too large"):
        uploads.check_size("b.pdf", 11)


def test_the_limit_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PEERWATCH_UPLOAD_MAX_BYTES", raising=False)
    assert uploads.max_upload_bytes() == 20 * 1024 * 1024
    monkeypatch.setenv("PEERWATCH_UPLOAD_MAX_BYTES", "5000")
    assert uploads.max_upload_bytes() == 5000
    for bad in ("lots", "0", "-3"):
        monkeypatch.setenv("PEERWATCH_UPLOAD_MAX_BYTES", bad)
        with pytest.raises(InvalidInput, match="PEERWATCH_UPLOAD_MAX_BYTES"):
            uploads.max_upload_bytes()


def _count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(Upload)).one()


def test_stored_with_sha256_and_versions_per_owner_and_name(
    db: Engine, session: Session, raise_risk: Callable[..., Risk]
) -> None:
    risk = raise_risk("IR")
    who = account(db, "Network Officer", ("network-office",))
    common = {"item_kind": "risk", "item_id": risk.id, "user_id": who.user_id}
    first = store_upload(session, owner_kind="risk_response", owner_id=1, filename="plan.pdf", data=PDF_BYTES, **common)
    again = store_upload(
        session, owner_kind="risk_response", owner_id=1, filename="plan.pdf", data=PDF_BYTES + b"%v2\n", **common
    )
    other_name = store_upload(
        session, owner_kind="risk_response", owner_id=1, filename="rota.xlsx", data=XLSX_BYTES, **common
    )
    other_owner = store_upload(
        session, owner_kind="risk_response", owner_id=2, filename="plan.pdf", data=PDF_BYTES, **common
    )
    session.commit()
    assert (first.version, again.version, other_name.version, other_owner.version) == (1, 2, 1, 1)
    assert first.sha256 == hashlib.sha256(PDF_BYTES).hexdigest()
    assert again.sha256 == hashlib.sha256(PDF_BYTES + b"%v2\n").hexdigest()
    assert (first.content_type, other_name.content_type, first.size) == (PDF, XLSX, len(PDF_BYTES))
    assert [u.id for u in uploads_of(session, "risk_response", 1)] == [first.id, again.id, other_name.id]
    assert uploads_of(session, "risk_response", 3) == []
    stored = session.get(Upload, first.id)
    assert stored is not None and stored.data == PDF_BYTES and stored.uploaded_by == who.user_id


def test_a_refused_file_stores_nothing(db: Engine, session: Session, raise_risk: Callable[..., Risk]) -> None:
    risk = raise_risk("IR")
    who = account(db, "Network Officer", ("network-office",))
    before = _count(session)
    common = {"item_kind": "risk", "item_id": risk.id, "owner_kind": "risk_response", "owner_id": 1}
    for filename, data in (("evil.pdf", EXE_BYTES), ("plan.docx", PDF_BYTES), ("", PDF_BYTES)):
        with pytest.raises(InvalidInput):
            store_upload(session, filename=filename, data=data, user_id=who.user_id or 0, **common)
    with pytest.raises(InvalidInput, match="not a valid item id"):
        store_upload(session, filename="a.pdf", data=PDF_BYTES, user_id=who.user_id or 0, **{**common, "item_id": 0})
    session.commit()
    assert _count(session) == before


def test_a_file_is_seen_only_by_who_may_see_its_item(
    db: Engine, session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    risk = raise_risk("SC")  # at Midland Royal
    staff = account(db, "Network Officer", ("network-office",))
    upload = store_upload(
        session,
        item_kind="risk",
        item_id=risk.id,
        owner_kind="risk_response",
        owner_id=1,
        filename="plan.pdf",
        data=PDF_BYTES,
        user_id=staff.user_id or 0,
    )
    session.commit()
    assert upload.id is not None
    ours = account(
        db, "Our Lead", ("service-lead",), scope="service", scope_id=services["Midland Royal Major Trauma Centre"]
    )
    theirs = account(
        db, "Their Lead", ("service-lead",), scope="service", scope_id=services["Wirral Coast Trauma Unit"]
    )
    assert get_upload(session, staff, upload.id).data == PDF_BYTES
    assert get_upload(session, ours, upload.id).filename == "plan.pdf"
    with pytest.raises(NotFound) as hidden:
        get_upload(session, theirs, upload.id)
    with pytest.raises(NotFound) as missing:
        get_upload(session, theirs, upload.id + 1000)
    assert str(hidden.value) == f"file {upload.id} not found"
    assert str(missing.value) == f"file {upload.id + 1000} not found"
    for bad in (0, -1, 2**70):
        with pytest.raises(NotFound):
            get_upload(session, staff, bad)
