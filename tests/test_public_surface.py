"""states/__init__.py names the public surface (issue 13) and imports nothing: ``import states``
stays cheap for the CLI's start-up."""

import importlib
import subprocess
import sys
from pathlib import Path

import states

ROOT = Path(__file__).resolve().parent.parent


def test_every_name_in_all_is_a_module_of_states() -> None:
    for name in states.__all__:
        module = importlib.import_module(f"states.{name}")
        assert module.__name__ == f"states.{name}"


def test_every_layer_and_leaf_module_is_named() -> None:
    on_disk = {p.stem for p in (ROOT / "states").glob("*.py") if not p.stem.startswith("_")}
    on_disk |= {p.parent.name for p in (ROOT / "states").glob("*/__init__.py")}
    assert set(states.__all__) == on_disk


def test_import_states_loads_no_database_or_rule_module() -> None:
    code = "import sys, states; print(' '.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout.split()
    )
    assert not {"sqlalchemy", "sqlmodel", "transitions", "states.engine", "states.services"} & loaded
