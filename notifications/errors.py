"""Errors the sending side reports. It raises its own: ``notifications`` uses ``models`` only.

NotificationError
 └── InvalidSetting    a mail or dispatch setting (``PEERWATCH_...``) that cannot be used

A failed send is not an error of this kind: ``transports.TransportError`` is caught by the
dispatcher and retried. The entry points (cli, flows) show a ``NotificationError`` as the
one-line message it carries, as they do the engine's ``states.errors.PeerwatchError``.
"""


class NotificationError(Exception):
    """Base of every error the sending side reports to a user."""


class InvalidSetting(NotificationError):
    """A setting the dispatcher or a transport was given cannot be used; the message names it."""
