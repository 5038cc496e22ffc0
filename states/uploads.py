"""Files a Trust sends through the portal: what they are, whether they are welcome, and storing them.

A file is judged by its bytes, never by its name or what the browser said: ``sniff`` reads the
magic numbers (PDF, PNG, JPEG), tells the zip-based documents apart by what is inside them (an
Office Open XML document by its ``[Content_Types].xml``, an OpenDocument one by its
``mimetype`` entry; nothing is extracted and every read from the archive is bounded, so a zip
bomb costs at most a few kilobytes), and takes anything else that decodes as UTF-8 without
control characters as plain text. ``check_file`` then refuses, with one clear error, a file that
is empty, larger than ``max_upload_bytes()`` (checked first, before any content is looked at),
of a type not allowed, badly named (control or format characters, a path or separator, no name
before the extension), or named with an extension that says something other than its content
(a PDF called ``.docx``, a program called ``.pdf``).

``store_upload`` checks the file, hashes it (SHA-256) and adds it as the next version of the
same (owner, filename), in the caller's transaction: nothing is committed here.

Setting: ``PEERWATCH_UPLOAD_MAX_BYTES`` (default 20 MiB), the largest file accepted.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import unicodedata
import zipfile
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, select

from models.portal import Upload
from models.types import is_row_id
from states.errors import InvalidInput

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
ODT = "application/vnd.oasis.opendocument.text"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
TEXT = "text/plain"
PNG = "image/png"
JPEG = "image/jpeg"

DOCUMENT_TYPES: frozenset[str] = frozenset({PDF, DOCX, XLSX, ODT, TEXT, PNG, JPEG})
IMAGE_TYPES: frozenset[str] = frozenset({PNG, JPEG})

# The extensions a name may end with, per content type (lower case, with the dot).
EXTENSIONS: dict[str, tuple[str, ...]] = {
    PDF: (".pdf",),
    DOCX: (".docx",),
    XLSX: (".xlsx",),
    PPTX: (".pptx",),
    ODT: (".odt",),
    ODS: (".ods",),
    TEXT: (".txt", ".text", ".csv"),
    PNG: (".png",),
    JPEG: (".jpg", ".jpeg"),
}
# What people call each type in an error message.
LABELS: dict[str, str] = {
    PDF: "PDF",
    DOCX: "Word (.docx)",
    XLSX: "Excel (.xlsx)",
    PPTX: "PowerPoint (.pptx)",
    ODT: "OpenDocument text (.odt)",
    ODS: "OpenDocument spreadsheet (.ods)",
    TEXT: "plain text",
    PNG: "PNG image",
    JPEG: "JPEG image",
}

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
MAX_NAME_CHARS = 200

# Office Open XML: the main part's content type, as [Content_Types].xml declares it.
_OOXML_MAIN = {
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml": DOCX,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml": XLSX,
    "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml": PPTX,
}
_ODF = {ODT.encode(): ODT, ODS.encode(): ODS}
_ZIP_MAX_ENTRIES = 10_000
_CONTENT_TYPES_MAX = 256 * 1024  # bytes of [Content_Types].xml read at most
_MIMETYPE_MAX = 128
_TEXT_CONTROLS_ALLOWED = frozenset("\t\n\r\f")
# Characters never welcome in a file name: control, format (bidi overrides, zero width),
# surrogates, private use, line and paragraph separators.
NAME_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_NAME_SEPARATORS = frozenset('/\\:*?"<>|')


def max_upload_bytes() -> int:
    """The largest file accepted, in bytes: ``PEERWATCH_UPLOAD_MAX_BYTES``, default 20 MiB."""
    raw = os.environ.get("PEERWATCH_UPLOAD_MAX_BYTES")
    if raw is None or not raw.strip():
        return DEFAULT_MAX_BYTES
    try:
        value = int(raw.strip())
    except ValueError:
        raise InvalidInput(f"PEERWATCH_UPLOAD_MAX_BYTES must be a whole number of bytes, not {raw!r}") from None
    if value < 1:
        raise InvalidInput(f"PEERWATCH_UPLOAD_MAX_BYTES must be at least 1, not {value}")
    return value


def describe_size(size: int) -> str:
    """``20 MB``, ``512 KB``, ``12 bytes``: a size as a person reads it (1 MB = 1024 KB)."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.3g} MB"
    if size >= 1024:
        return f"{size / 1024:.3g} KB"
    return f"{size} bytes"


def _bounded(archive: zipfile.ZipFile, name: str, limit: int) -> bytes | None:
    """At most ``limit`` bytes of entry ``name`` (None if missing, larger, or unreadable)."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None
    if info.file_size > limit or info.flag_bits & 0x1:  # too large, or encrypted
        return None
    try:
        with archive.open(info) as entry:
            data = entry.read(limit + 1)  # decompresses no more than this, whatever the header says
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, OSError, EOFError):
        return None
    except Exception:  # zlib.error, lzma/bz2 errors: a damaged archive is simply unknown
        return None
    return None if len(data) > limit else data


def _zip_entries(data: bytes) -> int | None:
    """The number of entries the archive's end record declares, read before anything parses the
    central directory (ZipFile reads all of it first: 230,000 empty entries cost seconds); None
    when there is no end record or it is a ZIP64 one (no Office file needs one)."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if end < 0 or len(data) < end + 22:
        return None
    entries = int.from_bytes(data[end + 10 : end + 12], "little")
    return None if entries == 0xFFFF else entries


_COMMENT = re.compile(rb"<!--.*?-->", re.S)
_CONTENT_TYPE = re.compile(rb"""ContentType\s*=\s*["']([^"']+)["']""")
# Parts that carry macros: a VBA project (Office), Basic or script libraries (OpenDocument).
_MACRO_PARTS = (re.compile(r"(^|/)vbaProject\.bin$", re.I), re.compile(r"^(Basic|Scripts)/", re.I))


def _sniff_zip(data: bytes) -> str | None:
    entries = _zip_entries(data)
    if entries is None or entries > _ZIP_MAX_ENTRIES:
        return None
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError):
        return None
    with archive:
        names = archive.namelist()
        if len(names) > _ZIP_MAX_ENTRIES or any(p.search(n) for p in _MACRO_PARTS for n in names):
            return None  # a document with macros is no plain document, whatever it says it is
        mimetype = _bounded(archive, "mimetype", _MIMETYPE_MAX)
        if mimetype is not None:
            return _ODF.get(mimetype.strip())
        declared = _bounded(archive, "[Content_Types].xml", _CONTENT_TYPES_MAX)
        if declared is None:
            return None
        types = {t.decode("ascii", "replace") for t in _CONTENT_TYPE.findall(_COMMENT.sub(b"", declared))}
        if any("macroenabled" in t.lower() for t in types):
            return None
        found = {kind for main, kind in _OOXML_MAIN.items() if main in types}
        return found.pop() if len(found) == 1 else None


def _is_text(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not any(unicodedata.category(ch) == "Cc" and ch not in _TEXT_CONTROLS_ALLOWED for ch in text)


def sniff(data: bytes) -> str | None:
    """The content type the bytes are (one of ``EXTENSIONS``' keys), or None if unknown."""
    if not data:
        return None
    if data.startswith(b"%PDF-"):
        return PDF
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"PK\x03\x04"):
        return _sniff_zip(data)
    if _is_text(data):
        return TEXT
    return None


def check_name(filename: str) -> str:
    """The file name, if it is a plain name (no path, separator, control or format character)."""
    if not isinstance(filename, str) or not filename.strip():
        raise InvalidInput("the file has no name")
    if len(filename) > MAX_NAME_CHARS:
        raise InvalidInput(f"the file name is longer than {MAX_NAME_CHARS} characters")
    for ch in filename:
        if unicodedata.category(ch) in NAME_BAD_CATEGORIES:
            raise InvalidInput(
                f"the file name {filename!r} contains a control or invisible character (U+{ord(ch):04X})"
            )
        if ch in _NAME_SEPARATORS:
            raise InvalidInput(
                f"the file name {filename!r} contains {ch!r}: send the file under a plain name, without a folder"
            )
    if filename != filename.strip():
        raise InvalidInput(f"the file name {filename!r} starts or ends with a space")
    stem, dot, _ext = filename.rpartition(".")
    if filename.startswith(".") or (dot and not stem.strip(".")):
        raise InvalidInput(f"the file name {filename!r} has no name before its extension")
    return filename


def _extension(filename: str) -> str:
    _stem, dot, ext = filename.rpartition(".")
    return f".{ext.lower()}" if dot else ""


def check_size(filename: str, size: int, max_bytes: int | None = None) -> None:
    """Refuse an empty file or one over the limit, from its size alone (before reading it)."""
    limit = max_upload_bytes() if max_bytes is None else max_bytes
    if size <= 0:
        raise InvalidInput(f"{filename} is empty")
    if size > limit:
        raise InvalidInput(
            f"{filename} is too large ({describe_size(size)}): the largest file accepted is {describe_size(limit)}"
        )


def check_file(
    filename: str,
    data: bytes,
    allowed: frozenset[str] = DOCUMENT_TYPES,
    max_bytes: int | None = None,
) -> str:
    """The file's sniffed content type, if it may be accepted; InvalidInput naming the problem."""
    check_name(filename)
    check_size(filename, len(data), max_bytes)
    kind = sniff(data)
    welcome = ", ".join(sorted(LABELS.get(t, t) for t in allowed))
    if kind is None:
        raise InvalidInput(f"{filename} is not a kind of file accepted here (accepted: {welcome})")
    if kind not in allowed:
        raise InvalidInput(f"{filename} is a {LABELS.get(kind, kind)} file, not accepted here (accepted: {welcome})")
    ext = _extension(filename)
    expected = EXTENSIONS[kind]
    if ext not in expected:
        shown = ext or "no extension"
        raise InvalidInput(
            f"{filename} is a {LABELS[kind]} file but its name ends with {shown}: name it with {' or '.join(expected)}"
        )
    return kind


def store_upload(
    session: Session,
    *,
    item_kind: str,
    item_id: int,
    owner_kind: str,
    owner_id: int,
    filename: str,
    data: bytes,
    user_id: int,
    allowed: frozenset[str] = DOCUMENT_TYPES,
    at: datetime | None = None,
) -> Upload:
    """Check and add the file as the next version of (owner, filename); flushed, not committed."""
    if not item_kind or not owner_kind:
        raise InvalidInput("an upload needs the item and the row it belongs to")
    for label, value in (("item", item_id), ("owner", owner_id), ("user", user_id)):
        if isinstance(value, bool) or not isinstance(value, int) or not is_row_id(value):
            raise InvalidInput(f"not a valid {label} id: {value!r}")
    content_type = check_file(filename, data, allowed)
    latest = session.exec(
        select(func.max(Upload.version)).where(
            Upload.owner_kind == owner_kind,
            Upload.owner_id == owner_id,
            Upload.filename == filename,
        )
    ).one()
    upload = Upload(
        item_kind=item_kind,
        item_id=item_id,
        owner_kind=owner_kind,
        owner_id=owner_id,
        version=(latest or 0) + 1,
        filename=filename,
        content_type=content_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
        uploaded_by=user_id,
    )
    if at is not None:
        upload.uploaded_at = at
    session.add(upload)
    session.flush()
    return upload


def uploads_of(session: Session, owner_kind: str, owner_id: int) -> list[Upload]:
    """The files attached to one row, in the order they were sent."""
    return list(
        session.exec(
            select(Upload)
            .where(Upload.owner_kind == owner_kind, Upload.owner_id == owner_id)
            .order_by(Upload.uploaded_at, Upload.id)  # type: ignore[arg-type]
        ).all()
    )
