"""Files that travel with a letter, rendered when it is sent, as the letter is.

The transition stores an attachment's renderer (by name) and its data, frozen; the dispatcher
renders the bytes once it has claimed the letter and keeps them on the row, so the row holds
the file exactly as it was handed to the mail service. An attachment stored with its bytes (a
row written before revision 0010) goes as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from models.tables import Attachment
from notifications.documents import render_report_pdf
from notifications.render import thaw
from notifications.spreadsheets import render_selfassessment_xlsx


def _report_pdf(data: dict[str, Any]) -> bytes:
    return render_report_pdf(data["document"], draft=bool(data.get("draft")))


# Each renderer by the name a transition stores (states/machines: report.py, selfassessment.py).
RENDERERS: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "report_pdf": _report_pdf,
    "selfassessment_xlsx": render_selfassessment_xlsx,
}


def render_attachment(attachment: Attachment) -> bytes:
    """The file's bytes: as sent (kept on the row), or rendered now from its frozen data and kept."""
    if attachment.data is None:
        if attachment.renderer not in RENDERERS or attachment.document is None:
            raise ValueError(f"attachment {attachment.filename!r} has neither bytes nor a known renderer")
        attachment.data = RENDERERS[attachment.renderer](thaw(attachment.document))
    return attachment.data
