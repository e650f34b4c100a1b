"""Saved voices: upload a reference once (with consent), get an id, use it in every request."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from litestar import Response, delete, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath, MultipartBody

from indextts2.errors import InvalidInput
from indextts2.server.access import multipart_only
from indextts2.server.openapi import documented
from indextts2.server.requests import described, upload_name
from indextts2.server.routes._common import Speech
from indextts2.server.voices import check_voice_name

__all__ = ["HANDLERS", "VoiceForm"]


@dataclass
class VoiceForm:
    """``POST /v1/voices`` (multipart/form-data)."""

    reference: Annotated[
        UploadFile,
        described("A clip of the speaker: a few seconds of clean speech (wav, flac, ogg, opus, mp3)."),
    ]
    consent: Annotated[
        bool, described("Must be true: the voice is yours, or you have the speaker's permission to use it.")
    ] = False
    name: Annotated[
        str | None,
        described(
            "An optional name to use instead of the id (unique on this server); for a clip saved "
            "already, another name of that voice."
        ),
    ] = None
    model: Annotated[
        str | None,
        described(
            "The served model the voice is encoded for (`/v1/models`; default: the first). Another model "
            "encodes the stored clip again when a request asks for it."
        ),
    ] = None


@get("/v1/voices", operation_class=documented(401, 403, 503), tags=["voices"], summary="List saved voices")
async def list_voices(speech: Speech) -> dict[str, Any]:
    return {"object": "list", "data": [record.to_json() for record in speech.voices.records()]}


@post(
    "/v1/voices",
    opt={"rate_limited": True, "permission": "voices"},
    guards=[multipart_only],
    operation_class=documented(400, 401, 403, 404, 409, 413, 415, 429, 503, 504, copies={200: 201}),
    tags=["voices"],
    summary="Save a voice",
    description=(
        "Upload a reference clip once, with `consent=true`; the answer holds its `id` (the same content "
        "always gets the same id). 201 when it is new, 200 when it was saved already: then a `name` it "
        "does not have yet is added to its names (`name`, then `aliases`); 409 when another voice has "
        "that name."
    ),
)
async def create_voice(speech: Speech, data: MultipartBody[VoiceForm]) -> Response[dict[str, Any]]:
    if not data.consent:
        raise InvalidInput(
            "saving a voice needs consent=true: confirm that the voice is yours, or that you have the "
            "speaker's permission to use it"
        )
    name = data.name.strip() if data.name and data.name.strip() else None
    if name is not None:
        check_voice_name(name)
    reference = await data.reference.read()
    await data.reference.close()
    if not reference:
        raise InvalidInput(f"the uploaded file {data.reference.filename!r} is empty; attach an audio file")
    record, created = await speech.create_voice(
        reference=reference, filename=upload_name(data.reference, "reference"), name=name, model=data.model
    )
    return Response(content=record.to_json(), status_code=201 if created else 200)


@get(
    "/v1/voices/{voice_id:str}",
    operation_class=documented(400, 401, 403, 404, 503),
    tags=["voices"],
    summary="Show a saved voice",
)
async def show_voice(speech: Speech, voice_id: FromPath[str]) -> dict[str, Any]:
    return speech.voices.get(voice_id).to_json()


@delete(
    "/v1/voices/{voice_id:str}",
    opt={"permission": "voices"},
    operation_class=documented(400, 401, 403, 404, 413, 503),
    tags=["voices"],
    summary="Delete a saved voice",
    status_code=200,
)
async def delete_voice(speech: Speech, voice_id: FromPath[str]) -> dict[str, Any]:
    record = await anyio.to_thread.run_sync(functools.partial(speech.voices.delete, voice_id))
    return {"id": record.id, "deleted": True}


HANDLERS = [list_voices, create_voice, show_voice, delete_voice]
