"""`GET /download/{sequence}/{token}`: the file a sequence offers, to the contact the link names.

Every fetch is recorded (the funnel counts it). The link never expires and works after an
unsubscribe: the subscriber asked for the file. It opens the file of the sequence it was
made for, no other (`drip.unsubscribe.tokens`). The file is resolved again at every fetch
and served only if it is still a regular file under `<sequences dir>/files/`
(`drip.sequences.files`): a file swapped for a symbolic link after loading is not served.
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
from drip.sequences.files import OfferFileError, resolve_offer_file

router = APIRouter()

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@router.get(
    "/download/{sequence_id}/{token}",
    response_model=None,
    responses={
        200: {"content": {"application/octet-stream": {}, DOCX: {}}},
        400: {"description": "Bad link", "content": {"text/html": {}}},
        404: {"description": "The file is not available", "content": {"text/html": {}}},
    },
)
def download(sequence_id: str, token: str, runtime: Runtime = Depends(get_runtime)) -> Response:
    """Serve the sequence's file as an attachment and record the download."""
    try:
        claim = runtime.signer.read_download(token)
    except BadToken:
        return page("bad_link.html", status_code=400)
    if claim.sequence_id is not None and claim.sequence_id != sequence_id:
        return page("bad_link.html", status_code=400)
    offer = (
        runtime.catalog.get(sequence_id).definition.download
        if sequence_id in runtime.catalog
        else None
    )
    if offer is None:
        return page("bad_link.html", status_code=400)
    try:
        path = resolve_offer_file(runtime.settings.sequences_dir, offer.file)
    except OfferFileError:
        return page("bad_link.html", status_code=404)
    with transaction(runtime.sessions) as session:
        recorded = record_download(
            session,
            public_id=claim.public_id,
            sequence_id=sequence_id,
            now=utcnow(),
            bound=claim.sequence_id is not None,
        )
        if not recorded:
            return page("bad_link.html", status_code=400)
    return FileResponse(
        path,
        filename=offer.download_name,
        media_type=DOCX if offer.file.endswith(".docx") else None,
    )
