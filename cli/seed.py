"""Demo reference data: the West Midlands (annual) and Cheshire & Mersey (biennial) networks,
a handful of Trusts (fictional names), their services and the contacts database; and the
demo's cast of accounts (``seed_cast``), made by the administrator as ``peerwatch user add``
and ``user grant`` would make them."""

from __future__ import annotations

from sqlmodel import Session, col, select

from models import Contact, Network, Organisation, Reviewer, Service
from states import text as _entry_rule  # noqa: F401  (names and addresses checked on flush: states/text.py)
from states.clock import Clock
from states.principal import INSTALLATION, NETWORK, Principal
from states.roles import AUDITOR, NETWORK_MANAGER, NETWORK_OFFICE, OPERATOR, REGIONAL_LEAD
from states.services import accounts

NETWORKS = [
    ("WMTN", "West Midlands Trauma Network", "annual"),
    ("WMACC", "West Midlands Adult Critical Care Network", "annual"),
    ("CMMTN", "Cheshire & Mersey Major Trauma Network", "biennial"),
]

CENTRAL, MERSEY = "Central West Midlands trauma pathway", "Mersey trauma pathway"
# (trust, nation, [(service name, kind, network code, shared pathway)])
TRUSTS = [
    (
        "Midland Royal Hospitals NHS Trust",
        "ENG",
        [("Midland Royal Major Trauma Centre", "Major Trauma Centre", "WMTN", CENTRAL)],
    ),
    (
        "Severnside NHS Foundation Trust",
        "ENG",
        [
            ("Severnside Trauma Unit", "Trauma Unit", "WMTN", CENTRAL),
            ("Severnside Adult Critical Care", "Adult Critical Care", "WMACC", None),
        ],
    ),
    ("Black Country Valley NHS Trust", "ENG", [("Valley Burns Service", "Burns", "WMTN", None)]),
    (
        "Mersey Harbour Hospitals NHS Trust",
        "ENG",
        [("Mersey Harbour Major Trauma Centre", "Major Trauma Centre", "CMMTN", MERSEY)],
    ),
    ("Wirral Coast NHS Foundation Trust", "ENG", [("Wirral Coast Trauma Unit", "Trauma Unit", "CMMTN", MERSEY)]),
]
# The final report's distribution list (000 s5.4), held per service in the demo.
SERVICE_ROLES = [
    "lead-doctor",
    "lead-nurse",
    "ahp-lead",
    "service-manager",
    "divisional-manager",
    "divisional-director",
    "responsible-executive",
]
FIRST = [
    "Alex",
    "Bea",
    "Cal",
    "Dina",
    "Eli",
    "Faye",
    "Gus",
    "Hana",
    "Ivo",
    "Jess",
    "Kit",
    "Lena",
    "Milo",
    "Nia",
    "Omar",
    "Pia",
]
LAST = ["Ashby", "Brook", "Croft", "Dale", "Ellis", "Frost", "Grant", "Hale", "Irwin", "Judd", "Kerr", "Lowe"]
# (name, discipline, trust or None, home network, pathways, trained)
REVIEWERS = [
    ("Dr Maya Fenwick", "clinician", "Mersey Harbour Hospitals NHS Trust", "CMMTN", [MERSEY], True),
    ("Mr Idris Vaughan", "nurse", "Wirral Coast NHS Foundation Trust", "CMMTN", [MERSEY], True),
    ("Ms Carys Holt", "ahp", "Black Country Valley NHS Trust", "WMTN", [], True),
    ("Mr Rohan Mehta", "management", "Severnside NHS Foundation Trust", "WMACC", [], True),
    ("Ms Tessa Quinn", "commissioning", None, "WMTN", [], True),
    ("Mrs Joan Pryce", "service_user", None, None, [], False),
    ("Dr Felix Okoro", "clinician", "Midland Royal Hospitals NHS Trust", "WMTN", [CENTRAL], True),
    ("Ms Ada Lindqvist", "nurse", "Severnside NHS Foundation Trust", "WMTN", [CENTRAL], True),
]

TRUST_ROLES = [("chief-executive", "Chief Executive"), ("medical-director", "Medical Director")]
NETWORK_ROLES = [
    ("network-manager", "Network Manager"),
    ("regional-lead", "Regional Network Lead"),
    ("network-office", "Network Office"),
    ("accountable-officer", "Accountable Officer"),
    ("commissioning-lead", "Commissioning Lead"),
    ("asct", "Acute Specialised Commissioning Team"),
    ("cqc", "CQC Relationship Owner"),
    ("tpd", "Training Programme Director"),
    ("ra", "Regional Advisor"),
    ("icb", "ICB Quality Lead"),
    ("regional-quality-lead", "Regional Quality Lead"),
]
PEOPLE = [
    "Dr Asha Patel",
    "Mr Tom Hughes",
    "Ms Grace Okafor",
    "Dr Liam Byrne",
    "Ms Priya Shah",
    "Mr Owen Davies",
    "Dr Ruth Adeyemi",
    "Ms Hannah Clarke",
    "Dr Samuel Reid",
    "Ms Chloe Evans",
    "Mr Daniel Price",
    "Dr Imran Qureshi",
    "Ms Laura Bennett",
    "Dr Kwame Mensah",
    "Ms Sophie Turner",
    "Mr Neil Carter",
    "Dr Fiona Walsh",
    "Ms Aisha Rahman",
    "Dr Peter Lloyd",
    "Ms Emma Griffiths",
    "Mr Rajesh Kumar",
    "Dr Helen Morgan",
    "Ms Zara Ahmed",
    "Mr Gareth Jones",
    "Dr Nadia Hussain",
    "Ms Beth Roberts",
    "Mr Callum Fraser",
    "Dr Yusuf Ali",
    "Ms Joanna Wright",
    "Dr Marcus Green",
    "Ms Ellie Watson",
    "Mr Ahmed Khan",
    "Dr Catherine Moore",
    "Ms Rebecca Hall",
    "Mr Simon Baker",
    "Dr Olivia Scott",
    "Ms Megan Lewis",
    "Mr Victor Osei",
    "Dr Anna Kowalski",
    "Ms Jade Thompson",
    "Mr Harry Wood",
    "Dr Leila Haddad",
    "Ms Nina Brooks",
    "Mr Paul Edwards",
    "Dr Sarah Collins",
    "Ms Amira Begum",
    "Mr Jack Robinson",
    "Dr Ian Fletcher",
    "Ms Kate Marshall",
    "Mr Ben Harris",
    "Dr Mei Chen",
    "Ms Lucy Adams",
    "Mr Joe Palmer",
    "Dr Raj Patel",
]


def _email(name: str, domain: str) -> str:
    parts = name.replace("Dr ", "").replace("Mr ", "").replace("Ms ", "").lower().split()
    return f"{parts[0]}.{parts[-1]}@{domain}"


def seed_reference(session: Session) -> dict[str, int]:
    """Create the demo networks, Trusts, services, contacts and reviewers (idempotent by name)."""
    if session.exec(select(Network).where(Network.code == "WMTN")).first():
        return {}
    people = iter(PEOPLE)
    nets = {}
    for code, name, cycle in NETWORKS:
        n = Network(code=code, name=name, cycle=cycle)
        session.add(n)
        session.flush()
        nets[code] = n
        domain = f"{code.lower()}.network.nhs.example"
        for role, _title in NETWORK_ROLES:
            person = next(people)
            session.add(Contact(role=role, name=person, email=_email(person, domain), network_id=n.id))
    services = {}
    for trust, nation, svcs in TRUSTS:
        org = Organisation(name=trust, nation=nation)
        session.add(org)
        session.flush()
        domain = trust.split(" NHS")[0].lower().replace(" ", "-") + ".nhs.example"
        for role, _title in TRUST_ROLES:
            person = next(people)
            session.add(Contact(role=role, name=person, email=_email(person, domain), organisation_id=org.id))
        for name, kind, code, pathway in svcs:
            svc = Service(name=name, kind=kind, organisation_id=org.id, network_id=nets[code].id, pathway=pathway)  # type: ignore[arg-type]
            session.add(svc)
            session.flush()
            services[name] = svc.id
            person = next(people)
            session.add(
                Contact(
                    role="service-lead",
                    name=person,
                    email=_email(person, domain),
                    service_id=svc.id,
                    organisation_id=org.id,
                )
            )
            for role in SERVICE_ROLES:
                n = len(services) * 7 + SERVICE_ROLES.index(role)
                person = f"{FIRST[n % len(FIRST)]} {LAST[(n // len(FIRST) + n) % len(LAST)]}"
                session.add(
                    Contact(
                        role=role, name=person, email=_email(person, domain), service_id=svc.id, organisation_id=org.id
                    )
                )
    for code, net in nets.items():
        session.add(
            Contact(
                role="responsible-commissioner",
                name=f"{code} Specialised Commissioning",
                email=f"commissioning@{code.lower()}.network.nhs.example",
                network_id=net.id,
            )
        )
    orgs = {o.name: o.id for o in session.exec(select(Organisation))}
    for name, discipline, trust, home, pathways, trained in REVIEWERS:
        session.add(
            Reviewer(
                name=name,
                email=_email(name.replace("Mrs ", ""), "reviewers.nhs.example"),
                discipline=discipline,
                organisation_id=orgs.get(trust) if trust else None,
                network_id=nets[home].id if home else None,
                pathways=pathways,
                trained=trained,
            )
        )
    session.add(
        Contact(
            role="national-medical-lead", name="Prof Alan Whitfield", email="national.medicallead@england.nhs.example"
        )
    )
    session.flush()
    return {k: v for k, v in services.items() if v is not None}


# The staff who act in the demo: each network's holders of these roles (from its contacts),
# each granted the role for that network only; and two installation-wide accounts.
CAST_ROLES = (NETWORK_MANAGER, REGIONAL_LEAD, NETWORK_OFFICE)
STAFF = [
    ("Mx Robin Ashdown", "robin.ashdown@peerwatch.nhs.example", OPERATOR),
    ("Ms Ada Marsh", "ada.marsh@peerwatch.nhs.example", AUDITOR),
]


def seed_cast(session: Session, admin: Principal, clock: Clock) -> dict[str, str]:
    """The demo's accounts, made by ``admin`` (audited, as ``peerwatch user add`` and ``user
    grant`` make them): every network's Network Manager, Regional Lead and network office,
    scoped to their network, plus an operator and an auditor for the whole installation.
    Returns display name -> email (``--as`` takes either)."""
    cast: dict[str, str] = {}
    rows = session.exec(
        select(Contact, Network)
        .join(Network, col(Network.id) == Contact.network_id)
        .where(col(Contact.role).in_(CAST_ROLES), col(Contact.organisation_id).is_(None))
        .order_by(col(Network.id), col(Contact.id))
    ).all()
    for contact, net in rows:
        user = accounts.add_user(session, admin, clock, name=contact.name, email=contact.email)
        accounts.grant(session, admin, clock, user.email or "", contact.role, NETWORK, net.id)
        cast[user.name] = user.email or ""
    for name, email, role in STAFF:
        user = accounts.add_user(session, admin, clock, name=name, email=email)
        accounts.grant(session, admin, clock, email, role, INSTALLATION, None)
        cast[name] = email
    return cast
