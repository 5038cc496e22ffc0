"""Shared learning: themes of concerns and good practice across services (seed 002 s3.5, s3.7).

Users found no way to share learning across providers. This is a read-only aggregation over
the database, a few grouped queries and no writes: concerns (risks: IR, SC, GC) and good
practice (the positive developments in reports past their factual accuracy check) counted
by standard reference and by theme, across services and networks, with open vs closed and
the median and mean time to resolution in days (from ``raise`` to ``closed`` or
``withdrawn``, read from the audit trail).

No names of people appear in the output: no actors, no contacts, no reviewers, and no
free text (titles and positive texts can name people); only standard refs, themes, counts,
service names and network codes.

Local policy, not the SOP (the seeds name no themes): a theme comes from the standard ref's
prefix (``PREFIX_THEMES``), else from keywords in the title or text (``KEYWORD_THEMES``,
first match wins, whole words, case-insensitive, a trailing plural "s" allowed), else
"other". ``PEERWATCH_THEME_PREFIXES`` ("WF=workforce;IMG=imaging") and
``PEERWATCH_THEME_KEYWORDS`` ("workforce=consultant|rota|staffing;imaging=CT|imaging")
replace the defaults.
"""

from __future__ import annotations

import os
import re
import statistics
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select as select_columns  # typed for up to ten columns; sqlmodel's select for four
from sqlmodel import Session, col, func, select

from models.tables import AuditEvent, Network, Report, Risk, Service
from states.errors import InvalidInput, NotFound

# Local policy defaults (not the SOP): standard ref prefix -> theme.
PREFIX_THEMES: dict[str, str] = {
    "WF": "workforce",
    "IMG": "imaging",
    "REH": "rehabilitation",
    "GOV": "governance",
    "PROT": "protocols",
}
# Local policy defaults (not the SOP): theme -> keywords, tried in this order.
KEYWORD_THEMES: dict[str, tuple[str, ...]] = {
    "workforce": ("consultant", "rota", "staffing"),
    "imaging": ("CT", "imaging"),
    "rehabilitation": ("rehabilitation",),
    "governance": ("audit",),
    "protocols": ("protocol", "guideline"),
}
OTHER = "other"
NO_STANDARD = "(none)"
RESOLVED = ("closed", "withdrawn")  # the risk machine's terminal states
# Good practice is shared once the report has passed its factual accuracy check.
SHAREABLE_REPORT_STATES = ("approved", "distributed", "published", "amending")
# A positive may open with its standard ref: "T-1.2: ..." or "[WF-3] ...".
_REF = r"[A-Za-z]{0,6}-?\d+(?:\.\d+)*"
_REF_AT_START = re.compile(rf"^\s*(?:\[(?P<bracketed>{_REF})\]\s*[:\-\u2013]?\s*|(?P<ref>{_REF})\s*[:\-\u2013]\s+)")


@dataclass(frozen=True)
class ThemeMap:
    prefixes: dict[str, str] = field(default_factory=lambda: dict(PREFIX_THEMES))
    keywords: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(KEYWORD_THEMES))

    @classmethod
    def from_env(cls) -> ThemeMap:
        prefixes, keywords = dict(PREFIX_THEMES), dict(KEYWORD_THEMES)
        raw = os.environ.get("PEERWATCH_THEME_PREFIXES")
        if raw is not None:
            prefixes = {k.upper(): v for k, v in _pairs(raw, "PEERWATCH_THEME_PREFIXES").items()}
        raw = os.environ.get("PEERWATCH_THEME_KEYWORDS")
        if raw is not None:
            keywords = {
                k: tuple(w for w in v.split("|") if w) for k, v in _pairs(raw, "PEERWATCH_THEME_KEYWORDS").items()
            }
        return cls(prefixes, keywords)

    def patterns(self) -> list[tuple[str, re.Pattern[str]]]:
        return [
            (theme, re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")s?\b", re.IGNORECASE))
            for theme, words in self.keywords.items()
            if words
        ]

    def theme(self, standard_ref: str | None, text: str | None) -> str:
        """The theme of one item: by standard ref prefix, else keywords, else 'other'."""
        prefix = ref_prefix(standard_ref)
        if prefix and prefix in self.prefixes:
            return self.prefixes[prefix]
        for theme, pattern in self.patterns():
            if text and pattern.search(text):
                return theme
        return OTHER


def _pairs(raw: str, name: str) -> dict[str, str]:
    out = {}
    for part in filter(None, (p.strip() for p in raw.split(";"))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InvalidInput(f"{name}: {part!r} is not key=value (separate pairs with ';')")
        out[key.strip()] = value.strip()
    return out


def ref_prefix(standard_ref: str | None) -> str | None:
    """'WF-3.1' -> 'WF'; '1.2' -> None."""
    m = re.match(r"\s*([A-Za-z]+)", standard_ref or "")
    return m.group(1).upper() if m else None


def positive_ref(text: str) -> str | None:
    m = _REF_AT_START.match(text)
    return (m.group("bracketed") or m.group("ref")) if m else None


@dataclass
class _Group:
    kind: str  # concern | good_practice
    by: str  # standard | theme
    key: str
    count: int = 0
    levels: dict[str, int] = field(default_factory=lambda: {"IR": 0, "SC": 0, "GC": 0})
    open: int = 0
    closed: int = 0
    days: list[float] = field(default_factory=list)
    services: set[str] = field(default_factory=set)
    networks: set[str] = field(default_factory=set)

    def row(self) -> dict[str, Any]:
        concern = self.kind == "concern"
        return {
            "type": self.kind,
            "by": self.by,
            "key": self.key,
            "count": self.count,
            "ir": self.levels["IR"] if concern else None,
            "sc": self.levels["SC"] if concern else None,
            "gc": self.levels["GC"] if concern else None,
            "open": self.open if concern else None,
            "closed": self.closed if concern else None,
            "resolved_with_time": len(self.days) if concern else None,
            "median_days": round(statistics.median(self.days), 1) if self.days else None,
            "mean_days": round(statistics.fmean(self.days), 1) if self.days else None,
            "services": len(self.services),
            "service_names": sorted(self.services),
            "networks": sorted(self.networks),
        }


def _first_times(session: Session, where: Any) -> dict[int, datetime]:
    q = (
        select(col(AuditEvent.item_id), func.min(AuditEvent.at))
        .where(AuditEvent.kind == "risk", where)
        .group_by(col(AuditEvent.item_id))
    )
    return {item_id: at for item_id, at in session.exec(q)}


def shared_learning(session: Session, network: str | None = None, themes: ThemeMap | None = None) -> dict[str, Any]:
    """Concerns and good practice by standard and by theme, across services and networks."""
    themes = themes or ThemeMap.from_env()
    net_filter = []
    if network:
        net = session.exec(select(Network).where(Network.code == network)).first()
        if net is None:
            raise NotFound(f"network {network!r} not found (peerwatch network list)")
        net_filter = [col(Service.network_id) == net.id]

    risks = session.execute(
        select_columns(
            col(Risk.id),
            col(Risk.level),
            col(Risk.title),
            col(Risk.standard_ref),
            col(Risk.state),
            col(Service.name),
            col(Network.code),
        )
        .join(Service, col(Service.id) == col(Risk.service_id))
        .join(Network, col(Network.id) == col(Service.network_id))
        .where(col(Risk.state) != "new", *net_filter)
        .order_by(col(Risk.id))
    ).all()
    raised = _first_times(session, AuditEvent.trigger == "raise")
    resolved = _first_times(session, col(AuditEvent.to_state).in_(RESOLVED))
    reports = session.exec(
        select(col(Report.positives), col(Service.name), col(Network.code))
        .join(Service, col(Service.id) == col(Report.service_id))
        .join(Network, col(Network.id) == col(Service.network_id))
        .where(col(Report.state).in_(SHAREABLE_REPORT_STATES), *net_filter)
        .order_by(col(Report.id))
    ).all()

    groups: dict[tuple[str, str, str], _Group] = {}

    def add(kind: str, ref: str | None, theme: str, service: str, net_code: str) -> list[_Group]:
        out = []
        for by, key in (("standard", ref or NO_STANDARD), ("theme", theme)):
            g = groups.setdefault((kind, by, key), _Group(kind, by, key))
            g.count += 1
            g.services.add(service)
            g.networks.add(net_code)
            out.append(g)
        return out

    for risk_id, level, title, ref, state, service, net_code in risks:
        for g in add("concern", ref, themes.theme(ref, title), service, net_code):
            g.levels[level] = g.levels.get(level, 0) + 1
            if state in RESOLVED:
                g.closed += 1
                start, end = raised.get(risk_id), resolved.get(risk_id)
                if start is not None and end is not None:
                    g.days.append((end - start).total_seconds() / 86400)
            else:
                g.open += 1
    for positives, service, net_code in reports:
        for text in positives or []:
            ref = positive_ref(str(text))
            add("good_practice", ref, themes.theme(ref, str(text)), service, net_code)

    def ordered(by: str) -> list[dict[str, Any]]:
        rows = [g for (_, b, _), g in groups.items() if b == by]
        rows.sort(key=lambda g: (g.kind != "concern", -g.count, g.key))
        return [g.row() for g in rows]

    return {
        "network": network,
        "concerns": len(risks),
        "good_practice": sum(len(p or []) for p, _, _ in reports),
        "by_standard": ordered("standard"),
        "by_theme": ordered("theme"),
        "themes": {"prefixes": dict(themes.prefixes), "keywords": {k: list(v) for k, v in themes.keywords.items()}},
    }


def table_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat list for a table or an artifact: theme groups first, then standards."""
    out = []
    for row in [*result["by_theme"], *result["by_standard"]]:
        out.append(
            {
                "by": row["by"],
                "key": row["key"],
                "type": row["type"],
                "count": row["count"],
                "IR/SC/GC": f"{row['ir']}/{row['sc']}/{row['gc']}" if row["type"] == "concern" else "",
                "open": row["open"],
                "closed": row["closed"],
                "median_days": row["median_days"],
                "mean_days": row["mean_days"],
                "services": row["services"],
                "networks": ", ".join(row["networks"]),
            }
        )
    return out
