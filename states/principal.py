"""Who is acting: a ``Principal`` is an authenticated account with the grants in force.

Every entry point makes one (the CLI by peer authentication, the Prefect ``fire`` flow from a
personal access token, the web application from its session) and hands it to the use cases;
the engine asks it which of its roles may fire a trigger *in the item's scope*. A grant's
scope is the whole installation, a network, an organisation (Trust) or a service. The
built-in ``system`` principal (the sweeps, the dispatcher) is made only in
``states/engine/system.py``; no account, option, token or parameter maps to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from states.errors import InvalidInput, PermissionDenied
from states.roles import ACTOR_ROLES, ADMINISTRATOR

INSTALLATION = "installation"
NETWORK = "network"
ORGANISATION = "organisation"
SERVICE = "service"
SCOPES = (INSTALLATION, NETWORK, ORGANISATION, SERVICE)


@dataclass(frozen=True)
class Grant:
    """A role held in a scope (``scope_id`` None for the whole installation)."""

    role: str
    scope: str = INSTALLATION
    scope_id: int | None = None

    def covers(self, where: Mapping[str, int | None] | None) -> bool:
        """Does this grant reach an item at ``where`` (its service, organisation and network ids)?"""
        if self.scope == INSTALLATION:
            return True
        if where is None:
            return False
        return where.get(f"{self.scope}_id") == self.scope_id

    def label(self) -> str:
        return self.role if self.scope == INSTALLATION else f"{self.role} ({self.scope} {self.scope_id})"


@dataclass(frozen=True)
class Principal:
    """An authenticated account: its id, its display name now, and its grants in force.

    ``prefer`` is the role the person asked to act in (``--role``) when more than one fits;
    ``via`` says how it was authenticated (cli, token, web, training, system)."""

    user_id: int
    name: str
    grants: tuple[Grant, ...] = ()
    via: str = "cli"
    prefer: str | None = None
    is_system: bool = field(default=False)

    def roles(self) -> list[str]:
        """Every role held, anywhere."""
        return list(dict.fromkeys(g.role for g in self.grants))

    def roles_at(self, where: Mapping[str, int | None] | None) -> list[str]:
        """The roles this principal holds at an item's scope, in a fixed order."""
        return list(dict.fromkeys(g.role for g in self.grants if g.covers(where)))

    def holds(self, role: str, where: Mapping[str, int | None] | None = None) -> bool:
        return role in (self.roles() if where is None else self.roles_at(where))

    def acting_as(self, role: str | None) -> Principal:
        """The same principal asking to act in ``role`` (one of its own), or unchanged for None."""
        if role is None or role == "":
            return self
        if role not in self.roles():
            held = ", ".join(self.roles()) or "no role"
            raise PermissionDenied(f"{self.name} does not hold the role {role!r} (holds: {held})")
        return Principal(self.user_id, self.name, self.grants, self.via, role, self.is_system)

    def choose(
        self,
        allowed: Iterable[str],
        where: Mapping[str, int | None] | Callable[[], Mapping[str, int | None]] | None,
        what: str,
    ) -> str:
        """The role to act in for ``what``: the one preferred if it fits, else the first that
        fits in a fixed order; refused naming the roles that would do.

        ``where`` may be a function giving the item's scope: it is called only when no grant
        for the whole installation already fits (a batch's items then cost no lookup)."""
        allowed = set(allowed)
        wide = [g.role for g in self.grants if g.scope == INSTALLATION and g.role in allowed]
        if self.prefer is not None and self.prefer in wide:
            return self.prefer
        if self.prefer is None and wide:
            return min(wide, key=_role_order)
        place = where() if callable(where) else where
        fits = [r for r in self.roles_at(place) if r in allowed]
        if self.prefer is not None:
            if self.prefer in fits:
                return self.prefer
            if self.prefer in allowed and self.prefer in self.roles():
                raise PermissionDenied(f"{self.name} holds {self.prefer!r} but not in the scope of {what}")
            raise PermissionDenied(
                f"role {self.prefer!r} may not {what}: needs one of {', '.join(sorted(allowed)) or 'no role'}"
            )
        if fits:
            return min(fits, key=_role_order)
        held = [r for r in self.roles() if r in allowed]
        if held:
            raise PermissionDenied(
                f"{self.name} holds {', '.join(held)} but not in the scope of {what}: "
                "a grant for its network, Trust or service is needed"
            )
        raise PermissionDenied(
            f"{self.name} may not {what}: needs one of {', '.join(sorted(allowed)) or 'no role'} "
            f"(holds: {', '.join(self.roles()) or 'no role'})"
        )

    def require(self, role: str, what: str, where: Mapping[str, int | None] | None = None) -> str:
        """Refuse unless this principal holds ``role`` (in ``where``, when given)."""
        if not self.holds(role, where):
            raise PermissionDenied(f"{self.name} may not {what}: it needs the role {role!r}")
        return role

    def require_any(self, roles: Iterable[str], what: str, where: Mapping[str, int | None] | None = None) -> str:
        """The role among ``roles`` this principal acts in for ``what`` (see ``choose``)."""
        return self.choose(roles, where, what)

    @property
    def is_administrator(self) -> bool:
        return self.holds(ADMINISTRATOR)


def _role_order(role: str) -> int:
    return ACTOR_ROLES.index(role) if role in ACTOR_ROLES else len(ACTOR_ROLES)


def check_scope(scope: str, scope_id: int | None) -> None:
    if scope not in SCOPES:
        raise InvalidInput(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
    if (scope == INSTALLATION) != (scope_id is None):
        raise InvalidInput(
            "the whole installation has no id" if scope == INSTALLATION else f"a {scope} scope needs the {scope}'s id"
        )
