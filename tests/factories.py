"""The tests' own data: small factories for networks, Trusts, services, contacts and reviewers,
and ``reference_data``, the set most tests start from (``services`` in tests/conftest.py).

The set is the one the demo seeds today (cli/seed.py): three networks, five Trusts (fictional
names), seven services, their contacts and eight reviewers. It is written out here, not
imported from the demo, so that the demo's data can change without changing what the tests
assert. Each factory adds its row and flushes, so the row has its id; rows of a table are
added in the order listed, so ids are the same on every run.
"""

from __future__ import annotations

from sqlmodel import Session, select

from models import Contact, Network, Organisation, Reviewer, Service
from states import text as _entry_rule  # noqa: F401  (names and addresses checked on flush, as in production)
from states.principal import Grant, Principal

CENTRAL, MERSEY = "Central West Midlands trauma pathway", "Mersey trauma pathway"
MRH = "Midland Royal Major Trauma Centre"

# (code, name, cycle)
NETWORKS: list[tuple[str, str, str]] = [
    ("WMTN", "West Midlands Trauma Network", "annual"),
    ("WMACC", "West Midlands Adult Critical Care Network", "annual"),
    ("CMMTN", "Cheshire & Mersey Major Trauma Network", "biennial"),
]
# (trust, nation, [(service name, kind, network code, shared pathway)])
TRUSTS: list[tuple[str, str, list[tuple[str, str, str, str | None]]]] = [
    ("Midland Royal Hospitals NHS Trust", "ENG", [(MRH, "Major Trauma Centre", "WMTN", CENTRAL)]),
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
# Held per network, per Trust and per service (the final report's distribution list, 000 s5.4).
NETWORK_ROLES = [
    "network-manager",
    "regional-lead",
    "network-office",
    "accountable-officer",
    "commissioning-lead",
    "asct",
    "cqc",
    "tpd",
    "ra",
    "icb",
    "regional-quality-lead",
]
TRUST_ROLES = ["chief-executive", "medical-director"]
SERVICE_ROLES = [
    "lead-doctor",
    "lead-nurse",
    "ahp-lead",
    "service-manager",
    "divisional-manager",
    "divisional-director",
    "responsible-executive",
]
# (name, discipline, trust or None, home network or None, pathways, trained)
REVIEWERS: list[tuple[str, str, str | None, str | None, list[str], bool]] = [
    ("Dr Maya Fenwick", "clinician", "Mersey Harbour Hospitals NHS Trust", "CMMTN", [MERSEY], True),
    ("Mr Idris Vaughan", "nurse", "Wirral Coast NHS Foundation Trust", "CMMTN", [MERSEY], True),
    ("Ms Carys Holt", "ahp", "Black Country Valley NHS Trust", "WMTN", [], True),
    ("Mr Rohan Mehta", "management", "Severnside NHS Foundation Trust", "WMACC", [], True),
    ("Ms Tessa Quinn", "commissioning", None, "WMTN", [], True),
    ("Mrs Joan Pryce", "service_user", None, None, [], False),
    ("Dr Felix Okoro", "clinician", "Midland Royal Hospitals NHS Trust", "WMTN", [CENTRAL], True),
    ("Ms Ada Lindqvist", "nurse", "Severnside NHS Foundation Trust", "WMTN", [CENTRAL], True),
]
# Named holders of the network, Trust and service-lead roles, handed out in this order.
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
# The service roles' holders are named from these, by the service's and the role's position.
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


def email(name: str, domain: str) -> str:
    """first.last@domain, titles dropped: 'Dr Asha Patel' -> asha.patel@domain."""
    parts = name.replace("Dr ", "").replace("Mr ", "").replace("Ms ", "").lower().split()
    return f"{parts[0]}.{parts[-1]}@{domain}"


def _id(row: Network | Organisation | Service) -> int:
    assert row.id is not None, "flushed rows have ids"
    return row.id


def network(session: Session, code: str, name: str, cycle: str = "annual") -> Network:
    row = Network(code=code, name=name, cycle=cycle)
    session.add(row)
    session.flush()
    return row


def trust(session: Session, name: str, nation: str = "ENG") -> Organisation:
    row = Organisation(name=name, nation=nation)
    session.add(row)
    session.flush()
    return row


def service(
    session: Session, name: str, kind: str, trust: Organisation, network: Network, pathway: str | None = None
) -> Service:
    row = Service(name=name, kind=kind, organisation_id=_id(trust), network_id=_id(network), pathway=pathway)
    session.add(row)
    session.flush()
    return row


def contact(
    session: Session,
    role: str,
    name: str,
    email: str,
    *,
    service: Service | None = None,
    trust: Organisation | None = None,
    network: Network | None = None,
) -> Contact:
    """A contact at the most specific level given (a service's also names its Trust); none: national."""
    row = Contact(
        role=role,
        name=name,
        email=email,
        service_id=_id(service) if service else None,
        organisation_id=_id(trust) if trust else None,
        network_id=_id(network) if network else None,
    )
    session.add(row)
    return row


def reviewer(
    session: Session,
    name: str,
    discipline: str,
    *,
    trust: Organisation | None = None,
    network: Network | None = None,
    pathways: list[str] | None = None,
    trained: bool = True,
) -> Reviewer:
    row = Reviewer(
        name=name,
        email=email(name.replace("Mrs ", ""), "reviewers.nhs.example"),
        discipline=discipline,
        organisation_id=_id(trust) if trust else None,
        network_id=_id(network) if network else None,
        pathways=list(pathways or []),
        trained=trained,
    )
    session.add(row)
    return row


def reference_data(session: Session) -> dict[str, int]:
    """The networks, Trusts, services, contacts and reviewers above; service name -> id.
    Flushed, not committed; a second call on the same database adds nothing and returns {}."""
    if session.exec(select(Network).where(Network.code == "WMTN")).first():
        return {}
    people = iter(PEOPLE)
    nets: dict[str, Network] = {}
    for code, name, cycle in NETWORKS:
        net = nets[code] = network(session, code, name, cycle)
        for role in NETWORK_ROLES:
            person = next(people)
            contact(session, role, person, email(person, f"{code.lower()}.network.nhs.example"), network=net)
    services: dict[str, int] = {}
    trusts: dict[str, Organisation] = {}
    for trust_name, nation, svcs in TRUSTS:
        org = trusts[trust_name] = trust(session, trust_name, nation)
        domain = trust_name.split(" NHS")[0].lower().replace(" ", "-") + ".nhs.example"
        for role in TRUST_ROLES:
            person = next(people)
            contact(session, role, person, email(person, domain), trust=org)
        for name, kind, code, pathway in svcs:
            svc = service(session, name, kind, org, nets[code], pathway)
            services[name] = _id(svc)
            person = next(people)
            contact(session, "service-lead", person, email(person, domain), service=svc, trust=org)
            for i, role in enumerate(SERVICE_ROLES):
                n = len(services) * 7 + i
                person = f"{FIRST[n % len(FIRST)]} {LAST[(n // len(FIRST) + n) % len(LAST)]}"
                contact(session, role, person, email(person, domain), service=svc, trust=org)
    for code, net in nets.items():
        contact(
            session,
            "responsible-commissioner",
            f"{code} Specialised Commissioning",
            f"commissioning@{code.lower()}.network.nhs.example",
            network=net,
        )
    for name, discipline, employer, home, pathways, trained in REVIEWERS:
        reviewer(
            session,
            name,
            discipline,
            trust=trusts[employer] if employer else None,
            network=nets[home] if home else None,
            pathways=pathways,
            trained=trained,
        )
    contact(session, "national-medical-lead", "Prof Alan Whitfield", "national.medicallead@england.nhs.example")
    session.flush()
    return services


_ACCOUNTS: dict[str, int] = {}


def person(name: str, role: str, *more: str, user_id: int | None = None) -> Principal:
    """A principal for tests that call the use cases directly: the named person holding
    ``role`` (and ``more``) for the whole installation, acting in ``role``. The same name is
    the same account (its id stable within the run); the ids start at 1000, above any account
    the test database holds. Entry points authenticate for real in tests/test_accounts*.py."""
    uid = user_id if user_id is not None else _ACCOUNTS.setdefault(name, 1000 + len(_ACCOUNTS))
    return Principal(uid, name, tuple(Grant(r) for r in (role, *more)), via="test", prefer=role)
