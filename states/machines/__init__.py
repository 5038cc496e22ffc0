"""The machines: one module per kind of item (its states, transition table, guards and actions),
and ``spec``, what a kind is and the registry of kinds."""
