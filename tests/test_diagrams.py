"""Generated docs (issue 7 items 5 and 6): docs/diagrams.md, every mermaid block of docs/*.md and
docs/operator.md must be what the machines generate today, and the check must bite."""

from __future__ import annotations

import copy
import dataclasses
import re
import shutil
from pathlib import Path

import pytest
import typer
from sqlmodel import Session

from cli import diagram
from cli.diagram import COMMAND, DOCS, INDEX, POLICY_ENV, documented, plan
from cli.reference import MARKER, OPERATOR, cli_commands, manual_rows, params_read
from states.machines import spec as kind_registry
from states.machines.spec import CLOCK_TRIGGERS, get_spec, kinds
from states.permissions import matrix
from states.roles import SYSTEM

README = DOCS.parent / "README.md"


@pytest.fixture(autouse=True)
def default_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The docs show the defaults: local overrides of names are not in force (permissions live
    in the database: a fresh one has none)."""
    for name in POLICY_ENV:
        monkeypatch.delenv(name, raising=False)


def _with_changed_machine(monkeypatch: pytest.MonkeyPatch, kind: str, extra: dict[str, object]) -> None:
    """Register a copy of a kind's machine with one more transition, as if someone edited the table."""
    spec = get_spec(kind)
    changed = dataclasses.replace(spec, transitions=[*copy.deepcopy(spec.transitions), extra])
    monkeypatch.setitem(kind_registry.SPECS, kind, changed)


# --------------------------------------------------------------------------- the docs match the code


def test_docs_match_the_machines() -> None:
    _, drift = plan()
    assert not drift, "\n".join(map(str, drift))


def test_every_kind_has_its_diagram_in_the_index() -> None:
    text = (DOCS / INDEX).read_text()
    for kind in kinds():
        assert f"## {kind}\n" in text
        assert f"```mermaid\n{documented(kind)}```" in text
    assert COMMAND in text


def test_every_mermaid_block_in_the_docs_names_a_machine() -> None:
    for page in DOCS.glob("*.md"):
        for block in diagram.BLOCK.finditer(page.read_text()):
            named = diagram.MACHINE.search(block.group(1))
            assert named and named.group(1) in kinds(), f"{page.name}: a mermaid block that no machine generates"


# --------------------------------------------------------------------------- the check bites


def test_a_changed_transition_table_is_caught_everywhere_it_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_changed_machine(
        monkeypatch,
        "risk",
        {
            "trigger": "reopen",
            "source": "closed",
            "dest": "monitoring",
            "roles": ["network-manager"],
            "note_required": True,
        },
    )
    assert "closed --> monitoring: reopen" in documented("risk")
    _, drift = plan()
    found = {(d.path.name, d.what) for d in drift}
    assert ("risk.md", "the risk diagram") in found
    assert (INDEX, "the generated page") in found
    assert (OPERATOR, "the generated page") in found  # a new manual trigger
    assert all(d.path.name in ("risk.md", INDEX, OPERATOR) for d in drift)
    assert f"risk.md: the risk diagram differs from the code; run `{COMMAND}`" in map(str, drift)


def test_a_machine_only_the_sweep_fires_changes_the_diagram_but_not_the_operator_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _with_changed_machine(
        monkeypatch, "visit", {"trigger": "lapse", "source": "proposed", "dest": "cancelled", "roles": [SYSTEM]}
    )
    _, drift = plan()
    assert {(d.path.name, d.what) for d in drift} == {("visits.md", "the visit diagram"), (INDEX, "the generated page")}


def test_write_repairs_a_stale_copy_and_reports_a_hand_drawn_block(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    risk = docs / "risk.md"
    risk.write_text(risk.read_text().replace("    identified --> awaiting_response: send_formal_notification\n", "", 1))
    (docs / "extra.md").write_text("# Extra\n\n```mermaid\nstateDiagram-v2\n    a --> b\n```\n")
    (docs / OPERATOR).write_text((docs / OPERATOR).read_text().split(MARKER)[0] + MARKER + "\nstale\n")
    pages, drift = plan(docs)
    assert {(d.path.name, d.what.split(" (")[0]) for d in drift} == {
        ("risk.md", "the risk diagram"),
        (OPERATOR, "the generated page"),
        ("extra.md", "a mermaid block naming no machine"),
    }
    for path, text in pages.items():
        path.write_text(text)
    _, drift = plan(docs)
    assert [d.path.name for d in drift] == ["extra.md"]  # never overwritten: it names no machine
    assert (docs / OPERATOR).read_text().split(MARKER)[0] == (DOCS / OPERATOR).read_text().split(MARKER)[0]


def test_check_command_exit_codes(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert diagram.main(["--check"]) == 0
    _with_changed_machine(
        monkeypatch,
        "appeal",
        {"trigger": "reopen", "source": "communicated", "dest": "submitted", "roles": ["network-manager"]},
    )
    assert diagram.main(["--check"]) == 1
    assert f"appeals.md: the appeal diagram differs from the code; run `{COMMAND}`" in capsys.readouterr().err
    assert diagram.main([]) == 2


# --------------------------------------------------------------------------- the operator reference


def test_operator_page_lists_every_manual_trigger_with_the_default_roles(session: Session) -> None:
    """Against states/permissions.matrix() on a fresh database: the roles the engine enforces
    when no administrator has changed them."""
    text = (DOCS / OPERATOR).read_text()
    for entry in matrix(session):
        kind, trigger = entry["kind"], entry["trigger"]
        if trigger in CLOCK_TRIGGERS:
            assert f"fire ID {trigger} " in text
            continue
        people = [r for r in entry["roles"] if r != SYSTEM]
        rows = [r for r in manual_rows(get_spec(kind)) if r["trigger"] == trigger]
        assert sorted({role for r in rows for role in r["roles"]}) == sorted(people), (kind, trigger)
        if people:
            assert f"| `{trigger}` |" in text.split(f"\n## {kind}\n")[1].split("\n## ")[0], (kind, trigger)
            assert any(r["four_eyes"] for r in rows) == entry["four_eyes"]


def test_operator_examples_use_the_fire_commands_real_options() -> None:
    from cli.app import build

    root = typer.main.get_command(build(None))
    examples = re.findall(r"^peerwatch (\w+) fire ID (\w+) (.*?)(?:   #.*)?$", (DOCS / OPERATOR).read_text(), re.M)
    assert examples
    for kind, trigger, rest in examples:
        fire = root.commands[kind].commands["fire"]  # type: ignore[attr-defined]
        options = {o for p in fire.params for o in p.opts}
        assert set(re.findall(r"(--[a-z-]+)", rest)) <= options, (kind, trigger, rest)
        role = re.search(r"--role (\S+)", rest).group(1)  # type: ignore[union-attr]
        assert trigger in get_spec(kind).triggers() and any(
            role in t.get("roles", ()) for t in get_spec(kind).all_transitions if t["trigger"] == trigger
        )
    for command in set(cli_commands().values()):
        group, word = command.split()[1:]
        assert word in root.commands[group].commands, command  # type: ignore[attr-defined]


def test_parameters_found_include_every_one_the_readme_passes() -> None:
    used = re.findall(r"peerwatch (?:--as-of \S+ )?(\w+) fire \d+ (\w+)([^\n]*)", README.read_text())
    assert used
    for kind, trigger, rest in used:
        for key in re.findall(r"--param (\w+)=", rest):
            assert key in params_read(kind).get(trigger, ()) or trigger in CLOCK_TRIGGERS, (kind, trigger, key)
