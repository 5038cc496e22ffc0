"""The parameters a trigger reads, and their types: one source of truth for the operator's
reference (``cli/reference.py``), the web's forms (``states/views/forms.py``) and the API.

Which parameters a trigger reads is found by reading each trigger's action in its machine module
(or its branch of the kind's ``effects``), and the module's helpers it calls, for ``ctx.params``
look-ups (``params_read``); the few read another way (an f-string key, a local alias of
``ctx.params``, the clock stop) are declared in ``EXTRA``. What each parameter is (a date, a whole
number within bounds, one of a few choices, yes/no, a line or a paragraph of text) is declared once
per name in ``TYPES``, and per kind and trigger in ``BY_TRIGGER`` where a name means different
things (``decision``, ``status``, ``text``). ``fields(kind, trigger)`` puts the two together;
a parameter read but not declared is a test failure (tests/test_views_work.py).
"""

from __future__ import annotations

import ast
import inspect
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from states.machines.spec import CLOCK_TRIGGERS, KindSpec, get_spec

# Parameters that are lists of rows (a spreadsheet's, a feedback's risks): only their own command
# passes them; a trigger that reads one is not offered as a form.
STRUCTURED = frozenset({"risks", "rows", "problems", "file", "data"})
DATE, INT, CHOICE, BOOL, TEXT, TEXTAREA = "date", "int", "choice", "bool", "text", "textarea"


@dataclass(frozen=True)
class Param:
    """One parameter of a trigger: its type and how a form asks for it."""

    name: str
    type: str  # date | int | choice | bool | text | textarea
    label: str
    required: bool = False
    choices: tuple[tuple[str, str], ...] = ()  # (value, label)
    multiple: bool = False  # a choice of several (sent comma-separated, read as a list)
    min: int | None = None
    max: int | None = None
    hint: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "label": self.label,
            "required": self.required,
            "choices": [{"value": v, "label": lab} for v, lab in self.choices],
            "multiple": self.multiple,
            "min": self.min,
            "max": self.max,
            "hint": self.hint,
        }


def _pairs(*values: str) -> tuple[tuple[str, str], ...]:
    return tuple((v, v.replace("_", " ").capitalize()) for v in values)


COMPLIANCE = (("Met", "Met"), ("Partially Met", "Partially Met"), ("Unmet", "Unmet"))
# What each name means, wherever it is read (unless BY_TRIGGER says otherwise).
TYPES: dict[str, Param] = {
    p.name: p
    for p in (
        Param("date", DATE, "Date", required=True),
        Param("decided_on", DATE, "Date it was decided", required=True),
        Param("reviewed_on", DATE, "Date of the review", hint="Leave empty for today."),
        Param("until", DATE, "New due date", hint="Give this or a number of working days, not both."),
        Param("visit_date", DATE, "Visit date"),
        Param("opens_on", DATE, "Opens on", required=True),
        Param("due_on", DATE, "Due on", required=True),
        Param("impact", INT, "Impact (1-6)", required=True, min=1, max=6),
        Param("likelihood", INT, "Likelihood (1-6)", required=True, min=1, max=6),
        Param("days", INT, "Working days to add", min=1, max=60, hint="Give this or a new due date, not both."),
        Param("reviewer_id", INT, "Reviewer id", required=True, min=1),
        Param("item_id", INT, "Inaccuracy number", required=True, min=1),
        Param("rating_id", INT, "CQC rating id", min=1),
        Param(
            "level",
            CHOICE,
            "Level",
            required=True,
            choices=(("IR", "IR: immediate risk"), ("SC", "SC: serious concern")),
        ),
        Param("mode", CHOICE, "Mode", choices=(("in_person", "In person"), ("virtual", "Virtual"))),
        Param("prep_session", CHOICE, "Preparation session", choices=_pairs("offered", "held", "declined")),
        Param("observer", BOOL, "Observer (not a panel member)"),
        Param("panel_confirmed", BOOL, "Panel confirmed"),
        Param("evidence_received", BOOL, "Evidence received"),
        Param("about_person", BOOL, "About a person rather than the conduct of their role", required=True),
        Param("after_visit", BOOL, "A change since the visit (not an inaccuracy)"),
        Param("reason", TEXT, "Reason"),
        Param("conflicts", TEXTAREA, "Conflicts declared", hint="Leave empty if none."),
        Param("ref", TEXT, "Standard reference", required=True),
        Param("descriptor", TEXT, "Standard descriptor"),
        Param("comment", TEXTAREA, "Comment"),
        Param("text", TEXTAREA, "Text", required=True),
        Param("name", TEXT, "Name", required=True),
        Param("email", TEXT, "Email address", required=True),
        Param("agreed_with", TEXT, "Agreed with", hint="Who the forum's decision was agreed with, where needed."),
        Param("decided_by", TEXT, "Decided by", required=True),
        Param("quarter", TEXT, "Quarter", required=True),
        Param("deadline", TEXT, "Deadline", hint="Leave empty for every open deadline."),
        Param("provider_action", TEXTAREA, "Provider action (option 2)"),
        Param("commissioner_action", TEXTAREA, "Commissioner action (option 2)"),
        Param("withdraw", TEXT, "Risks withdrawn", hint="Risk ids, comma-separated."),
        Param("regrade", TEXT, "Risks re-graded", hint="id:level pairs, comma-separated, e.g. 12:SC."),
        Param("count", INT, "Count", min=0),
        Param("filename", TEXT, "File name"),
    )
}
# Where a name means something else for one trigger.
BY_TRIGGER: dict[tuple[str, str], dict[str, Param]] = {
    ("report", "add_standard"): {"status": Param("status", CHOICE, "Status", required=True, choices=COMPLIANCE)},
    ("report", "add_positive"): {"text": Param("text", TEXTAREA, "Positive finding", required=True)},
    ("report", "record_inaccuracy"): {"text": Param("text", TEXTAREA, "The inaccuracy", required=True)},
    ("report", "decide_inaccuracy"): {
        "decision": Param("decision", CHOICE, "Decision", required=True, choices=_pairs("accepted", "rejected"))
    },
    ("selfassessment", "validate_item"): {
        "status": Param("status", CHOICE, "Status", required=True, choices=COMPLIANCE)
    },
    ("appeal", "decide"): {
        "outcome": Param(
            "outcome", CHOICE, "Outcome", required=True, choices=_pairs("upheld", "partly_upheld", "not_upheld")
        )
    },
    ("mssp", "decide_entry"): {
        "decision": Param(
            "decision",
            CHOICE,
            "The MSSCG's decision",
            required=True,
            choices=(("enter", "Enter the programme"), ("not_enter", "Not enter the programme")),
        )
    },
    ("mssp", "decide_exit"): {
        "decision": Param(
            "decision",
            CHOICE,
            "The MSSCG's decision",
            required=True,
            choices=(("exit", "Exit the programme"), ("remain", "Remain in the programme")),
        )
    },
    ("mssp", "enter"): {
        "criteria": Param(
            "criteria",
            CHOICE,
            "Entry criteria",
            multiple=True,
            choices=(
                ("overall_inadequate", "Overall Inadequate"),
                ("ri_inadequate_safe_or_well_led", "RI with Inadequate in Safe or Well-led"),
                ("ri_inadequate_third_domain", "RI with Inadequate in a third domain"),
                ("warning_notice", "CQC warning notice"),
                ("dropped_safe", "Safe dropped to RI or lower"),
                ("dropped_well_led", "Well-led dropped to RI or lower"),
                ("review_request", "DHSC or NHS England request for a review"),
                ("hsib_concern", "Concerns identified by HSIB"),
            ),
        )
    },
    ("perinatal", "record_forum_decision"): {
        "forum": Param(
            "forum",
            CHOICE,
            "Level whose forum decided",
            required=True,
            choices=(("lms_ics", "LMS / ICS"), ("regional", "Regional"), ("national", "National")),
        ),
        "decision": Param("decision", TEXTAREA, "What the forum decided", required=True),
    },
    ("surveillance", "propose_options"): {
        "options": Param(
            "options",
            CHOICE,
            "Options",
            required=True,
            multiple=True,
            choices=(
                ("routine", "Option 1: routine surveillance"),
                ("enhanced", "Option 2: enhanced surveillance"),
                ("peer_review", "Option 3: peer review"),
            ),
        )
    },
    ("visit", "propose"): {"reason": Param("reason", TEXT, "Why the visit is proposed")},
    ("visit", "postpone"): {"date": Param("date", DATE, "New visit date", required=True)},
}
# Parameters read in a way the reading below does not see (an f-string key, an alias of
# ctx.params, the clock stop in states/engine/deadlines.py), by trigger.
EXTRA: dict[tuple[str, str], tuple[str, ...]] = {
    ("surveillance", "propose_options"): ("provider_action", "commissioner_action"),
    ("phase", "set_quarter"): ("quarter", "opens_on", "due_on"),
}
CLOCK_PARAMS: dict[str, tuple[str, ...]] = {
    "pause_clock": (),
    "resume_clock": (),
    "extend_deadline": ("days", "until", "deadline"),
}


def names(kind: str, trigger: str) -> tuple[str, ...]:
    """Every parameter ``trigger`` reads on ``kind``, in the order its action reads them."""
    if trigger in CLOCK_TRIGGERS:
        return CLOCK_PARAMS[trigger]
    return tuple(dict.fromkeys((*params_read(kind).get(trigger, ()), *EXTRA.get((kind, trigger), ()))))


def declared(kind: str, trigger: str, name: str) -> Param | None:
    """The declared type of one parameter, or None if nobody declared it."""
    return BY_TRIGGER.get((kind, trigger), {}).get(name) or TYPES.get(name)


def fields(kind: str, trigger: str) -> list[Param]:
    """The typed parameters of ``trigger`` on ``kind`` (a structured one raises: only its own command passes it)."""
    out = []
    for n in names(kind, trigger):
        if n in STRUCTURED:
            raise ValueError(f"{kind} {trigger}: {n} is a list only its own command passes")
        p = declared(kind, trigger, n)
        out.append(p if p is not None else Param(n, TEXT, n.replace("_", " ").capitalize()))
    if kind == "risk" and trigger == "rescore":  # both or neither: the machine says which
        out = [replace(p, required=True) for p in out]
    return out


def structured(kind: str, trigger: str) -> bool:
    """Does ``trigger`` read a list that only its own command can pass (so no form offers it)?"""
    return any(n in STRUCTURED for n in names(kind, trigger))


# ------------------------------------------------------------------ reading the machine modules


def _module_tree(spec: KindSpec) -> tuple[Any, dict[str, ast.FunctionDef]]:
    first = spec.effects or next(iter(spec.actions.values()))
    module = sys.modules[first.__module__]
    tree = ast.parse(inspect.getsource(module))
    return module, {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _triggers_of(test: ast.expr, module: Any) -> set[str]:
    """The triggers an ``if t == "x"`` / ``if t in ("x", "y")`` / ``if t in NAMES`` branch is for."""
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        right = test.comparators[0]
        if isinstance(test.ops[0], ast.Eq) and isinstance(right, ast.Constant):
            return {str(right.value)}
        if isinstance(test.ops[0], ast.In):
            if isinstance(right, ast.Tuple | ast.List | ast.Set):
                return {str(e.value) for e in right.elts if isinstance(e, ast.Constant)}
            if isinstance(right, ast.Name):
                return {str(v) for v in getattr(module, right.id, ())}
    return set()


def _branches(func: ast.FunctionDef, module: Any) -> Iterator[tuple[set[str], list[ast.stmt]]]:
    """The effects function's if/elif chain on the trigger: (triggers, body) per branch."""
    for node in func.body:
        while isinstance(node, ast.If):
            yield _triggers_of(node.test, module), node.body
            node = node.orelse[0] if len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If) else None  # type: ignore[assignment]


def _is_params(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "params"


def _key(node: ast.AST) -> ast.expr | None:
    """The key of a ``ctx.params.get(k)``, ``ctx.params[k]`` or ``k in ctx.params``, if this is one."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and _is_params(node.func.value)
        and node.args
    ):
        return node.args[0]
    if isinstance(node, ast.Subscript) and _is_params(node.value):
        return node.slice
    if (
        isinstance(node, ast.Compare)
        and len(node.ops) == 1
        and isinstance(node.ops[0], ast.In)
        and _is_params(node.comparators[0])
    ):
        return node.left
    return None


def _keys(nodes: list[ast.stmt], helpers: dict[str, ast.FunctionDef], seen: set[str]) -> list[str]:
    """``ctx.params`` keys read in these statements and in the module's helpers they call."""
    keys: list[str] = []
    loops: dict[str, list[str]] = {}
    for node in (n for stmt in nodes for n in ast.walk(stmt)):
        if isinstance(node, ast.For) and isinstance(node.target, ast.Name) and isinstance(node.iter, ast.Tuple):
            loops[node.target.id] = [str(e.value) for e in node.iter.elts if isinstance(e, ast.Constant)]
        key = _key(node)
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            keys.append(key.value)
        elif isinstance(key, ast.Name):
            keys += loops.get(key.id, [])
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in helpers
            and node.func.id not in seen
        ):
            seen.add(node.func.id)
            keys += _keys(helpers[node.func.id].body, helpers, seen)
    return list(dict.fromkeys(keys))


@cache
def params_read(kind: str) -> dict[str, tuple[str, ...]]:
    """trigger -> the ``--param`` keys its action (or its branch of the kind's ``effects``) reads."""
    spec = get_spec(kind)
    if spec.effects is None and not spec.actions:
        return {}
    module, helpers = _module_tree(spec)
    out: dict[str, tuple[str, ...]] = {}
    found: list[tuple[set[str], list[ast.stmt]]] = []
    if spec.effects is not None:
        found += _branches(helpers[spec.effects.__name__], module)
    for trigger, action in spec.actions.items():
        func = helpers.get(getattr(action, "__name__", ""))
        if func is not None:
            found.append(({trigger}, func.body))
    for triggers, body in found:
        keys = tuple(_keys(body, helpers, set()))
        for t in triggers:
            out[t] = tuple(dict.fromkeys(out.get(t, ()) + keys))
    return out
