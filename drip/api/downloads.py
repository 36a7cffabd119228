"""`GET /download/{sequence}/{token}`: the file a sequence offers, to the contact the link names.

Every fetch is recorded (the funnel counts it). The link never expires and works after an
unsubscribe: the subscriber asked for the file.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, Response

from drip.api.deps import get_runtime
from drip.api.pages import page
from drip.db import transaction, utcnow
from drip.downloads.service import record_download
from drip.errors import BadToken
from drip.runtime import Runtime
from drip.unsubscribe.tokens import Purpose

router = APIRouter()

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@router.get(
    "/download/{sequence_id}/{token}",
    response_model=None,
    responses={
        200: {"content": {"application/octet-stream": {}, DOCX: {}}},
        400: {"description": "Bad link", "content": {"text/html": {}}},
    },
)
def download(sequence_id: str, token: str, runtime: Runtime = Depends(get_runtime)) -> Response:
    """Serve the sequence's file as an attachment and record the download."""
    try:
        public_id = runtime.signer.read(token, Purpose.DOWNLOAD)
    except BadToken:
        return page("bad_link.html", status_code=400)
    offer = (
        runtime.catalog.get(sequence_id).definition.download
        if sequence_id in runtime.catalog
        else None
    )
    if offer is None:
        return page("bad_link.html", status_code=400)
    with transaction(runtime.sessions) as session:
        if not record_download(session, public_id=public_id, sequence_id=sequence_id, now=utcnow()):
            return page("bad_link.html", status_code=400)
    return FileResponse(
        runtime.settings.sequences_dir / offer.file,
        filename=offer.download_name,
        media_type=DOCX if offer.file.endswith(".docx") else None,
    )
