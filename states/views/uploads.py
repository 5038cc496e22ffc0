"""Files sent through the portal, as a person may see them: only if they may see the item the
file is about (``Upload.item_kind``, ``item_id``). A hidden file and a missing one give the same
``NotFound``, so a Trust cannot learn that another Trust's file exists.
"""

from __future__ import annotations

from sqlmodel import Session

from models.portal import Upload
from models.types import is_row_id
from states.errors import NotFound
from states.principal import Principal
from states.views.work import get_visible


def get_upload(session: Session, principal: Principal, upload_id: int) -> Upload:
    """The upload, if ``principal`` may see its item; else NotFound (the same as a missing id)."""
    missing = NotFound(f"file {upload_id} not found")
    if isinstance(upload_id, bool) or not isinstance(upload_id, int) or not is_row_id(upload_id):
        raise missing
    upload = session.get(Upload, upload_id)
    if upload is None:
        raise missing
    try:
        get_visible(session, principal, upload.item_kind, upload.item_id)
    except NotFound:
        raise missing from None
    return upload
