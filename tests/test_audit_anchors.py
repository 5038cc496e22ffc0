"""Anchors: the chain's head written outside the database, and ``audit verify --anchors DIR``
proving every anchor is still in the chain (issue 14 item 6).

The keyed chain stops anyone without the key; an anchor also catches the one who holds it: a
chain cut short (truncation) or rewritten and re-signed WITH the key no longer holds the
anchored hash at the anchored event."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models import AuditEvent, OutboxMessage, Risk
from models.installation import installation_id
from notifications.render import rendered
from states.clock import FixedClock
from states.errors import InvalidInput
from states.services import anchors
from tests import support_accounts
from tests.support_audit import TEST_KEY, insider, rehash, story
from tests.support_cli import cli_env, ok, run

DAY = FixedClock(date(2026, 12, 18))


def _anchor(db: Engine, folder: Path, clock: FixedClock = DAY) -> Path:
    with Session(db) as s:
        path = anchors.anchor(s, clock, folder)
        s.commit()
    return path


def _last(db: Engine) -> AuditEvent:
    with Session(db) as s:
        last = s.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc())).first()
        assert last is not None
        return last


def test_an_anchor_is_a_new_file_holding_the_head_and_an_email_to_the_auditors(
    db: Engine,
    session: Session,
    raise_risk: Callable[..., Risk],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    story(session, raise_risk)
    support_accounts.account(db, "Ms Ada Auditor", ("auditor",), email="ada.auditor@example.nhs.uk")
    support_accounts.account(db, "Mr Nat Manager", ("network-manager",), email="nat.manager@example.nhs.uk")
    monkeypatch.setenv("PEERWATCH_ANCHOR_EMAIL", "governance@example.nhs.uk")
    folder = tmp_path / "anchors"
    path = _anchor(db, folder)
    last = _last(db)
    data = json.loads(path.read_text())
    with Session(db) as s:
        count = len(s.exec(select(AuditEvent)).all())
        assert data == {
            "format": 1,
            "installation_id": installation_id(s),
            "event_id": last.id,
            "events": count,
            "hash": last.hash,
            "key_id": "test-1",
            "at": DAY.now().isoformat(),
            "day": "2026-12-18",
            "written_at": data["written_at"],
        }
        assert datetime.fromisoformat(data["written_at"]).tzinfo is not None
        [mail] = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "audit_anchor")).all()
    assert (path.parent, path.suffix, path.stat().st_mode & 0o777) == (folder, ".json", 0o444)
    assert (mail.template, mail.status, mail.item_id) == ("audit_anchor", "queued", last.id)
    assert [p["email"] for p in mail.to] == ["ada.auditor@example.nhs.uk", "governance@example.nhs.uk"]
    subject, body, html = rendered(mail)
    assert subject == f"peerwatch audit anchor: {count} events up to event {last.id} (2026-12-18)"
    assert last.hash in body and last.hash in html and str(path.resolve()) in body
    # the next anchor is another file; the first is never touched
    before = path.read_bytes()
    second = _anchor(db, folder)
    assert second != path and path.read_bytes() == before and len(list(folder.glob("*.json"))) == 2


def test_an_anchor_never_overwrites_a_file(
    db: Engine, session: Session, raise_risk: Callable[..., Risk], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    story(session, raise_risk)

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: object = None) -> Frozen:  # type: ignore[override]
            return cls(2026, 12, 18, 12, tzinfo=UTC)

    monkeypatch.setattr(anchors, "datetime", Frozen)
    path = _anchor(db, tmp_path)
    before = path.read_bytes()
    with Session(db) as s, pytest.raises(InvalidInput, match="exists: an anchor is never overwritten"):
        anchors.anchor(s, DAY, tmp_path)
    assert path.read_bytes() == before


def test_with_nobody_to_tell_the_email_is_an_incident_not_a_silent_loss(
    db: Engine, session: Session, raise_risk: Callable[..., Risk], tmp_path: Path
) -> None:
    story(session, raise_risk)
    _anchor(db, tmp_path)
    with Session(db) as s:
        [mail] = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "audit_anchor")).all()
    assert (mail.status, mail.category, mail.to) == ("undeliverable", "incident", [])
    assert "no active account holds the auditor role" in (mail.last_error or "")


def test_verify_anchors_proves_them_in_the_chain_and_catches_a_chain_cut_short(
    db: Engine, session: Session, raise_risk: Callable[..., Risk], tmp_path: Path
) -> None:
    story(session, raise_risk)
    first = _anchor(db, tmp_path)
    gc = raise_risk("GC")
    second = _anchor(db, tmp_path)
    with Session(db) as s:
        assert anchors.verify_anchors(s, tmp_path) == (2, [])
    anchored = json.loads(first.read_text())
    # the insider deletes the events after the first anchor and points the head at what is left:
    # the chain itself verifies again (no key is needed to shorten it); the second anchor does not
    insider(
        db,
        ("DELETE FROM auditevent WHERE id > :i", {"i": anchored["event_id"]}),
        ("UPDATE audit_head SET hash = :h WHERE id = 1", {"h": anchored["hash"]}),
    )
    with Session(db) as s:
        assert anchors.verify_anchors(s, tmp_path)[1] == [
            f"anchor {second.name}: audit event {json.loads(second.read_text())['event_id']} "
            "is no longer in the chain: the chain was cut short"
        ]
    proc = run(cli_env(), "audit", "verify", "--anchors", str(tmp_path))
    lines = proc.stdout.splitlines()
    assert proc.returncode == 1 and lines[0].startswith(f"problem: anchor {second.name}")
    # and the replay names the risk whose events went with them (once: not its deadline again)
    assert lines[1] == f"problem: risk {gc.id}: the row has no audit event (inserted behind the engine's back)"
    assert lines[2].startswith("2 problem(s) found; verified: ") and "2 anchors checked" in lines[2]


def test_verify_anchors_catches_a_chain_rewritten_and_re_signed_with_the_key(
    db: Engine, session: Session, raise_risk: Callable[..., Risk], tmp_path: Path
) -> None:
    story(session, raise_risk)
    path = _anchor(db, tmp_path)
    rehash(db, key=TEST_KEY, note="nothing to see")  # the insider holds the key too
    event_id = json.loads(path.read_text())["event_id"]
    with Session(db) as s:
        checked, problems = anchors.verify_anchors(s, tmp_path)
    assert checked == 1 and len(problems) == 1
    assert problems[0].startswith(f"anchor {path.name}: audit event {event_id}'s hash is now ")
    assert problems[0].endswith("the chain was rewritten after the anchor")
    assert ok(run(cli_env(), "audit", "verify")).startswith("intact: ")  # the chain alone verifies: signed anew
    proc = run(cli_env(), "audit", "verify", "--anchors", str(tmp_path))
    assert proc.returncode == 1 and "the chain was rewritten after the anchor" in proc.stdout


def test_an_unreadable_or_foreign_anchor_is_a_problem_not_skipped(
    db: Engine, session: Session, raise_risk: Callable[..., Risk], tmp_path: Path
) -> None:
    story(session, raise_risk)
    path = _anchor(db, tmp_path)
    foreign = json.loads(path.read_text()) | {"installation_id": "00000000-0000-4000-8000-000000000000"}
    (tmp_path / "foreign.json").write_text(json.dumps(foreign))
    (tmp_path / "junk.json").write_text("{not json")
    with Session(db) as s:
        checked, problems = anchors.verify_anchors(s, tmp_path)
    assert checked == 2 and len(problems) == 2
    assert problems[0].startswith("anchor junk.json cannot be read")
    assert problems[1].startswith("anchor foreign.json is of installation 00000000-")


def test_a_broken_chain_is_never_anchored(
    db: Engine, session: Session, raise_risk: Callable[..., Risk], tmp_path: Path
) -> None:
    story(session, raise_risk)
    first = _anchor(db, tmp_path)
    last = _last(db)
    insider(db, ("UPDATE auditevent SET note = 'edited' WHERE id = :i", {"i": last.id}))
    with Session(db) as s, pytest.raises(anchors.AnchorRefused, match=f"does not verify: audit event {last.id} "):
        anchors.anchor(s, DAY, tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists() or not list((tmp_path / "elsewhere").iterdir())
    # a chain that no longer holds the latest anchor is refused too, naming it
    rehash(db, key=TEST_KEY)
    with Session(db) as s, pytest.raises(anchors.AnchorRefused, match=f"anchor {first.name}: .* rewritten"):
        anchors.anchor(s, DAY, tmp_path)
    with Session(db) as s:
        assert len(s.exec(select(OutboxMessage).where(OutboxMessage.kind == "audit_anchor")).all()) == 1  # the first
    assert [p.name for p in tmp_path.glob("*.json")] == [first.name]


def test_the_daily_flow_anchors_once_a_day(
    db: Engine, session: Session, raise_risk: Callable[..., Risk], tmp_path: Path
) -> None:
    story(session, raise_risk)
    with Session(db) as s:
        made = anchors.anchor_once_a_day(s, DAY, tmp_path)
        again = anchors.anchor_once_a_day(s, DAY, tmp_path)
        next_day = anchors.anchor_once_a_day(s, FixedClock(date(2026, 12, 19)), tmp_path)
        s.commit()
    assert made is not None and again is None and next_day is not None and next_day != made


def test_anchor_from_the_command_line_writes_to_the_directory_given(
    db: Engine, session: Session, raise_risk: Callable[..., Risk], tmp_path: Path
) -> None:
    story(session, raise_risk)
    support_accounts.me(db)
    folder = tmp_path / "worm"
    out = json.loads(ok(run(cli_env(), "--json", "audit", "anchor", "--dir", str(folder))))
    assert Path(out["anchor"]).parent == folder and Path(out["anchor"]).is_file()
    out = ok(run(cli_env(PEERWATCH_ANCHOR_DIR=str(folder)), "audit", "verify", "--anchors", str(folder)))
    assert out.startswith("intact: ") and "1 anchors checked" in out
