"""Where messages go. One contract, ``Transport.send``, three implementations.

``Transport.delivered(message_id)`` (optional) answers, after a crash, whether a message
claimed but not marked sent did reach its destination: ``True``, ``False``, or ``None`` when
the transport cannot tell (SMTP): the dispatcher then reports it in doubt and never resends it.

- ``FolderTransport`` (default): writes each message as an ``.eml`` file; no mail server needed.
- ``SmtpTransport``: a real SMTP server (host, port, from, STARTTLS, credentials from env).
- ``MemoryTransport``: keeps messages in a list; the test double, with a switchable outage.

``transport_from_env()`` picks one from ``PEERWATCH_MAIL`` (``folder`` or ``smtp``).
"""

from __future__ import annotations

import os
import re
import smtplib
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol


class TransportError(Exception):
    """A send failed; the dispatcher retries it later."""


class Transport(Protocol):
    sender: str

    def send(self, message: EmailMessage) -> None:
        """Deliver one message or raise ``TransportError``."""
        ...

    def delivered(self, message_id: str) -> bool | None:
        """Whether the message with this Message-ID was delivered; ``None`` if unknown."""
        ...


DEFAULT_SENDER = "peerwatch <peerwatch@network.nhs.invalid>"


class FolderTransport:
    def __init__(self, folder: str | Path, sender: str = DEFAULT_SENDER) -> None:
        self.folder = Path(folder)
        self.sender = sender

    def path_for(self, message_id: str) -> Path:
        """The file a message is written to: named by its Message-ID, so a resend overwrites."""
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(message_id).strip().strip("<>"))
        return self.folder / f"{stem}.eml"

    def delivered(self, message_id: str) -> bool | None:
        return self.path_for(message_id).exists()

    def send(self, message: EmailMessage) -> None:
        path = self.path_for(str(message["Message-ID"]))
        tmp = path.with_suffix(".tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(bytes(message))
            tmp.replace(path)  # atomic: a crash never leaves half a letter
        except OSError as exc:
            raise TransportError(f"cannot write {path}: {exc}") from exc


class SmtpTransport:
    def __init__(
        self,
        host: str,
        port: int = 25,
        sender: str = DEFAULT_SENDER,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.starttls, self.username, self.password, self.timeout = starttls, username, password, timeout

    def send(self, message: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise TransportError(f"SMTP {self.host}:{self.port}: {exc}") from exc

    def delivered(self, message_id: str) -> bool | None:
        return None  # a relay keeps no record we can ask: unknown


class MemoryTransport:
    def __init__(self, sender: str = DEFAULT_SENDER) -> None:
        self.sender = sender
        self.sent: list[EmailMessage] = []
        self.down = False

    def send(self, message: EmailMessage) -> None:
        if self.down:
            raise TransportError("mail service unavailable (simulated outage)")
        self.sent.append(message)

    def delivered(self, message_id: str) -> bool | None:
        return any(str(m["Message-ID"]) == message_id for m in self.sent)


def outbox_folder() -> Path:
    return Path(os.environ.get("PEERWATCH_OUTBOX_DIR", "var/outbox"))


def transport_from_env() -> Transport:
    kind = os.environ.get("PEERWATCH_MAIL", "folder")
    sender = os.environ.get("PEERWATCH_MAIL_FROM", DEFAULT_SENDER)
    if kind == "smtp":
        return SmtpTransport(
            host=os.environ.get("PEERWATCH_SMTP_HOST", "127.0.0.1"),
            port=int(os.environ.get("PEERWATCH_SMTP_PORT", "25")),
            sender=sender,
            starttls=os.environ.get("PEERWATCH_SMTP_STARTTLS", "false").lower() in ("1", "true", "yes"),
            username=os.environ.get("PEERWATCH_SMTP_USERNAME"),
            password=os.environ.get("PEERWATCH_SMTP_PASSWORD"),
        )
    if kind == "folder":
        return FolderTransport(outbox_folder(), sender)
    raise ValueError(f"PEERWATCH_MAIL={kind!r}: use 'folder' or 'smtp'")
