"""Who acts (actor roles) and who is written to (contact roles).

Actor roles are checked by the engine on every trigger; contact roles address letters.
"""

from __future__ import annotations

from states.errors import InvalidInput

# Roles a person (or the sweeper) acts in when firing a trigger.
NETWORK_OFFICE = "network-office"
NETWORK_MANAGER = "network-manager"
REGIONAL_LEAD = "regional-lead"
OPERATOR = "operator"
SYSTEM = "system"  # the sweeps' and dispatcher's built-in account only: never granted to a person
AUDITOR = "auditor"
ADMINISTRATOR = "administrator"  # manages accounts, grants, tokens and permissions; fires nothing clinical

ACTOR_ROLES = (NETWORK_OFFICE, NETWORK_MANAGER, REGIONAL_LEAD, OPERATOR, SYSTEM, AUDITOR)
NETWORK_ROLES = (NETWORK_OFFICE, NETWORK_MANAGER, REGIONAL_LEAD, OPERATOR, AUDITOR)
# The roles of the Trusts and commissioners (the Trust portal), taken from the contact roles.
TRUST_ROLES = (
    "chief-executive",
    "medical-director",
    "service-lead",
    "lead-doctor",
    "lead-nurse",
    "ahp-lead",
    "service-manager",
    "divisional-manager",
    "divisional-director",
    "responsible-executive",
)
# The service's own Leads and Managers: who returns its self-assessment (000 s5.1).
SERVICE_TEAM = ("service-lead", "service-manager", "lead-doctor", "lead-nurse", "ahp-lead")
COMMISSIONER_ROLES = (
    "responsible-commissioner",
    "accountable-officer",
    "asct",
    "commissioning-lead",
    "icb",
    "lms-lead",
)
GRANTABLE_ROLES = (*NETWORK_ROLES, ADMINISTRATOR, *TRUST_ROLES, *COMMISSIONER_ROLES)
NETWORK_LEADS = frozenset({NETWORK_MANAGER, REGIONAL_LEAD})
STAFF = frozenset({NETWORK_OFFICE, NETWORK_MANAGER, REGIONAL_LEAD, OPERATOR})
SYSTEM_ACTOR = "peerwatch-sweeper"


def check_grantable(role: str) -> str:
    if role not in GRANTABLE_ROLES:
        raise InvalidInput(f"unknown role {role!r}: use one of {', '.join(GRANTABLE_ROLES)}")
    return role


PORTAL_ROLES = frozenset({*TRUST_ROLES, *COMMISSIONER_ROLES})
NETWORK_SIDE = frozenset({*NETWORK_ROLES, ADMINISTRATOR})
# Where a portal role may be held: a Trust's people at their service or Trust, never across a
# network; a commissioner at the services, Trust or network it commissions.
PORTAL_SCOPES = {
    **{r: ("service", "organisation") for r in TRUST_ROLES},
    **{r: ("service", "organisation", "network") for r in COMMISSIONER_ROLES},
}


def check_side(role: str, scope: str, held: set[str] | frozenset[str]) -> None:
    """Refuse (InvalidInput) a grant of ``role`` in ``scope`` to an account holding ``held``:
    a person is on the network's side or on a Trust's (or a commissioner's), never both (who
    sends a Trust's response must not be who judges it); a Trust role is held at a service or a
    Trust, a commissioner's at what it commissions, never for the whole installation."""
    if role in PORTAL_ROLES:
        if scope not in PORTAL_SCOPES[role]:
            raise InvalidInput(
                f"{role} is held at {' or '.join(PORTAL_SCOPES[role])} level, not {scope}: nothing was changed"
            )
        if held & NETWORK_SIDE:
            raise InvalidInput(
                f"the account holds {', '.join(sorted(held & NETWORK_SIDE))}: a network account may not also hold "
                f"the Trust or commissioner role {role} (who answers for a Trust must not judge the answer); "
                "the person needs an account of their own for it; nothing was changed"
            )
    elif role in NETWORK_SIDE and held & PORTAL_ROLES:
        raise InvalidInput(
            f"the account holds {', '.join(sorted(held & PORTAL_ROLES))}: a Trust or commissioner account may not "
            f"also hold {role}; nothing was changed"
        )


def check_actor_role(role: str) -> str:
    if role not in ACTOR_ROLES:
        raise InvalidInput(f"unknown role {role!r}: use one of {', '.join(ACTOR_ROLES)}")
    return role


# Roles people hold in the contacts database (DOMAIN.md "Organisations and people").
CONTACT_ROLES: dict[str, str] = {
    "chief-executive": "Chief Executive",
    "medical-director": "Medical Director",
    "service-lead": "Service Lead",
    "lead-doctor": "Lead Doctor",
    "lead-nurse": "Lead Nurse",
    "ahp-lead": "AHP/HCS Lead",
    "service-manager": "Service Manager",
    "divisional-manager": "Divisional Manager",
    "divisional-director": "Divisional Director",
    "responsible-executive": "Executive responsible for the service",
    "network-manager": "Network Manager",
    "regional-lead": "Regional Network Lead",
    "network-office": "Network office",
    "responsible-commissioner": "Responsible Commissioner",
    "accountable-officer": "Accountable Officer, commissioning body",
    "asct": "Acute Specialised Commissioning Team",
    "commissioning-lead": "Commissioning Lead",
    "cqc": "Care Quality Commission",
    "icb": "Integrated Care Board",
    "regional-quality-lead": "Regional Quality Lead",
    "tpd": "Training Programme Director",
    "ra": "Regional Advisor",
    "national-medical-lead": "National Medical Lead",
    # Perinatal quality surveillance (seed 004)
    "lms-lead": "Local Maternity System lead",
    "regional-chief-midwife": "Regional Chief Midwife",
    "regional-lead-obstetrician": "Regional Lead Obstetrician",
    "regional-chief-nurse": "Regional Chief Nurse",
    "msscg": "Maternity Safety Surveillance and Concerns Group",
    "jsog": "Joint Strategic Oversight Group",
}


def check_contact_role(role: str) -> str:
    if role not in CONTACT_ROLES:
        raise InvalidInput(f"unknown contact role {role!r}: use one of {', '.join(CONTACT_ROLES)}")
    return role
