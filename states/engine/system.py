"""The built-in ``system`` principal: the sweeps and the dispatcher act as it.

Only the flows' own code paths obtain it (the sweep, the milestone chase, the cycle's opening
steps, the dispatcher): tests/test_architecture.py keeps the list of modules that may import
this one, and no account can hold the ``system`` role (a CHECK constraint on ``role_grant``),
so no sign-in, CLI option, flow parameter or token can become it.
"""

from __future__ import annotations

from models.accounts import SYSTEM_USER_ID
from states.principal import Grant, Principal
from states.roles import SYSTEM, SYSTEM_ACTOR

SYSTEM_PRINCIPAL = Principal(
    user_id=SYSTEM_USER_ID, name=SYSTEM_ACTOR, grants=(Grant(SYSTEM),), via="system", prefer=SYSTEM, is_system=True
)
