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
