"""Errors an operator can see. Each message names what was wrong; nothing was changed.

PeerwatchError
 ├── NotFound          unknown kind, item or trigger target
 ├── InvalidTrigger    the trigger does not exist, or not from the item's state
 ├── GuardRefused      the trigger exists but a rule refused it (e.g. first vs second response)
 ├── PermissionDenied  the role may not fire this trigger
 │    └── SignInRefused  a web sign-in refused (unrecognised, throttled, unknown identity)
 ├── MissingActor      no actor was named
 ├── StaleVersion      the row changed since the caller read it
 ├── BadDate           a malformed date, or one that would move an item back in time
 └── InvalidInput      any other bad value (level, score, parameter)
"""


class PeerwatchError(Exception):
    """Base of every error peerwatch reports to a user."""


class NotFound(PeerwatchError):
    pass


class InvalidTrigger(PeerwatchError):
    pass


class GuardRefused(PeerwatchError):
    pass


class PermissionDenied(PeerwatchError):
    pass


class SignInRefused(PermissionDenied):
    """A web sign-in refused: the message is what the person may be told, nothing more."""


class MissingActor(PeerwatchError):
    pass


class StaleVersion(PeerwatchError):
    pass


class BadDate(PeerwatchError):
    pass


class InvalidInput(PeerwatchError):
    pass
