"""The models a server holds (``serve --model A --model B``) and how a request's ``model`` chooses one.

Each :class:`ServedModel` has its own Synthesizer (one engine, or a pool over its devices); the
speech service asks :class:`ServedModels` which one a request names. A request that names none, or
one of the OpenAI aliases (``tts-1``...), gets the first (the default); a model is named by its id
(``IndexTeam/IndexTTS-2.5``, ``dummy:tiny``), the name it was configured with, or its family
(``IndexTTS-2``) when one model alone has it.

A client (the web page, ``indextts2 say --server``, a program) learns from ``/v1/info`` which
options each model has (:func:`family_json`): a language choice (IndexTTS-2.5's languages), a
duration factor, and the speaking rate every family has. Nothing here branches on a family: it
reports what the family says.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from indextts2.errors import IndexTTS2Error, InvalidInput, ModelNotFound
from indextts2.options import DURATION_RANGE, SPEED_RANGE
from indextts2.pool import EngineStatus
from indextts2.server.config import ModelPlacement

__all__ = ["ServedModel", "ServedModels", "family_json"]


def family_json(family: Any) -> dict[str, Any] | None:
    """A model family for ``/v1/info`` (None when it is not known yet).

    ``languages``: the codes a client may offer (besides ``auto``, detection from the script), empty
    when the model takes no language; ``duration``: the duration factor's range, or None when the
    model has none; ``speed``: the speaking rate's range (every family); ``code_rate``: semantic
    codes per second of speech.
    """
    if family is None:
        return None
    return {
        "name": family.name,
        "languages": list(family.languages),
        "duration": list(DURATION_RANGE) if family.supports_duration else None,
        "speed": list(SPEED_RANGE),
        "code_rate": family.code_rate,
    }


class ServedModel:
    """One model of the server: its configured name and devices, and its Synthesizer once loaded."""

    def __init__(self, placement: ModelPlacement) -> None:
        self.placement = placement
        self.synthesizer: Any | None = None
        self.load_error: BaseException | None = None
        """Why loading it failed, when it did."""

    @property
    def name(self) -> str:
        """As configured (``--model``)."""
        return self.placement.name

    @property
    def id(self) -> str:
        """The loaded model's id (the configured name until it is loaded)."""
        return str(getattr(self.synthesizer, "model_id", self.name))

    @property
    def ready(self) -> bool:
        return self.synthesizer is not None

    @property
    def family(self) -> Any:
        """Its ``ModelFamily``: the loaded model's, else the one its name tells without loading it;
        None when neither is known (a directory that is not there yet)."""
        family = getattr(self.synthesizer, "family", None)
        if family is None:
            from indextts2.loader import family_of

            try:
                family = family_of(self.name)
            except IndexTTS2Error:
                return None
        return family

    @property
    def healthy(self) -> bool:
        """Some engine of it takes requests (False once every engine of its pool has failed)."""
        return bool(getattr(self.synthesizer, "healthy", True))

    def engines(self, in_flight: int) -> list[EngineStatus]:
        """Its engines: health, outstanding requests and statistics, each with this model's id.

        A pool and a Ray deployment report their own; a single Synthesizer is one engine on its
        device (``in_flight``: the server's requests in flight, all of them its).
        """
        synthesizer = self.synthesizer
        if synthesizer is None:
            return []
        engines = getattr(synthesizer, "engines", None)
        if engines is not None:
            found = list(engines())
        else:
            read = getattr(synthesizer, "engine_stats", None)
            name = str(getattr(synthesizer, "device", ",".join(self.placement.devices)))
            found = [EngineStatus(name, True, None, in_flight, read() if read is not None else None)]
        return [dataclasses.replace(engine, model=self.id) for engine in found]

    def to_json(self, *, default: bool) -> dict[str, Any]:
        """The model for ``/v1/info``."""
        return {
            "id": self.id,
            "family": family_json(self.family),
            "ready": self.ready,
            "default": default,
            "devices": list(self.placement.devices),
            "sample_rate": int(getattr(self.synthesizer, "sample_rate", 0) or 0),
        }


class ServedModels(Sequence[ServedModel]):
    """The server's models in order, the first the default, and what a request's ``model`` names.

    Args:
        placements: the models and their devices (``ServerConfig.placements``).
        aliases: names that mean the default model (OpenAI's ``tts-1``, ``tts-1-hd``...).
    """

    def __init__(self, placements: Sequence[ModelPlacement], *, aliases: Sequence[str] = ()) -> None:
        if not placements:
            raise InvalidInput("a server needs at least one model")
        self._models = [ServedModel(p) for p in placements]
        self.aliases = tuple(aliases)

    def __getitem__(self, index: int) -> ServedModel:  # type: ignore[override]
        return self._models[index]

    def __len__(self) -> int:
        return len(self._models)

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(self._models)

    @property
    def default(self) -> ServedModel:
        return self._models[0]

    def load(self, synthesizers: Any) -> None:
        """Give the models loaded Synthesizers: one (the default model's) or a mapping by name."""
        if not isinstance(synthesizers, Mapping):
            synthesizers = {self.default.name: synthesizers}
        for model in self._models:
            model.synthesizer = synthesizers.get(model.name, model.synthesizer)

    def resolve(self, requested: str | None) -> ServedModel:
        """The model a request names (None or empty: the default).

        Raises:
            ModelNotFound: no served model answers to that name (the message lists those that do).
            InvalidInput: a family that several served models have.
        """
        wanted = (requested or "").strip()
        if not wanted:
            return self.default
        for model in self._models:
            if wanted in (model.id, model.name):
                return model
        if wanted in self.aliases:
            return self.default
        by_family = [m for m in self._models if (f := m.family) is not None and f.name == wanted]
        if len(by_family) == 1:
            return by_family[0]
        served = ", ".join(f"{m.id} ({self._family_name(m)})" for m in self._models)
        if by_family:
            raise InvalidInput(f"{wanted} is the family of several models here; name one: {served}")
        also = f"; or an alias of the first: {', '.join(self.aliases)}" if self.aliases else ""
        raise ModelNotFound(f"model {wanted[:120]!r} is not served here; use one of {served}{also}")

    @staticmethod
    def _family_name(model: ServedModel) -> str:
        family = model.family
        return family.name if family is not None else "family unknown"

    def check_options(self, model: ServedModel, options: Mapping[str, Any]) -> None:
        """Refuse at once what the model's family lacks (a language, a duration factor) when another
        served model has it, naming that one. (Otherwise the Synthesizer refuses it, as it would
        anywhere, still before any work.)

        Raises:
            InvalidInput: the option and the model to ask for instead.
        """
        family = model.family
        if family is None:
            return
        for option, what, has in (
            ("language", "takes no language", lambda f: f.supports_language),
            ("duration", "has no duration factor", lambda f: f.supports_duration),
        ):
            value = options.get(option)
            if value is None or (option == "duration" and value == 1.0) or has(family):
                continue
            other = next((m for m in self._models if (f := m.family) is not None and has(f)), None)
            if other is not None:
                raise InvalidInput(
                    f"model {model.id}: {family.name} {what}; leave {option} out, or ask for model "
                    f"{other.id} ({self._family_name(other)}), which this server also serves"
                )
