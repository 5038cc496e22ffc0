"""The standards library (seed 000 s5.1, Appendix 2): standard sets read from a JSON or YAML
file, checked whole, and loaded, each superseding the newest set of its kind. Each load is an
audited change (``states.engine.record_change``, kind ``standard_set``).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from sqlmodel import Session, select

from models.selfassessment import Standard, StandardSet
from states import engine
from states.clock import Clock, parse_date
from states.errors import InvalidInput, MissingActor, NotFound, PeerwatchError, PermissionDenied
from states.machines.standards import head_set
from states.principal import Principal
from states.roles import STAFF


def read_library(path: str | Path) -> list[dict[str, Any]]:
    """The standard sets in a JSON or YAML file: one set, a list of sets, or ``{sets: [...]}``."""
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"standards file {str(p)!r} not found")
    text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
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


def load_standard_sets(
    session: Session, docs: list[dict[str, Any]], *, principal: Principal, clock: Clock
) -> list[dict[str, Any]]:
    """Load each set, superseding the newest set of its kind; a set not newer than it is refused.
    The standards library is the whole installation's: loading needs a network staff role held
    for the installation (``STAFF``). Each load (and each set it supersedes) is an audited
    change with the account and its role (``states.engine.record_change``, kind
    ``standard_set``); the caller commits."""
    if not isinstance(principal, Principal):
        raise MissingActor("nobody is identified as acting to load standard sets: sign in; nothing loaded")
    if not STAFF & set(principal.roles_at(None)) and STAFF & set(principal.roles()):
        raise PermissionDenied(
            f"{principal.name} holds {', '.join(r for r in principal.roles() if r in STAFF)} only for a network, Trust "
            "or service: the standards library is the whole installation's, so loading a set needs a staff role "
            "granted for the installation; nothing loaded"
        )
    role = principal.require_any(STAFF, "load standard sets", None)  # None: grants for the whole installation only
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
            principal=principal,
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
                principal=principal,
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
