"""The keyed audit chain against an insider with the database but not the key (issue 14 item 6).

The probe: after ``audit_head`` was reset and the chain re-hashed with the project's own hash
function, ``audit verify`` said "intact". Now every event's hash is an HMAC under a key kept
outside the database: a chain re-hashed with plain SHA-256 (keeping the key ids, or blanking
them, or blanking what only keyed events record) is named broken; a wrong key is named; no key
means "cannot verify", never "intact"; a key file others can read is refused; a rotated key
still verifies what the old one signed."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import AuditEvent, Risk
from states import engine
from states.engine import keys
from states.engine.audit import check_chain
from tests import support_accounts
from tests.support_audit import TEST_KEY, insider, rehash, story
from tests.support_cli import cli_env, ok, run


def _verify_cli(**env: str) -> tuple[int, str, str]:
    proc = run(cli_env(**env), "audit", "verify")
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


def _first(db: Engine) -> int:
    with Session(db) as s:
        return s.exec(select(AuditEvent.id).order_by(AuditEvent.id)).first()  # type: ignore[arg-type,return-value]


# ---------------------------------------------------------------- the probe


def test_the_probe_a_chain_re_hashed_with_plain_sha256_is_broken_and_named(
    db: Engine, session: Session, raise_risk: Callable[..., Risk]
) -> None:
    story(session, raise_risk)
    first = _first(db)
    rehash(db, note="nothing happened")
    with Session(db) as s:
        report = check_chain(s)
    assert report.broken is not None and report.broken.id == first
    assert f"audit event {first}" in (report.problem or "") and "changed after it was written" in (report.problem or "")
    code, out, _ = _verify_cli()
    assert code == 1 and "intact:" not in out
    assert f"problem: audit chain broken after 0 good event(s): audit event {first} " in " ".join(out.split())


def test_the_probe_re_hashed_with_the_key_ids_blanked_is_named_too(
    db: Engine, session: Session, raise_risk: Callable[..., Risk]
) -> None:
    """Blanking key_id makes the events look like the unkeyed ones from before revision 0011,
    but they still record who and when (user_id, recorded_at), as only keyed events do."""
    story(session, raise_risk)
    first = _first(db)
    rehash(db, unkey=True, note="nothing happened")
    with Session(db) as s:
        report = check_chain(s)
    assert report.broken is not None and report.broken.id == first
    assert "unkeyed but records who and when" in (report.problem or "")


def test_the_probe_re_hashed_as_if_before_keying_is_not_intact(
    db: Engine, session: Session, raise_risk: Callable[..., Risk]
) -> None:
    """Blank everything only keyed events hold and the chain looks like an old, unkeyed one:
    no keyed event seals it, so it is not called intact (exit 1), whatever it says."""
    story(session, raise_risk)
    rehash(db, unkey=True, forget_who=True, note="nothing happened")
    with Session(db) as s:
        report = check_chain(s)
    assert report.broken is None and report.unkeyed == report.checked > 0
    assert "no keyed event seals them" in (report.problem or "")
    code, out, _ = _verify_cli()
    assert code == 1 and "intact:" not in out and "no keyed event seals them" in " ".join(out.split())


def test_an_unkeyed_event_after_keyed_ones_is_forged(
    db: Engine, session: Session, raise_risk: Callable[..., Risk]
) -> None:
    story(session, raise_risk)
    with Session(db) as s:
        last = s.exec(select(AuditEvent).order_by(AuditEvent.id.desc())).first()  # type: ignore[union-attr]
        assert last is not None
    insider(
        db,
        (
            'INSERT INTO auditevent (kind, item_id, at, actor, role, "trigger", from_state, to_state, version, data, '
            "prev_hash, hash) SELECT kind, item_id, at, 'Mr Tom Hughes', 'regional-lead', 'withdraw', to_state, "
            "'withdrawn', version + 1, data, hash, 'x' FROM auditevent WHERE id = :i",
            {"i": last.id},
        ),
    )
    with Session(db) as s:
        report = check_chain(s)
    assert report.broken is not None and report.broken.id > last.id  # type: ignore[operator]
    assert "unkeyed after keyed events" in (report.problem or "")


# ---------------------------------------------------------------- the key


def test_a_wrong_key_breaks_the_chain_at_its_first_keyed_event(
    db: Engine, session: Session, raise_risk: Callable[..., Risk], monkeypatch: pytest.MonkeyPatch
) -> None:
    story(session, raise_risk)
    first = _first(db)
    monkeypatch.setenv("PEERWATCH_AUDIT_KEY", "test-1:" + "a7" * 32)
    with Session(db) as s:
        report = check_chain(s)
    assert report.broken is not None and report.broken.id == first
    assert "or key 'test-1' is not the one it was signed with" in (report.problem or "")
    monkeypatch.setenv("PEERWATCH_AUDIT_KEY", "other:" + "a7" * 32)
    with Session(db) as s:
        assert "signed by key 'test-1', which is not among the keys" in (check_chain(s).problem or "")


def test_without_the_key_it_cannot_verify_and_never_says_intact(
    db: Engine, session: Session, raise_risk: Callable[..., Risk], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    story(session, raise_risk)
    monkeypatch.delenv("PEERWATCH_AUDIT_KEY")
    monkeypatch.setenv("PEERWATCH_AUDIT_KEY_FILE", str(tmp_path / "no-such.key"))
    with Session(db) as s, pytest.raises(keys.NoAuditKey, match="cannot verify the audit chain"):
        check_chain(s)
    code, out, err = _verify_cli()
    assert code == 2 and "intact" not in out + err
    assert err.strip().startswith("error: cannot verify the audit chain: no audit key is configured")


def test_a_key_file_others_can_read_is_refused_for_signing_and_verifying(
    db: Engine, session: Session, raise_risk: Callable[..., Risk], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    story(session, raise_risk)
    path = tmp_path / "audit.key"
    path.write_text(f"test-1 {TEST_KEY.hex()}\n")
    path.chmod(0o640)
    monkeypatch.delenv("PEERWATCH_AUDIT_KEY")
    monkeypatch.setenv("PEERWATCH_AUDIT_KEY_FILE", str(path))
    with Session(db) as s, pytest.raises(keys.NoAuditKey, match=r"can be read by others \(mode 640\): chmod 600 it"):
        check_chain(s)
    with pytest.raises(keys.NoAuditKey, match="can be read by others"):
        raise_risk("SC")  # nothing is signed with it either
    code, out, err = _verify_cli()
    assert code == 2 and "intact" not in out and "chmod 600 it" in err
    path.chmod(0o600)
    with Session(db) as s:
        assert check_chain(s).problem is None  # the same key, kept private: verifies


def test_a_rotated_key_signs_from_then_on_and_the_old_one_still_verifies(
    db: Engine, session: Session, raise_risk: Callable[..., Risk], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keys" / "audit.key"
    monkeypatch.delenv("PEERWATCH_AUDIT_KEY")
    monkeypatch.setenv("PEERWATCH_AUDIT_KEY_FILE", str(path))
    assert keys.create_key_file() == path and (path.stat().st_mode & 0o777) == 0o600
    first_id = keys.load().current  # type: ignore[union-attr]
    story(session, raise_risk)
    new_id = keys.rotate()
    assert new_id != first_id and keys.load().current == new_id  # type: ignore[union-attr]
    assert (path.stat().st_mode & 0o777) == 0o600
    raise_risk("GC")
    with Session(db) as s:
        signers = [e.key_id for e in s.exec(select(AuditEvent).order_by(AuditEvent.id))]  # type: ignore[arg-type]
        report = check_chain(s)
    assert signers[0] == first_id and signers[-1] == new_id and (report.checked, report.problem) == (len(signers), None)
    # the old key dropped from the file: what it signed can no longer be verified, and that is said
    path.write_text("\n".join(line for line in path.read_text().splitlines() if not line.startswith(first_id)) + "\n")
    with Session(db) as s:
        report = check_chain(s)
    assert report.broken is not None and f"signed by key {first_id!r}, which is not among the keys" in (
        report.problem or ""
    )


def test_rotate_key_from_the_command_line_is_an_administrators_audited_act(
    db: Engine, session: Session, raise_risk: Callable[..., Risk], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.key"
    monkeypatch.delenv("PEERWATCH_AUDIT_KEY")
    monkeypatch.setenv("PEERWATCH_AUDIT_KEY_FILE", str(path))
    keys.create_key_file()
    before = path.read_text()
    support_accounts.me(db, roles=("operator",), name="Ola Operator")
    proc = run(cli_env(), "audit", "rotate-key")
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "administrator" in proc.stderr
    assert path.read_text() == before  # refused: the key file unchanged
    support_accounts.me(db, roles=("administrator",), name="Ola Operator")
    out = ok(run(cli_env(), "--json", "audit", "rotate-key"))
    assert '"key_id"' in out and path.read_text().startswith(before) and len(path.read_text()) > len(before)
    with Session(db) as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.kind == "audit_key")).one()
        assert (event.trigger, event.actor, event.role, event.key_id) == (
            "rotate",
            "Ola Operator",
            "administrator",
            keys.load().current,  # type: ignore[union-attr]
        )
        assert check_chain(s).problem is None
    assert "intact: " in ok(run(cli_env(), "audit", "verify"))


def test_rotating_a_key_file_edited_by_hand_keeps_every_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.key"
    path.write_text(f"# ours\nold-1 {TEST_KEY.hex()}")  # no newline at the end
    path.chmod(0o600)
    monkeypatch.delenv("PEERWATCH_AUDIT_KEY")
    monkeypatch.setenv("PEERWATCH_AUDIT_KEY_FILE", str(path))
    new = keys.rotate()
    assert list(keys.load().keys) == ["old-1", new]  # type: ignore[union-attr]


def test_keys_from_the_environment_are_rotated_in_the_secrets_store(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(keys.NoAuditKey, match="rotate them in your secrets store"):
        keys.rotate()
    monkeypatch.setenv("PEERWATCH_AUDIT_KEY", "test-1:abcd")
    with pytest.raises(keys.NoAuditKey, match="at least 32 bytes"):
        keys.load()


def test_verify_says_intact_with_the_counts(db: Engine, session: Session, raise_risk: Callable[..., Risk]) -> None:
    story(session, raise_risk)
    with Session(db) as s:
        n = len(s.exec(select(AuditEvent)).all())
    out = " ".join(ok(run(cli_env(), "audit", "verify")).split())
    assert f"intact: {n} events (0 unkeyed before keying), 0 anchors checked, replay of 2 items clean" in out
    assert os.environ["PEERWATCH_AUDIT_KEY"].startswith("test-1:")
    with db.connect() as conn:  # the triggers are still there: nothing here dropped them
        assert conn.execute(text("SELECT count(*) FROM auditevent")).scalar() == n
    assert engine.verify_chain(session) == (n, None, None)
