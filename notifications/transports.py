"""Where messages go. One contract, ``Transport.send``, three implementations.

``Transport.delivered(message_id)`` (optional) answers, after a crash, whether a message
claimed but not marked sent did reach its destination: ``True``, ``False``, or ``None`` when
the transport cannot tell (SMTP): the dispatcher then reports it in doubt and resends it once,
after a wait, with the same Message-ID.

- ``FolderTransport`` (default): writes each message as an ``.eml`` file; no mail server needed.
- ``SmtpTransport``: a real SMTP relay (host, port, from, credentials from env); TLS required
  and verified unless the relay is on this machine, connect and command timeouts.
- ``MemoryTransport``: keeps messages in a list; the test double, with a switchable outage.

``transport_from_env()`` picks one from ``PEERWATCH_MAIL`` (``folder`` or ``smtp``).

A training database (``peerwatch init --training``) never sends over SMTP, whatever
``PEERWATCH_MAIL`` says: ``for_database`` gives the dispatcher a ``TrainingTransport``, which
writes each letter where the folder transport writes (``PEERWATCH_OUTBOX_DIR``), marked as a
training letter; the rows are marked sent with a note saying so.
"""

from __future__ import annotations

import ipaddress
import os
import re
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

from sqlmodel import Session

from models.installation import ROW_ID, Installation
from notifications.errors import InvalidSetting


class TransportError(Exception):
    """A send failed; the dispatcher retries it later."""


class ConnectionFailed(TransportError):
    """The mail service could not be reached at all: every message would fail alike, so after
    ``max_connection_failures`` of these in a row the dispatcher stops the run's attempts."""


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


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (127.0.0.0/8, ::1, localhost): mail to it never crosses a network."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


TLS_MODES = ("starttls", "tls", "none")


class SmtpTransport:
    """A real SMTP relay. TLS is required unless the relay is on this machine: ``starttls``
    (the default for any other host: a relay that does not offer STARTTLS is refused), ``tls``
    (implicit TLS, SMTPS, usually port 465) or ``none`` (plain: the default only for loopback).
    Certificates and host names are verified (``ssl.create_default_context()``), against the
    system's CAs or ``ca_file`` for a private CA. ``connect_timeout`` bounds reaching the relay
    and its greeting; ``timeout`` each command after that. A failure to reach the relay (refused,
    timed out, no greeting, TLS or login refused) raises ``ConnectionFailed``."""

    def __init__(
        self,
        host: str,
        port: int = 25,
        sender: str = DEFAULT_SENDER,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        *,
        tls: str | None = None,
        ca_file: str | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        if tls is None:
            tls = "starttls" if starttls or not is_loopback(host) else "none"
        if tls not in TLS_MODES:
            raise InvalidSetting(f"SMTP TLS mode {tls!r}: use one of {', '.join(TLS_MODES)}")
        self.host, self.port, self.sender = host, port, sender
        self.tls, self.ca_file, self.username, self.password = tls, ca_file, username, password
        self.timeout, self.connect_timeout = timeout, connect_timeout

    @property
    def starttls(self) -> bool:
        return self.tls == "starttls"

    def context(self) -> ssl.SSLContext:
        """Verifies the relay's certificate chain and that it names the host we asked for."""
        try:
            return ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionFailed(
                f"SMTP {self.host}:{self.port}: cannot read the CA file {self.ca_file!r} "
                f"(PEERWATCH_SMTP_CA_FILE): {exc}"
            ) from exc

    def _where(self) -> str:
        return f"SMTP {self.host}:{self.port}"

    def _connect(self) -> smtplib.SMTP:
        context = self.context() if self.tls != "none" else None
        # Given the host at once, smtplib connects and reads the greeting within connect_timeout,
        # and keeps the host as the name the relay's certificate must hold (TLS and STARTTLS).
        smtp: smtplib.SMTP = (
            smtplib.SMTP_SSL(self.host, self.port, context=context, timeout=self.connect_timeout)
            if self.tls == "tls"
            else smtplib.SMTP(self.host, self.port, timeout=self.connect_timeout)
        )
        try:
            if smtp.sock is not None:
                smtp.sock.settimeout(self.timeout)  # each command from here on
            if self.tls == "starttls":
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    raise ConnectionFailed(
                        f"{self._where()} does not offer STARTTLS, and TLS is required for a relay that is not on "
                        "this machine: use a relay that does, or PEERWATCH_SMTP_TLS=tls for implicit TLS"
                    )
                smtp.starttls(context=context)
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, message: EmailMessage) -> None:
        try:
            smtp = self._connect()
        except ConnectionFailed:
            raise
        except ssl.SSLCertVerificationError as exc:
            raise ConnectionFailed(
                f"{self._where()}: the relay's certificate was refused ({exc.verify_message}): "
                "for a private CA set PEERWATCH_SMTP_CA_FILE"
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise ConnectionFailed(f"{self._where()}: cannot reach the relay: {type(exc).__name__}: {exc}") from exc
        try:
            with smtp:
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise TransportError(f"{self._where()}: {exc}") from exc

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


TRAINING_HEADER = "X-Peerwatch-Training"


class TrainingTransport(FolderTransport):
    """A training database's letters: written to the outbox folder, never sent over SMTP."""

    name = "training folder"

    def __init__(self, folder: str | Path, sender: str = DEFAULT_SENDER) -> None:
        super().__init__(folder, sender)
        self.note = f"training database: written to {self.folder}, never sent over SMTP"

    def send(self, message: EmailMessage) -> None:
        del message[TRAINING_HEADER]
        message[TRAINING_HEADER] = "a letter of a training database: never sent over SMTP"
        super().send(message)


def is_training(session: Session) -> bool:
    """Was this database made with ``peerwatch init --training`` (models.installation)?"""
    row = session.get(Installation, ROW_ID)
    return bool(row is not None and row.training)


def for_database(session: Session, transport: Transport) -> Transport:
    """The transport a dispatch run may use on this database: in a training database, any
    transport that would reach a mail server (SMTP, or anything not known to stay on this
    machine) is replaced by a ``TrainingTransport`` writing to ``PEERWATCH_OUTBOX_DIR``."""
    if isinstance(transport, (FolderTransport, MemoryTransport)) or not is_training(session):
        return transport
    return TrainingTransport(outbox_folder(), transport.sender)


def _number(name: str, default: str, kind: type) -> Any:
    raw = os.environ.get(name, default)
    try:
        value = kind(raw)
    except ValueError:
        raise InvalidSetting(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise InvalidSetting(f"{name}={raw!r} must be more than 0")
    return value


def transport_from_env() -> Transport:
    kind = os.environ.get("PEERWATCH_MAIL", "folder")
    sender = os.environ.get("PEERWATCH_MAIL_FROM", DEFAULT_SENDER)
    if kind == "smtp":
        legacy = os.environ.get("PEERWATCH_SMTP_STARTTLS", "false").lower() in ("1", "true", "yes")
        return SmtpTransport(
            host=os.environ.get("PEERWATCH_SMTP_HOST", "127.0.0.1"),
            port=_number("PEERWATCH_SMTP_PORT", "25", int),
            sender=sender,
            starttls=legacy,
            username=os.environ.get("PEERWATCH_SMTP_USERNAME"),
            password=os.environ.get("PEERWATCH_SMTP_PASSWORD"),
            tls=(os.environ.get("PEERWATCH_SMTP_TLS") or None),
            ca_file=(os.environ.get("PEERWATCH_SMTP_CA_FILE") or None),
            connect_timeout=_number("PEERWATCH_SMTP_CONNECT_TIMEOUT", "10", float),
            timeout=_number("PEERWATCH_SMTP_TIMEOUT", "30", float),
        )
    if kind == "folder":
        return FolderTransport(outbox_folder(), sender)
    raise ValueError(f"PEERWATCH_MAIL={kind!r}: use 'folder' or 'smtp'")
