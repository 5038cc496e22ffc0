"""peerwatch's rules: what may happen to an item of peer review, and the engine that makes it happen.

The layers, imports going one way, down (pyproject.toml [tool.importlinter] enforces it;
docs/architecture.md says what lives where)::

    cli/, flows/, web/           entry points: parse, identify, call a use case, present
      |
    states.services              use cases: one function per thing a person or a flow does,
      |                          each owning its transaction -- the API entry points call
      +--> states.engine         fire_many / fire, the sweep, deadlines, letters,
      |                          the audit chain: the only writer of states and deadlines
      +--> states.views          read models: register, overdue, themes, workload, weighting,
      |                          My work, the forms of what a person may do; nothing changes a row
      v
    states.permissions           who may fire which trigger: the machines' roles and the
      |                          administrators' table (read by the engine and the views alike)
      v
    states.machines              one module per kind: states, transition table, guards,
      |                          one action per trigger (``spec``: what a kind is, the registry)
      v
    states.principal             who is acting: an account and its role grants in their scopes
      v
    states.calendar  .clock  .roles  .policy  .programmes  .scope  .text  .uploads  .measures   leaf modules
      v
    states.errors                what an operator sees when something is refused
      v
    models                       tables, the database, migrations

``notifications`` renders and sends the outbox rows the engine writes; nothing in ``states``
imports it.

Entry points use the names in ``__all__``: ``from states.services import cycle``,
``from states.engine import fire``, ``from states.views import register``,
``from states.errors import NotFound``. A module or name starting with ``_`` is private.

Nothing is imported here: ``import states`` stays cheap (the CLI's start-up time), and each
entry point loads only the layers it uses.
"""

# The layers (services, engine, views, machines) and the leaf modules, as drawn above.
__all__ = [
    "calendar",
    "clock",
    "engine",
    "errors",
    "machines",
    "measures",
    "permissions",
    "policy",
    "principal",
    "programmes",
    "roles",
    "scope",
    "services",
    "text",
    "uploads",
    "views",
]
