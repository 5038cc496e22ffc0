"""Self-assessment declarations (seed 000 s5.1, Appendix 2; escalation 000 s6.4).

The network office ``circulates`` the Appendix 2 spreadsheet (generated per service from the
current standard set for its kind) to the service's Leads/Managers; the completed return is
due after a local-policy number of weeks (default 6), reminded before and chased to the
Service Lead once late. The returned spreadsheet is imported (``received``) only if every
row passes: a known Ref No., a status of Met, Partially Met or Unmet (Partially Met only
where the standard has that band), a figure from 0 to 100, an evidence location, and a
status that agrees with the figure where the standard has thresholds. Any bad row refuses
the whole file and names every problem by row and column; nothing is imported. Receipt
starts the written report, due 8 weeks later (000 s5.1). The network then records a
validated status beside each self-assessed one (``validated``): the total achievement is
(Met x 1 + Partially Met x 0.5 + Unmet x 0) / standards x 100 (weights: local policy), and a
service below 50% is escalated to its ICBs and Regional Quality Leads (000 s6.4). Then
``closed``. A declaration circulated in error can be ``withdrawn``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from io import BytesIO
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models.selfassessment import SelfAssessment, SelfAssessmentItem, Standard, StandardSet
from models.tables import RefusedAttempt, Report, Service
from states.clock import Clock, FixedClock, local_date, parse_date
from states.errors import InvalidInput, MissingActor, NotFound, PeerwatchError, PermissionDenied
from states.machines.spec import Context, DeadlineRule, Effects, KindSpec, Letter, NewDeadline
from states.policy import numbers_from_env
from states.roles import AUDITOR, NETWORK_LEADS, STAFF, check_actor_role
from states.scope import nation_of, recipient_scope, service_context, service_of

MET, PARTLY, UNMET = "Met", "Partially Met", "Unmet"
STATUSES = (MET, PARTLY, UNMET)
ESCALATE_BELOW = 50.0  # 000 s6.4: "not achieving at least a 50% total achievement rating" (the SOP, not local policy)


class SpreadsheetRejected(InvalidInput):
    """A returned spreadsheet refused: its problems are listed (the first ``listed``, with the
    total count, so 100,000 bad rows never print 100,000 lines); nothing was imported."""

    def __init__(self, problems: list[str], listed: int | None = None) -> None:
        cap = listed if listed is not None else SelfAssessmentPolicy.from_env().selfassessment_max_problems_listed
        cap = max(1, int(cap))
        self.count = len(problems)
        self.problems = list(problems[:cap])
        self.more = self.count - len(self.problems)  # problems found but not listed
        head = f"spreadsheet refused, nothing imported: {self.count} problem(s)"
        if self.more:
            head += f", the first {len(self.problems)} listed"
        super().__init__(head + ": " + "; ".join(self.problems) + (f"; ... and {self.more} more" if self.more else ""))


@dataclass(frozen=True)
class SelfAssessmentPolicy:
    """Local policy defaults, not the SOP; each overridable by ``PEERWATCH_<NAME>``."""

    selfassessment_return_weeks: int = 6  # the service returns the completed spreadsheet
    selfassessment_reminder_working_days: int = 5  # reminder before the return is due
    selfassessment_weight_met: float = 1.0  # total achievement weights (DOMAIN.md "Self-assessment declaration")
    selfassessment_weight_partly: float = 0.5
    selfassessment_weight_unmet: float = 0.0
    # Limits on a returned spreadsheet, checked before it is parsed (issue 12 item 5). An
    # Appendix 2 return is tens of kilobytes and a few hundred rows: these leave ample room.
    selfassessment_max_file_bytes: int = 10_000_000  # the file as uploaded
    selfassessment_max_uncompressed_bytes: int = 50_000_000  # all its parts once unzipped
    selfassessment_max_compression_ratio: int = 100  # unzipped / zipped, of any part over 1 MB and of the whole
    selfassessment_max_parts: int = 1000  # files inside the zip
    selfassessment_max_rows: int = 5000  # last row any sheet may use (declared or actual)
    selfassessment_max_columns: int = 50  # last column any sheet may use (AX)
    selfassessment_max_problems_listed: int = 50  # problems listed when a file is refused (then the count)

    @classmethod
    def from_env(cls) -> SelfAssessmentPolicy:
        return cls(**numbers_from_env(cls))  # type: ignore[arg-type]

    def weight(self, status: str) -> float:
        return {
            MET: self.selfassessment_weight_met,
            PARTLY: self.selfassessment_weight_partly,
            UNMET: self.selfassessment_weight_unmet,
        }[status]


# ---------------------------------------------------------------- the standards library


def read_library(path: str | Path) -> list[dict[str, Any]]:
    """The standard sets in a JSON or YAML file: one set, a list of sets, or ``{sets: [...]}``."""
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"standards file {str(p)!r} not found")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:
        raise InvalidInput(
            f"{p.name}: not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: {' '.join(str(exc).split())}"
        ) from None
    if isinstance(data, dict) and "sets" in data:
        data = data["sets"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data or not all(isinstance(d, dict) for d in data):
        raise InvalidInput(
            f"{p.name}: expected a standard set (service_kind, name, version, effective_from, standards) or a list of them"
        )
    return data


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    return float(value)


def _check_set(doc: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validate one set's document; every problem is named at once."""
    problems: list[str] = []
    head: dict[str, Any] = {}
    for key in ("service_kind", "name", "version"):
        value = doc.get(key)
        if value is None or not str(value).strip():
            problems.append(f"{key}: missing")
        else:
            head[key] = str(value).strip()
    eff = doc.get("effective_from")
    if isinstance(eff, date):
        head["effective_from"] = eff
    elif eff is None:
        problems.append("effective_from: missing")
    else:
        try:
            head["effective_from"] = parse_date(str(eff), "effective_from")
        except PeerwatchError as exc:
            problems.append(f"effective_from: {exc}")
    label = f"{head.get('service_kind', '?')} {head.get('version', '?')}"
    raw = doc.get("standards")
    if not isinstance(raw, list) or not raw:
        problems.append("standards: give a list of at least one standard")
        raw = []
    out, seen = [], set()
    for n, s in enumerate(raw, start=1):
        if not isinstance(s, dict):
            problems.append(f"standard #{n}: expected a mapping")
            continue
        ref = str(s.get("ref") or "").strip()
        where = f"standard {ref or '#' + str(n)}"
        if not ref:
            problems.append(f"{where}: ref missing")
        elif ref in seen:
            problems.append(f"{where}: ref appears twice")
        seen.add(ref)
        for key in ("descriptor", "criteria_met", "criteria_unmet"):
            if not str(s.get(key) or "").strip():
                problems.append(f"{where}: {key} missing")
        partly_text = str(s.get("criteria_partly") or "").strip() or None
        try:
            met_t, partly_t = _number(s.get("met_threshold")), _number(s.get("partly_threshold"))
        except (TypeError, ValueError):
            problems.append(f"{where}: met_threshold and partly_threshold must be numbers (percentages)")
            continue
        for name, t in (("met_threshold", met_t), ("partly_threshold", partly_t)):
            if t is not None and not 0 <= t <= 100:
                problems.append(f"{where}: {name} {t:g} is outside 0-100")
        if partly_t is not None and met_t is None:
            problems.append(f"{where}: partly_threshold needs a met_threshold")
        if partly_t is not None and met_t is not None and partly_t >= met_t:
            problems.append(f"{where}: partly_threshold {partly_t:g} must be below met_threshold {met_t:g}")
        if partly_t is not None and not partly_text:
            problems.append(f"{where}: partly_threshold given but no criteria_partly (the 'Partially Met' criterion)")
        if met_t is not None and partly_text and partly_t is None:
            problems.append(
                f"{where}: criteria_partly given with a met_threshold but no partly_threshold: the band cannot be judged from the figure"
            )
        out.append(
            {
                "position": n,
                "ref": ref,
                "descriptor": str(s.get("descriptor") or "").strip(),
                "criteria_met": str(s.get("criteria_met") or "").strip(),
                "criteria_partly": partly_text,
                "criteria_unmet": str(s.get("criteria_unmet") or "").strip(),
                "met_threshold": met_t,
                "partly_threshold": partly_t,
            }
        )
    if problems:
        raise InvalidInput(f"standard set {label} refused, nothing loaded: " + "; ".join(problems))
    return head, out


def head_set(session: Session, service_kind: str) -> StandardSet | None:
    """The newest loaded set for a kind: the one no other set supersedes."""
    return session.exec(
        select(StandardSet)
        .where(StandardSet.service_kind == service_kind, col(StandardSet.superseded_by_id).is_(None))
        .order_by(col(StandardSet.effective_from).desc(), col(StandardSet.id).desc())
    ).first()


def current_set(session: Session, service_kind: str, on: date) -> StandardSet | None:
    """The set in force for a kind on a date: effective by then and not yet superseded by then."""
    sets = list(session.exec(select(StandardSet).where(StandardSet.service_kind == service_kind)))
    by_id = {s.id: s for s in sets}
    for s in sorted(sets, key=lambda s: (s.effective_from, s.id or 0), reverse=True):
        if s.effective_from > on:
            continue
        successor = by_id.get(s.superseded_by_id)
        if successor is None or successor.effective_from > on:
            return s
    return None


def load_standard_sets(
    session: Session, docs: list[dict[str, Any]], *, actor: str, role: str, clock: Clock
) -> list[dict[str, Any]]:
    """Load each set, superseding the newest set of its kind; a set not newer than it is refused.
    Each load (and each set it supersedes) is an audited change with the actor and role
    (``states.engine.record_change``, kind ``standard_set``); the caller commits."""
    from states import engine

    if not actor or not actor.strip():
        raise MissingActor("no actor given to load standard sets: name who is acting (--actor)")
    if check_actor_role(role) == AUDITOR:
        raise PermissionDenied("role 'auditor' is read-only: it may not load standard sets")
    loaded = []
    for doc in docs:
        head, standards = _check_set(doc)
        label = f"{head['service_kind']} {head['name']!r} version {head['version']}"
        if session.exec(
            select(StandardSet.id).where(
                StandardSet.service_kind == head["service_kind"],
                StandardSet.name == head["name"],
                StandardSet.version == head["version"],
            )
        ).first():
            raise InvalidInput(f"standard set {label} is already loaded: give the updated set a new version")
        previous = head_set(session, head["service_kind"])
        if previous is not None and head["effective_from"] <= previous.effective_from:
            raise InvalidInput(
                f"standard set {label} (effective {head['effective_from'].isoformat()}) is not newer than the current set "
                f"{previous.name!r} version {previous.version} (effective {previous.effective_from.isoformat()}): nothing loaded"
            )
        new = StandardSet(**head)
        session.add(new)
        session.flush()
        for s in standards:
            session.add(Standard(set_id=new.id, **s))  # type: ignore[arg-type]
        if previous is not None:
            previous.superseded_by_id = new.id
            session.add(previous)
        session.flush()
        assert new.id is not None
        engine.record_change(
            session,
            "standard_set",
            new.id,
            "load_standard_set",
            actor=actor,
            role=role,
            clock=clock,
            state="loaded",
            data={
                "service_kind": new.service_kind,
                "name": new.name,
                "version": new.version,
                "effective_from": new.effective_from,
                "standards": [s["ref"] for s in standards],
                "supersedes": previous.id if previous else None,
            },
        )
        if previous is not None:
            assert previous.id is not None
            engine.record_change(
                session,
                "standard_set",
                previous.id,
                "supersede_standard_set",
                actor=actor,
                role=role,
                clock=clock,
                from_state="loaded",
                state="superseded",
                data={"superseded_by": new.id},
            )
        loaded.append(
            {
                "id": new.id,
                "service_kind": new.service_kind,
                "name": new.name,
                "version": new.version,
                "effective_from": new.effective_from,
                "standards": len(standards),
                "supersedes": previous.id if previous else None,
            }
        )
    return loaded


def standards_of(session: Session, set_id: int) -> list[Standard]:
    return list(
        session.exec(
            select(Standard).where(Standard.set_id == set_id).order_by(col(Standard.position), col(Standard.id))
        )
    )


# ---------------------------------------------------------------- judging a row


def derive_status(std: Standard, figure: float | None) -> str | None:
    """The status the figure gives, where the standard has thresholds (e.g. 1.2: >= 98 Met, >= 90 Partially Met)."""
    if std.met_threshold is None or figure is None:
        return None
    if figure >= std.met_threshold:
        return MET
    if std.partly_threshold is not None and figure >= std.partly_threshold:
        return PARTLY
    return UNMET


def _bands(std: Standard) -> str:
    if std.met_threshold is None:
        return "no thresholds"
    parts = [f"Met >= {std.met_threshold:g}"]
    if std.partly_threshold is not None:
        parts.append(f"Partially Met >= {std.partly_threshold:g}")
    return ", ".join(parts) + ", else Unmet"


def _status(text: Any) -> str | None:
    """Met, Partially Met or Unmet, whatever the case and spacing; None if blank; the text if unknown."""
    if text is None or not str(text).strip():
        return None
    wanted = " ".join(str(text).split()).lower()
    return next((s for s in STATUSES if s.lower() == wanted), str(text).strip())


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str | int | float | date) and isinstance(getattr(value, "text", None), str):
        value = value.text  # an array formula: its literal text
    if isinstance(value, float):
        return format(value, "g")
    return " ".join(str(value).split()) if isinstance(value, str) else str(value)


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


def _too_big(size: int, limit: int) -> str:
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
    import zipfile

    policy = policy or SelfAssessmentPolicy.from_env()
    limit = policy.selfassessment_max_file_bytes
    if len(data) > limit:
        raise SpreadsheetRejected([_too_big(len(data), limit)])
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
    import zipfile
    import zlib

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
                        for ref in dim.group(1).decode("ascii", "replace").split(":"):
                            m = _CELL_REF.fullmatch(ref.strip())
                            if m:
                                beyond(
                                    int(m.group(2)),
                                    _column_number(m.group(1)),
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
    from openpyxl import load_workbook

    from notifications.spreadsheets import ABOUT, ABOUT_REFERENCE, COLUMNS, SHEET

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
        (r for r in range(1, min(ws.max_row, 10) + 1) if _text(ws.cell(row=r, column=1).value) == COLUMNS[0]), None
    )
    if header is None:
        raise SpreadsheetRejected([*problems, f"sheet {ws.title}: no header row with {COLUMNS[0]!r} in column A"])
    for c, name in enumerate(COLUMNS, start=1):
        got = _text(ws.cell(row=header, column=c).value)
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
                "ref": _text(cells[0].value),
                "status": _text(cells[5].value) or None,
                "figure": figure,
                "comments": _text(cells[7].value),
                "evidence": _text(cells[8].value),
            }
        )
    return rows


def check_rows(rows: list[dict[str, Any]], standards: list[Standard]) -> list[dict[str, Any]]:
    """Judge every row against the standard set; any problem refuses all of them (SpreadsheetRejected)."""
    by_ref = {s.ref: s for s in standards}
    problems: list[str] = []
    seen: dict[str, int] = {}
    items = []
    for raw in rows:
        n = raw.get("row", "?")
        ref = _text(raw.get("ref"))
        std = by_ref.get(ref)
        if not ref:
            problems.append(f"row {n}, Ref No.: missing")
        elif std is None:
            problems.append(f"row {n}, Ref No.: unknown standard {ref!r} (known: {', '.join(by_ref)})")
        elif ref in seen:
            problems.append(f"row {n}, Ref No.: standard {ref} appears again (first on row {seen[ref]})")
            std = None
        else:
            seen[ref] = n
        figure: float | None = None
        value = raw.get("figure")
        blank_figure = value is None or (isinstance(value, str) and not value.strip())
        if not blank_figure:
            try:
                if isinstance(value, bool):
                    raise ValueError(value)
                figure = float(value.strip().removesuffix("%").strip()) if isinstance(value, str) else float(value)
            except (TypeError, ValueError):
                problems.append(f"row {n}, Figure Achieved: {_text(value)!r} is not a number")
            else:
                if figure != figure or not 0 <= figure <= 100:  # NaN or out of range
                    problems.append(f"row {n}, Figure Achieved: {figure:g} is outside 0-100")
                    figure = None
        if std is not None and std.has_thresholds and blank_figure:
            problems.append(
                f"row {n}, Figure Achieved: missing: standard {ref} is judged on its figure ({_bands(std)})"
            )
        status = _status(raw.get("status"))
        derived = derive_status(std, figure) if std else None
        if status is not None and status not in STATUSES:
            problems.append(f"row {n}, Self-Assessment: {status!r} is not Met, Partially Met or Unmet")
        elif std is not None:
            if status == PARTLY and not std.has_partly_band:
                problems.append(
                    f"row {n}, Self-Assessment: standard {ref} has no 'Partially Met' band: use Met or Unmet"
                )
            elif status is None and not std.has_thresholds:
                problems.append(f"row {n}, Self-Assessment: missing: Met, Partially Met or Unmet")
            elif status is not None and derived is not None and status != derived:
                problems.append(
                    f"row {n}, Self-Assessment: {status!r} contradicts the figure {figure:g} "
                    f"({derived} for standard {ref}: {_bands(std)})"
                )
        if not _text(raw.get("evidence")):
            problems.append(
                f"row {n}, Evidence location: missing: say where the evidence is "
                "(work plan, annual report, Operational Policy or during visit)"
            )
        if std is not None:
            items.append(
                {
                    "ref": ref,
                    "self_status": status or derived,
                    "figure": figure,
                    "comments": _text(raw.get("comments")),
                    "evidence_location": _text(raw.get("evidence")),
                }
            )
    for ref in by_ref:
        if ref not in seen:
            problems.append(f"Ref No.: standard {ref} has no row")
    if problems:
        raise SpreadsheetRejected(problems)
    return items


def parse_spreadsheet(data: bytes, standards: list[Standard], expected_ref: str | None = None) -> list[dict[str, Any]]:
    """Read and judge a returned workbook; pure: stores nothing, raises SpreadsheetRejected with every problem."""
    return check_rows(read_workbook(data, expected_ref), standards)


def total_achievement(statuses: list[str], standards_count: int, policy: SelfAssessmentPolicy | None = None) -> float:
    """(Met x 1 + Partially Met x 0.5 + Unmet x 0) / number of standards x 100, with the policy's weights."""
    policy = policy or SelfAssessmentPolicy.from_env()
    if standards_count <= 0:
        raise InvalidInput("no standards to compute an achievement from")
    return 100.0 * sum(policy.weight(s) for s in statuses) / standards_count


def is_below_escalation(achievement: float) -> bool:
    return achievement < ESCALATE_BELOW


# ---------------------------------------------------------------- the machine


class SelfAssessmentState(StrEnum):
    NEW = "new"
    CIRCULATED = "circulated"
    RECEIVED = "received"
    VALIDATED = "validated"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


A = SelfAssessmentState
STAFF_ROLES = sorted(STAFF)
LEADS = sorted(NETWORK_LEADS)
TRANSITIONS: list[dict[str, Any]] = [
    {
        "trigger": "circulate",
        "source": A.NEW,
        "dest": A.CIRCULATED,
        "roles": STAFF_ROLES,
        "conditions": ["is_standard_set_current", "is_only_declaration_for_year"],
    },
    {"trigger": "receive", "source": A.CIRCULATED, "dest": A.RECEIVED, "roles": STAFF_ROLES},
    {"trigger": "refuse_return", "source": A.CIRCULATED, "dest": None, "roles": STAFF_ROLES},
    {"trigger": "validate_item", "source": A.RECEIVED, "dest": None, "roles": STAFF_ROLES},
    {"trigger": "accept_all", "source": A.RECEIVED, "dest": A.VALIDATED, "roles": STAFF_ROLES},
    {
        "trigger": "complete_validation",
        "source": A.RECEIVED,
        "dest": A.VALIDATED,
        "roles": STAFF_ROLES,
        "conditions": ["are_all_items_validated"],
    },
    {"trigger": "close", "source": A.VALIDATED, "dest": A.CLOSED, "roles": STAFF_ROLES},
    {
        "trigger": "withdraw",
        "source": [A.NEW, A.CIRCULATED],
        "dest": A.WITHDRAWN,
        "roles": LEADS,
        "note_required": True,
    },
]

LEADS_MANAGERS = ("service-lead", "service-manager")  # 000 s5.1: "the Leads and/or Managers of the service"
DEADLINE_RULES = {
    "return": DeadlineRule(
        owner="service-lead",
        step="the service returns the completed self-assessment spreadsheet",
        reminder=Letter("selfassessment_reminder", to=("service-lead",), cc=("service-manager",), category="reminder"),
        overdue=Letter(
            "selfassessment_chase", to=("service-lead",), cc=("service-manager", "network-office"), category="chase"
        ),
    ),
}
REFUSAL = "selfassessment_refused"  # the returned spreadsheet sent back with its problems listed
ESCALATION = Letter(
    "achievement_escalation",
    to=("icb", "regional-quality-lead"),
    cc=("network-manager", "regional-lead", "service-lead"),
)
NEXT_STEP = {
    A.NEW: "Network office: circulate the self-assessment spreadsheet",
    A.CIRCULATED: "Service: complete and return the spreadsheet; network office: import it",
    A.RECEIVED: "Network office: validate each standard (the written report is due 8 weeks after receipt)",
    A.VALIDATED: "Network office: finish the written report, then close the declaration",
}


def _items(session: Session, assessment_id: int | None) -> list[SelfAssessmentItem]:
    return list(
        session.exec(
            select(SelfAssessmentItem)
            .where(SelfAssessmentItem.assessment_id == assessment_id)
            .order_by(col(SelfAssessmentItem.id))
        )
    )


# Guards: pure predicates on the context.
def is_standard_set_current(ctx: Context) -> bool:
    svc = service_of(ctx.session, ctx.row.service_id)[0]
    current = current_set(ctx.session, svc.kind, ctx.today)
    return current is not None and current.id == ctx.row.standard_set_id


def is_only_declaration_for_year(ctx: Context) -> bool:
    other = ctx.session.exec(
        select(SelfAssessment.id).where(
            SelfAssessment.service_id == ctx.row.service_id,
            SelfAssessment.programme_year == ctx.row.programme_year,
            SelfAssessment.id != ctx.row.id,
            col(SelfAssessment.state).not_in([A.NEW.value, A.WITHDRAWN.value]),
        )
    ).first()
    return other is None


def are_all_items_validated(ctx: Context) -> bool:
    items = _items(ctx.session, ctx.row.id)
    return bool(items) and all(i.validated_status is not None for i in items)


def effects(ctx: Context) -> Effects:
    row: SelfAssessment = ctx.row
    t, out = ctx.trigger, Effects()
    if t == "circulate":
        policy = SelfAssessmentPolicy.from_env()
        row.circulated_on = ctx.today
        due = ctx.calendar.add_weeks(ctx.today, policy.selfassessment_return_weeks)
        remind = ctx.calendar.subtract_working_days(due, policy.selfassessment_reminder_working_days)
        out.deadlines.append(NewDeadline("return", due, remind if remind > ctx.today else None))
        out.letters.append(
            Letter(
                "selfassessment_request",
                to=LEADS_MANAGERS,
                cc=("network-office",),
                attachments=(spreadsheet(ctx.session, row, return_by=due, made=ctx.now),),
            )
        )
    elif t == "receive":
        rows = ctx.params.get("rows")
        if not isinstance(rows, list):
            raise InvalidInput(
                "receive needs the returned spreadsheet: use peerwatch selfassessment import ID FILE.xlsx"
            )
        for item in check_rows(rows, standards_of(ctx.session, row.standard_set_id)):
            ctx.session.add(SelfAssessmentItem(assessment_id=row.id, **item))  # type: ignore[arg-type]
        row.received_on = ctx.today
        from states.machines.lateness import record as record_lateness  # issue 12 item 12: stored at receipt

        record_lateness(ctx, ("return",), f"self-assessment return {year_label(row.programme_year)}")
        out.then.append(lambda: _start_report(ctx))
    elif t == "refuse_return":
        problems = ctx.params.get("problems")
        if not isinstance(problems, list) or not problems:
            raise InvalidInput(
                "refuse_return needs the problems found: use peerwatch selfassessment import ID FILE.xlsx"
            )
        count = int(ctx.params.get("count") or len(problems))
        out.letters.append(
            Letter(
                REFUSAL,
                to=LEADS_MANAGERS,
                cc=("network-office",),
                context=(
                    ("problems", tuple(str(p) for p in problems)),
                    ("problem_count", count),
                    ("more_problems", max(0, count - len(problems))),
                    ("filename", str(ctx.params.get("filename") or "the spreadsheet")),
                ),
            )
        )
    elif t == "validate_item":
        _validate_item(ctx)
    elif t in ("accept_all", "complete_validation"):
        stds = {s.ref: s for s in standards_of(ctx.session, row.standard_set_id)}
        items = _items(ctx.session, row.id)
        if t == "accept_all":
            for i in items:
                if i.validated_status is None:
                    i.validated_status = derive_status(stds[i.ref], i.figure) or i.self_status
                    i.validation_note = (
                        "accepted as declared" if i.validated_status == i.self_status else "derived from the figure"
                    )
                    ctx.session.add(i)
        achievement = total_achievement([i.validated_status or UNMET for i in items], len(stds))
        row.achievement = round(achievement, 1)
        row.validated_on = ctx.today
        if is_below_escalation(achievement):
            out.letters.append(ESCALATION)
    return out


def _validate_item(ctx: Context) -> None:
    ref = str(ctx.params.get("ref") or "").strip()
    status = _status(ctx.params.get("status"))
    item = next((i for i in _items(ctx.session, ctx.row.id) if i.ref == ref), None)
    if item is None:
        raise NotFound(
            f"standard {ref!r} is not in self-assessment {ctx.row.id}: validate_item needs ref=... status=..."
        )
    std = next(s for s in standards_of(ctx.session, ctx.row.standard_set_id) if s.ref == ref)
    if status not in STATUSES:
        raise InvalidInput(f"status {ctx.params.get('status')!r}: use Met, Partially Met or Unmet")
    if status == PARTLY and not std.has_partly_band:
        raise InvalidInput(f"standard {ref} has no 'Partially Met' band: use Met or Unmet")
    derived = derive_status(std, item.figure)
    if derived is not None and status != derived and not (ctx.note and ctx.note.strip()):
        raise InvalidInput(
            f"standard {ref}: the figure {item.figure:g} gives {derived} ({_bands(std)}); "
            f"to record {status} instead, give the reason with --note"
        )
    item.validated_status = status
    item.validation_note = ctx.note
    ctx.session.add(item)


def _start_report(ctx: Context) -> None:
    """The written report is due 8 weeks after receipt (000 s5.1): start it through the engine."""
    from states import engine

    row: SelfAssessment = ctx.row
    engine.create(
        ctx.session,
        "report",
        Report(service_id=row.service_id, basis_date=row.received_on, state="new"),  # type: ignore[arg-type]
        "start_drafting",
        actor=ctx.actor,
        role=ctx.role,
        clock=FixedClock(ctx.now),
        note=f"report of self-assessment SA-{row.id}",
    )


# ---------------------------------------------------------------- reading and writing


def year_label(year: int) -> str:
    return f"{year}-{(year + 1) % 100:02d}"


def ref_of(row: SelfAssessment) -> str:
    return f"SA-{row.id}"


def report_of(session: Session, row: SelfAssessment) -> Report | None:
    """The written report started when this declaration was received."""
    if row.received_on is None:
        return None
    return session.exec(
        select(Report)
        .where(
            Report.service_id == row.service_id, col(Report.visit_id).is_(None), Report.basis_date == row.received_on
        )
        .order_by(col(Report.id).desc())
    ).first()


def item_view(session: Session, row: SelfAssessment) -> list[dict[str, Any]]:
    """Each standard with the declared, figure-derived and validated status."""
    items = {i.ref: i for i in _items(session, row.id)}
    out = []
    for std in standards_of(session, row.standard_set_id):
        i = items.get(std.ref)
        out.append(
            {
                "ref": std.ref,
                "descriptor": std.descriptor,
                "criteria_met": std.criteria_met,
                "criteria_partly": std.criteria_partly,
                "criteria_unmet": std.criteria_unmet,
                "has_partly_band": std.has_partly_band,
                "bands": _bands(std),
                "self_status": i.self_status if i else None,
                "figure": i.figure if i else None,
                "derived_status": derive_status(std, i.figure) if i else None,
                "comments": i.comments if i else None,
                "evidence_location": i.evidence_location if i else None,
                "validated_status": i.validated_status if i else None,
                "validation_note": i.validation_note if i else None,
            }
        )
    return out


def workbook_document(
    session: Session, row: SelfAssessment, return_by: date | None = None, made: datetime | None = None
) -> dict[str, Any]:
    """Everything the spreadsheet shows, read from the database (the renderer never queries)."""
    sset = session.get(StandardSet, row.standard_set_id)
    assert sset is not None
    return {
        **service_context(session, row),
        "assessment": {
            "id": row.id,
            "ref": ref_of(row),
            "programme_year": year_label(row.programme_year),
            "return_by": return_by,
        },
        "standard_set": {"name": sset.name, "version": sset.version, "effective_from": sset.effective_from},
        "rows": item_view(session, row),
        "created": made,
    }


def spreadsheet(
    session: Session, row: SelfAssessment, return_by: date | None = None, made: datetime | None = None
) -> tuple[str, str, bytes]:
    """(filename, content type, bytes) of the Appendix 2 spreadsheet for this declaration."""
    from notifications.spreadsheets import XLSX_TYPE, render_selfassessment_xlsx

    svc = service_of(session, row.service_id)[0]
    stem = "-".join(svc.name.lower().split())
    data = render_selfassessment_xlsx(workbook_document(session, row, return_by, made))
    return (f"self-assessment-{stem}-{year_label(row.programme_year)}-{ref_of(row)}.xlsx", XLSX_TYPE, data)


def return_due(session: Session, row: SelfAssessment) -> date | None:
    from states.engine import pending_deadlines

    return next((d.due_on for d in pending_deadlines(session, "selfassessment", row.id) if d.name == "return"), None)  # type: ignore[arg-type]


def start(
    session: Session,
    service_id: int,
    programme_year: int,
    *,
    actor: str,
    role: str,
    clock: Clock,
    note: str | None = None,
) -> Any:
    """Create a declaration against the set in force for the service's kind today, and circulate it."""
    from states import engine

    if not 2000 <= programme_year <= 2100:
        raise InvalidInput(f"programme year {programme_year}: give the year it starts, e.g. 2026 for 2026-27")
    svc = session.get(Service, service_id)
    if svc is None:
        raise NotFound(f"service {service_id} not found (peerwatch service list)")
    today = local_date(clock.now())
    sset = current_set(session, svc.kind, today)
    if sset is None:
        raise NotFound(
            f"no standard set in force for {svc.kind!r} on {today.isoformat()}: "
            "load one with peerwatch selfassessment standards load FILE"
        )
    row = SelfAssessment(service_id=service_id, standard_set_id=sset.id, programme_year=programme_year, state="new")  # type: ignore[arg-type]
    return engine.create(session, "selfassessment", row, "circulate", actor=actor, role=role, clock=clock, note=note)


def import_spreadsheet(
    db: Engine,
    assessment_id: int,
    data: bytes,
    *,
    filename: str,
    actor: str,
    role: str,
    clock: Clock,
    letter: bool = True,
) -> SelfAssessment:
    """Import a returned spreadsheet in one transaction.

    A refused file imports nothing: the refused attempt is stored with its problems and, unless
    ``letter`` is False (the operator picked the wrong file), the service is written to through
    the engine (``refuse_return``: an audit event and the ``selfassessment_refused`` letter
    listing the problems, the first 50 and the count) so it can correct and return it.
    """
    from states import engine

    if not actor or not actor.strip():
        raise MissingActor(f"no actor given to import self-assessment {assessment_id}: name who is acting (--actor)")
    check_actor_role(role)
    try:
        with Session(db, expire_on_commit=False) as session:
            spec, row = engine.load(session, "selfassessment", assessment_id)
            assert isinstance(row, SelfAssessment)
            if not spec.rows_for("receive", row.state):  # the engine names what is allowed instead
                engine.fire(session, "selfassessment", assessment_id, "receive", actor=actor, role=role, clock=clock)
            rows = read_workbook(data, expected_ref=ref_of(row))
            check_rows(rows, standards_of(session, row.standard_set_id))  # every problem at once, before the engine
            out = engine.fire(
                session,
                "selfassessment",
                assessment_id,
                "receive",
                actor=actor,
                role=role,
                clock=clock,
                note=f"imported {filename}",
                params={"filename": filename, "rows": rows},
            )
            session.commit()
            return out.row  # type: ignore[return-value]
    except SpreadsheetRejected as exc:
        _record_refusal(db, assessment_id, exc, filename=filename, actor=actor, role=role, clock=clock, letter=letter)
        raise


def _record_refusal(
    db: Engine,
    assessment_id: int,
    exc: SpreadsheetRejected,
    *,
    filename: str,
    actor: str,
    role: str,
    clock: Clock,
    letter: bool,
) -> None:
    """The refused attempt, and (through the engine) the letter listing the problems to the service."""
    from states import engine

    with Session(db) as session:
        session.add(
            RefusedAttempt(
                kind="selfassessment",
                item_id=assessment_id,
                trigger="receive",
                actor=actor or "(none)",
                role=role,
                at=clock.now(),
                reason=str(exc),
                data={"filename": filename, "problems": exc.problems, "count": exc.count},
            )
        )
        if letter:
            engine.fire(
                session,
                "selfassessment",
                assessment_id,
                "refuse_return",
                actor=actor,
                role=role,
                clock=clock,
                note=f"refused {filename}: {exc.count} problem(s)",
                params={"filename": filename, "problems": exc.problems, "count": exc.count},
            )
        session.commit()


def import_file(
    db: Engine, assessment_id: int, path: Path, *, actor: str, role: str, clock: Clock, letter: bool = True
) -> SelfAssessment:
    """``import_spreadsheet`` from a file; a file over the size limit is refused without being read."""
    from states import engine

    limit = SelfAssessmentPolicy.from_env().selfassessment_max_file_bytes
    size = path.stat().st_size
    if size <= limit:
        return import_spreadsheet(
            db, assessment_id, path.read_bytes(), filename=path.name, actor=actor, role=role, clock=clock, letter=letter
        )
    if not actor or not actor.strip():
        raise MissingActor(f"no actor given to import self-assessment {assessment_id}: name who is acting (--actor)")
    check_actor_role(role)
    with Session(db) as session:
        spec, row = engine.load(session, "selfassessment", assessment_id)
        if not spec.rows_for("receive", row.state):
            engine.fire(session, "selfassessment", assessment_id, "receive", actor=actor, role=role, clock=clock)
    exc = SpreadsheetRejected([_too_big(size, limit)])
    _record_refusal(db, assessment_id, exc, filename=path.name, actor=actor, role=role, clock=clock, letter=letter)
    raise exc


def latest_achievements(session: Session, service_ids: list[int]) -> dict[int, float]:
    """The most recent validated total achievement per service (for the visit weighting)."""
    out: dict[int, float] = {}
    q = (
        select(SelfAssessment)
        .where(col(SelfAssessment.service_id).in_(service_ids), col(SelfAssessment.achievement).is_not(None))
        .order_by(col(SelfAssessment.programme_year), col(SelfAssessment.validated_on), col(SelfAssessment.id))
    )
    for row in session.exec(q):
        out[row.service_id] = row.achievement  # type: ignore[assignment]
    return out


def letter_context(session: Session, row: SelfAssessment) -> dict[str, Any]:
    sset = session.get(StandardSet, row.standard_set_id)
    assert sset is not None
    items = _items(session, row.id)
    counts = {s: sum(1 for i in items if (i.validated_status or i.self_status) == s) for s in STATUSES}
    return {
        "item": {
            "ref": ref_of(row),
            "id": row.id,
            "title": f"Self-assessment declaration {year_label(row.programme_year)}",
            "programme_year": year_label(row.programme_year),
            "standard_set": f"{sset.name}, version {sset.version}",
            "circulated_on": row.circulated_on,
            "received_on": row.received_on,
            "achievement": row.achievement,
            "threshold": ESCALATE_BELOW,
            "counts": counts,
            "standards": len(standards_of(session, row.standard_set_id)),
            "problems_listed": SelfAssessmentPolicy.from_env().selfassessment_max_problems_listed,
        },
        **service_context(session, row),
    }


SPEC = KindSpec(
    name="selfassessment",
    model=SelfAssessment,
    states=SelfAssessmentState,
    initial=SelfAssessmentState.NEW,
    transitions=TRANSITIONS,
    guards={
        "is_standard_set_current": is_standard_set_current,
        "is_only_declaration_for_year": is_only_declaration_for_year,
        "are_all_items_validated": are_all_items_validated,
    },
    effects=effects,
    deadline_rules=DEADLINE_RULES,
    terminal=frozenset({A.CLOSED.value, A.WITHDRAWN.value}),
    nation_of=nation_of,
    letter_context=letter_context,
    recipient_scope=recipient_scope,
    next_step={k.value: v for k, v in NEXT_STEP.items()},
    describe="Self-assessment declarations against the standards (000 s5.1, Appendix 2)",
)
