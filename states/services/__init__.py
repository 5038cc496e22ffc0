"""Use cases: one function per thing a person or a flow does, each owning its transaction."""
