"""docs/hazard-log.md says every test it names exists: hold it to that."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAMED = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def test_every_test_the_hazard_log_names_exists() -> None:
    text = (ROOT / "docs" / "hazard-log.md").read_text()
    named = set(NAMED.findall(text))
    assert len(named) > 20, "the hazard log names its evidence as `tests/FILE::NAME`"
    missing = []
    for path, name in sorted(named):
        source = ROOT / path
        tree = ast.parse(source.read_text()) if source.exists() else ast.Module(body=[], type_ignores=[])
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
        defined |= {
            t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
        }  # TestX = Machine.TestCase
        if name not in defined:
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/hazard-log.md names tests that do not exist: {missing}"
