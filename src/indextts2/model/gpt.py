"""UnifiedVoice: IndexTTS2's GPT stage (conditioning, emotion vectors, prompts, logits, latents).

Module and parameter names are the official ones, so ``gpt.pth`` loads strictly. What the official
class does, and where it lives here:

- ``get_conditioning``: :meth:`UnifiedVoice.speaker_conditioning` (conformer + perceiver -> 32 latents);
- ``get_emovec`` / ``merge_emovec``: :meth:`UnifiedVoice.emotion_vector`, :func:`merge_emotion_vectors`;
- ``prepare_gpt_inputs``: :meth:`UnifiedVoice.prompt_embeddings` (the decoding prefix);
- ``inference_speech``: :mod:`indextts2.model.decoding` (our own decode loop and KV cache);
- ``forward`` (the "latent" pass): :meth:`UnifiedVoice.latents`.

Two speaker-conditioning modes (the official ``spk_cond_mode``), chosen by the model family:

- ``conformer`` (IndexTTS-2): 32 perceiver latents of the speaker's w2v-BERT features, then the two
  ``speed_emb`` rows: 34 conditioning rows;
- ``campplus`` (IndexTTS-2.5): ``spk_emb_proj`` of the CAMPPlus style, then two zero rows: 3 rows;
  and a language vector (``lang_embedding``, 107 rows) added to every text row of the prompt.

Lengths (the official quirk Q3 of the goldens): the official infer passes the FEATURE WIDTH of the
w2v-BERT features as the length of every conditioning clip, so the conformers mask frames at index >=
1024 (which a 15 s clip never reaches with the release model; the tiny golden checkpoint, 64 wide,
does mask). Every conditioning method takes ``lengths``: None reproduces the official behaviour
(:func:`official_condition_lengths`, for one clip or clips of equal length); explicit lengths act as
if each clip were cut there, which is what a batching caller wants for padded clips, and equals the
official result for the release model whenever the clip is shorter than 1024 frames.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from indextts2.errors import CheckpointError, ConfigError, InvalidInput
from indextts2.model.config import ModelConfig
from indextts2.model.conformer import ConformerEncoder
from indextts2.model.dummy import seeded
from indextts2.model.gpt2 import GPT2Stack
from indextts2.model.loading import load_into, read_torch_file
from indextts2.model.perceiver import PerceiverResampler

__all__ = [
    "LANGUAGE_ROWS",
    "SPEAKER_MODES",
    "GPTConfig",
    "UnifiedVoice",
    "build_dummy_gpt",
    "merge_emotion_vectors",
    "official_condition_lengths",
]

logger = logging.getLogger(__name__)

CONDITION_LATENTS = 32  # UnifiedVoice(condition_num_latent=32): perceiver outputs for the speaker
SPEED_EMBEDDINGS = 2  # speed_emb rows; the prompt uses row 1 then row 0 (official order)
CONDITION_TYPE = "conformer_perceiver"
SPEAKER_MODES = ("conformer", "campplus")
# campplus mode: Embedding(len(LANGUAGE_DICT) + 1, dim), a literal of the official code (106 languages).
LANGUAGE_ROWS = 107
# campplus mode: the speaker row and two zero rows (the official code's literal 2).
CAMPPLUS_ZERO_ROWS = 2


def official_condition_lengths(features: torch.Tensor) -> torch.Tensor:
    """The lengths the official infer passes for ``(B, T, W)`` features: W for every row (quirk Q3)."""
    return torch.full((features.shape[0],), features.shape[-1], dtype=torch.int64, device=features.device)


def merge_emotion_vectors(speaker: torch.Tensor, emotion: torch.Tensor, alpha: float) -> torch.Tensor:
    """``speaker + alpha * (emotion - speaker)``, the official ``merge_emovec`` arithmetic."""
    return speaker + alpha * (emotion - speaker)


@dataclass(frozen=True)
class GPTConfig:
    """The sizes and special tokens of UnifiedVoice, from config.yaml's ``gpt`` section.

    ``semantic_width`` is the w2v-BERT feature width that the official code hard-codes as 1024;
    ``style_width`` the CAMPPlus style size (``spk_emb_proj``'s input, hard-coded 192);
    ``speaker_mode`` one of :data:`SPEAKER_MODES`.
    """

    model_dim: int
    layers: int
    heads: int
    max_mel_tokens: int
    max_text_tokens: int
    number_text_tokens: int
    number_mel_codes: int
    start_mel_token: int
    stop_mel_token: int
    start_text_token: int
    stop_text_token: int
    condition_module: Mapping[str, Any]
    emo_condition_module: Mapping[str, Any]
    semantic_width: int
    speaker_mode: str = "conformer"
    style_width: int = 192

    @property
    def conditioning_rows(self) -> int:
        """Rows of the conditioning block in front of the text: 34 (conformer) or 3 (campplus)."""
        if self.speaker_mode == "campplus":
            return 1 + CAMPPLUS_ZERO_ROWS
        return CONDITION_LATENTS + SPEED_EMBEDDINGS

    @classmethod
    def from_model_config(cls, config: ModelConfig, *, speaker_mode: str = "conformer") -> GPTConfig:
        if speaker_mode not in SPEAKER_MODES:
            raise ConfigError(f"unknown speaker mode {speaker_mode!r}; use one of {', '.join(SPEAKER_MODES)}")
        section = config.section("gpt")
        unsupported = [
            name
            for name, bad in (
                (
                    f"condition_type {section.get('condition_type')!r}",
                    section.get("condition_type") != CONDITION_TYPE,
                ),
                ("use_mel_codes_as_input: false", not section.get("use_mel_codes_as_input", True)),
                ("train_solo_embeddings: true", bool(section.get("train_solo_embeddings", False))),
            )
            if bad
        ]
        if unsupported:
            raise ConfigError(
                f"config {config.name}: the gpt section sets {', '.join(unsupported)}; IndexTTS2 uses "
                f"condition_type {CONDITION_TYPE}, mel codes as input and no solo embeddings"
            )
        try:
            return cls(
                model_dim=int(section["model_dim"]),
                layers=int(section["layers"]),
                heads=int(section["heads"]),
                max_mel_tokens=int(section["max_mel_tokens"]),
                max_text_tokens=int(section["max_text_tokens"]),
                number_text_tokens=int(section["number_text_tokens"]),
                number_mel_codes=int(section["number_mel_codes"]),
                start_mel_token=int(section["start_mel_token"]),
                stop_mel_token=int(section["stop_mel_token"]),
                start_text_token=int(section["start_text_token"]),
                stop_text_token=int(section["stop_text_token"]),
                condition_module=dict(section["condition_module"]),
                emo_condition_module=dict(section["emo_condition_module"]),
                semantic_width=config.semantic_width,
                speaker_mode=speaker_mode,
                style_width=int(config.section("s2mel", "style_encoder", "dim")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"config {config.name}: gpt section is incomplete or malformed ({exc})"
            ) from exc


class _LearnedPositions(nn.Module):
    """A table of learnt position embeddings (official ``LearnedPositionEmbeddings``: key ``emb``)."""

    def __init__(self, length: int, dim: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(length, dim)
        nn.init.normal_(self.emb.weight, std=0.02)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.emb(positions)


def _conformer(width: int, module: Mapping[str, Any]) -> ConformerEncoder:
    return ConformerEncoder(
        input_size=width,
        output_size=int(module["output_size"]),
        linear_units=int(module["linear_units"]),
        attention_heads=int(module["attention_heads"]),
        num_blocks=int(module["num_blocks"]),
        input_layer=str(module["input_layer"]),
    )


class UnifiedVoice(nn.Module):
    """IndexTTS2's GPT: text + speaker + emotion -> semantic codes, and the latents s2mel reads."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        dim, width = config.model_dim, config.semantic_width
        cond, emo = config.condition_module, config.emo_condition_module
        if config.speaker_mode == "campplus":
            self.spk_emb_proj = nn.Linear(config.style_width, dim)
        else:
            self.conditioning_encoder = _conformer(width, cond)
            self.perceiver_encoder = PerceiverResampler(
                dim=dim,
                dim_context=int(cond["output_size"]),
                num_latents=CONDITION_LATENTS,
                heads=int(cond["attention_heads"]),
                ff_mult=float(cond["perceiver_mult"]),
            )
            self.speed_emb = nn.Embedding(SPEED_EMBEDDINGS, dim)
        self.emo_conditioning_encoder = _conformer(width, emo)
        # The emotion perceiver works at the semantic width; emovec_layer brings it to the GPT width.
        self.emo_perceiver_encoder = PerceiverResampler(
            dim=width,
            dim_context=int(emo["output_size"]),
            num_latents=1,
            heads=int(emo["attention_heads"]),
            ff_mult=float(emo["perceiver_mult"]),
        )
        self.text_embedding = nn.Embedding(config.number_text_tokens + 1, dim)
        if config.speaker_mode == "campplus":
            self.lang_embedding = nn.Embedding(LANGUAGE_ROWS, dim)
        self.emo_layer = nn.Linear(dim, dim)
        self.emovec_layer = nn.Linear(width, dim)
        self.mel_embedding = nn.Embedding(config.number_mel_codes, dim)
        self.gpt = GPT2Stack(dim=dim, layers=config.layers, heads=config.heads)
        # +2 for the start/stop tokens, +1 for the (single) conditioning input: official sizes.
        self.mel_pos_embedding = _LearnedPositions(config.max_mel_tokens + 3, dim)
        self.text_pos_embedding = _LearnedPositions(config.max_text_tokens + 2, dim)
        self.final_norm = nn.LayerNorm(dim)
        # text_head is trained but unused at inference; kept so that gpt.pth loads strictly.
        self.text_head = nn.Linear(dim, config.number_text_tokens + 1)
        self.mel_head = nn.Linear(dim, config.number_mel_codes)
        for embedding in (self.text_embedding, self.mel_embedding):
            nn.init.normal_(embedding.weight, std=0.02)

    # ------------------------------------------------------------------ construction and loading

    @classmethod
    def from_config(cls, config: ModelConfig, *, speaker_mode: str = "conformer") -> UnifiedVoice:
        """An untrained model (torch's default initialisers; seed it with ``model.dummy.seeded``)."""
        return cls(GPTConfig.from_model_config(config, speaker_mode=speaker_mode))

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, config: ModelConfig, *, speaker_mode: str = "conformer"
    ) -> UnifiedVoice:
        """Load ``gpt.pth`` (a state dict, or ``{'model': state dict}``) without a second copy in memory.

        The module is built on the meta device and the memory-mapped checkpoint tensors are assigned
        to it, so the weights are held once (by the file's pages). The model is returned in eval mode,
        on the CPU, in the checkpoint's dtype.

        Raises:
            CheckpointError: unreadable file, or keys/shapes that do not fit the config.
        """
        state = read_torch_file(path)
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]
        if not isinstance(state, dict):
            raise CheckpointError(path, "expected a state dict (or a dict with a 'model' state dict)")
        with torch.device("meta"):
            model = cls.from_config(config, speaker_mode=speaker_mode)
        model.load(state, source=path, assign=True)
        return model.requires_grad_(False).eval()

    def load(
        self, state_dict: Mapping[str, torch.Tensor], *, source: str | Path, assign: bool = False
    ) -> None:
        """Load official ``UnifiedVoice`` tensors strictly (every key, every shape).

        Nothing is recomputed instead of loaded: even the conformers' sinusoidal tables (``pe``)
        come from the checkpoint, as in the official code.
        """
        load_into(self, state_dict, source=source, assign=assign)

    # ------------------------------------------------------------------ conditioning

    def _encode(
        self, encoder: ConformerEncoder, features: torch.Tensor, lengths: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if features.ndim != 3 or features.shape[-1] != self.config.semantic_width:
            raise InvalidInput(
                f"conditioning features must be (batch, frames, {self.config.semantic_width}), "
                f"got {tuple(features.shape)}"
            )
        if lengths is None:
            return encoder(features, official_condition_lengths(features))
        lengths = torch.as_tensor(lengths, dtype=torch.int64, device=features.device).reshape(-1)
        if lengths.shape[0] != features.shape[0] or bool(
            (lengths < 1).any() | (lengths > features.shape[1]).any()
        ):
            raise InvalidInput(
                f"lengths must give 1..{features.shape[1]} frames for each of the {features.shape[0]} clips, "
                f"got {lengths.tolist()}"
            )
        return encoder(features, lengths, as_cut=True)

    def _require(self, mode: str, what: str) -> None:
        if self.config.speaker_mode != mode:
            raise InvalidInput(
                f"{what} needs a GPT in {mode} speaker mode; this one is {self.config.speaker_mode}"
            )

    def speaker_encoder_output(
        self, features: torch.Tensor, *, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The conditioning conformer's output ``(B, T', C)`` and its mask ``(B, 1, T')``."""
        self._require("conformer", "the speaker conformer")
        return self._encode(self.conditioning_encoder, features, lengths)

    def style_conditioning(self, style: torch.Tensor) -> torch.Tensor:
        """campplus mode: ``spk_emb_proj`` of CAMPPlus styles ``(B, 192)`` -> ``(B, 1, D)``."""
        self._require("campplus", "style conditioning")
        if style.ndim != 2 or style.shape[-1] != self.config.style_width:
            raise InvalidInput(
                f"speaker styles must be (batch, {self.config.style_width}), got {tuple(style.shape)}"
            )
        projected: torch.Tensor = self.spk_emb_proj(style)
        return projected.unsqueeze(1)

    def speaker_conditioning(
        self, features: torch.Tensor, *, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The 32 conditioning latents ``(B, 32, D)`` of a speaker's w2v-BERT features ``(B, T, W)``.

        Args:
            features: normalised w2v-BERT layer-17 features of the speaker clip (``spk_cond_emb``).
            lengths: valid frames per row (as if each clip were cut there); None = the official
                behaviour (quirk Q3, see the module docstring).
        """
        encoded, mask = self.speaker_encoder_output(features, lengths=lengths)
        latents: torch.Tensor = self.perceiver_encoder(encoded, mask.squeeze(1))
        return latents

    def emotion_encoder_output(
        self, features: torch.Tensor, *, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The emotion conformer's output ``(B, T', C)`` and its mask ``(B, 1, T')``."""
        return self._encode(self.emo_conditioning_encoder, features, lengths)

    def emotion_pooled(self, encoded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The emotion perceiver's one latent ``(B, 1, W)`` of a conformer output and its mask."""
        pooled: torch.Tensor = self.emo_perceiver_encoder(encoded, mask.squeeze(1))
        return pooled

    def emotion_vector(self, features: torch.Tensor, *, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The emotion vector ``(B, D)`` of a clip's w2v-BERT features (official ``get_emovec``)."""
        encoded, mask = self.emotion_encoder_output(features, lengths=lengths)
        pooled = self.emotion_pooled(encoded, mask).squeeze(1)  # (B, W)
        vector: torch.Tensor = self.emo_layer(self.emovec_layer(pooled))
        return vector

    # ------------------------------------------------------------------ prompts

    def conditioning_block(self, latents: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        """conformer: [latents + emotion] [speed_emb(1)] [speed_emb(0)], ``(B, 34, D)``;
        campplus: [speaker row + emotion] [0] [0], ``(B, 3, D)``."""
        batch = latents.shape[0]
        if self.config.speaker_mode == "campplus":
            tail = latents.new_zeros(batch, CAMPPLUS_ZERO_ROWS, latents.shape[-1])
        else:
            speed = self.speed_emb(torch.tensor([1, 0], device=latents.device))
            tail = speed.unsqueeze(0).expand(batch, -1, -1)
        return torch.cat((latents + emotion.unsqueeze(1), tail), dim=1)

    def language_vector(self, language: int) -> torch.Tensor:
        """campplus mode: the ``lang_embedding`` row of a language id, ``(D,)``."""
        self._require("campplus", "a language vector")
        if not 0 <= language < LANGUAGE_ROWS:
            raise InvalidInput(f"language ids must lie in [0, {LANGUAGE_ROWS}), got {language}")
        vector: torch.Tensor = self.lang_embedding.weight[language]
        return vector

    def _text_block(self, text_ids: torch.Tensor, language: int | None = None) -> torch.Tensor:
        """[start_text, ids, stop_text] embedded with text positions 0..L+1: ``(L+2, D)``.

        campplus mode adds the language vector to every row (start and stop included, quirk Q3).
        """
        device = self.text_embedding.weight.device
        cfg = self.config
        ids = torch.cat(
            (
                torch.tensor([cfg.start_text_token], device=device),
                text_ids.to(device=device, dtype=torch.int64),
                torch.tensor([cfg.stop_text_token], device=device),
            )
        )
        positions = torch.arange(ids.shape[0], device=device)
        embedded: torch.Tensor = self.text_embedding(ids) + self.text_pos_embedding(positions)
        if self.config.speaker_mode == "campplus":
            if language is None:
                raise InvalidInput("this model needs a language id for every text (campplus mode)")
            embedded = embedded + self.language_vector(language)
        elif language is not None:
            raise InvalidInput("this model has no language embedding; give no language id")
        return embedded

    def _check_text(self, text_ids: torch.Tensor) -> None:
        if text_ids.ndim != 1:
            raise InvalidInput(
                f"text ids must be one sequence per row (1-D), got shape {tuple(text_ids.shape)}"
            )
        if text_ids.numel() > self.config.max_text_tokens:
            raise InvalidInput(
                f"{text_ids.numel()} text tokens, more than the model's {self.config.max_text_tokens}; "
                "split the text into shorter segments"
            )
        if text_ids.numel() and (
            int(text_ids.min()) < 0 or int(text_ids.max()) > self.config.number_text_tokens
        ):
            raise InvalidInput(f"text ids must lie in [0, {self.config.number_text_tokens}]")

    def prompt_embeddings(
        self,
        latents: torch.Tensor,
        emotion: torch.Tensor,
        text_ids: Sequence[torch.Tensor],
        languages: Sequence[int] | None = None,
    ) -> list[torch.Tensor]:
        """The decoding prefix of each row, ``(rows + L_i + 2, D)`` (official ``prepare_gpt_inputs``).

        [conditioning block (:attr:`GPTConfig.conditioning_rows`)] [start_text, text, stop_text] with
        text positions from 0. As in the official code, text ids equal to the start or stop text token
        (0, 1) are dropped here (they are kept in :meth:`latents`); the official code puts one
        masked zero row on the left for each id it drops, which changes nothing and is not built.
        The start-of-mel token is not included (:func:`indextts2.model.decoding.prefill` appends it).

        Args:
            latents: ``(B, 32, D)`` from :meth:`speaker_conditioning`, or ``(B, 1, D)`` from
                :meth:`style_conditioning` (campplus mode).
            emotion: ``(B, D)`` emotion vectors.
            text_ids: B 1-D tensors of token ids.
            languages: campplus mode: B language ids (``lang_embedding`` rows); else None.
        """
        if len(text_ids) != latents.shape[0] or emotion.shape[0] != latents.shape[0]:
            raise InvalidInput(
                f"batch sizes differ: {latents.shape[0]} latents, {emotion.shape[0]} emotion vectors, "
                f"{len(text_ids)} texts"
            )
        if languages is not None and len(languages) != len(text_ids):
            raise InvalidInput(f"{len(languages)} language ids for {len(text_ids)} texts")
        conditioning = self.conditioning_block(latents, emotion)
        cfg = self.config
        prompts = []
        for row, ids in enumerate(text_ids):
            self._check_text(ids)
            kept = ids[(ids != cfg.start_text_token) & (ids != cfg.stop_text_token)]
            language = None if languages is None else int(languages[row])
            prompts.append(torch.cat((conditioning[row], self._text_block(kept, language)), dim=0))
        return prompts

    def mel_embeddings(self, codes: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Embeddings of mel codes at the given mel positions (same shapes, plus D)."""
        embedded: torch.Tensor = self.mel_embedding(codes) + self.mel_pos_embedding(positions)
        return embedded

    def mel_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Code logits from GPT outputs (already ``ln_f``-normed): ``mel_head(final_norm(hidden))``."""
        logits: torch.Tensor = self.mel_head(self.final_norm(hidden))
        return logits

    # ------------------------------------------------------------------ the latent pass

    def latents(
        self,
        latents: torch.Tensor,
        emotion: torch.Tensor,
        text_ids: Sequence[torch.Tensor],
        codes: Sequence[torch.Tensor],
    ) -> list[torch.Tensor]:
        """The GPT latents s2mel reads: one ``(n_i, D)`` per row, one vector per code.

        A full forward pass over [conditioning block] [start_text, text, stop_text] [start_mel,
        codes, stop_mel] (text and mel positions from 0, no text id dropped), final-normed; the
        output at the input position just before each code (official ``forward`` with
        ``emo_vec``). Outputs at the last two mel positions are dropped by the official code, so
        they are not computed here (causal attention: leaving them out changes nothing before them).

        Args:
            latents: ``(B, 32, D)`` conditioning latents; emotion: ``(B, D)``.
            text_ids: B 1-D token-id tensors; codes: B 1-D code tensors (cut before the stop code).
        """
        self._require("conformer", "the latent pass")
        if not (len(text_ids) == len(codes) == latents.shape[0] == emotion.shape[0]):
            raise InvalidInput("latents, emotion vectors, texts and codes must have the same batch size")
        conditioning = self.conditioning_block(latents, emotion)
        device = conditioning.device
        cfg = self.config
        sequences, mel_starts, counts = [], [], []
        for row, (ids, row_codes) in enumerate(zip(text_ids, codes, strict=True)):
            self._check_text(ids)
            count = int(row_codes.numel())
            if count > cfg.max_mel_tokens:
                raise InvalidInput(f"{count} codes, more than the model's {cfg.max_mel_tokens}")
            if count and (int(row_codes.min()) < 0 or int(row_codes.max()) >= cfg.number_mel_codes):
                raise InvalidInput(f"codes must lie in [0, {cfg.number_mel_codes})")
            mel_inputs = torch.cat(
                (torch.tensor([cfg.start_mel_token], device=device), row_codes.to(device, torch.int64)[:-1])
            )[: max(count, 1)]
            mel = self.mel_embeddings(mel_inputs, torch.arange(mel_inputs.shape[0], device=device))
            text = self._text_block(ids)
            mel_starts.append(conditioning.shape[1] + text.shape[0])
            counts.append(count)
            sequences.append(torch.cat((conditioning[row], text, mel), dim=0))
        padded = nn.utils.rnn.pad_sequence(sequences, batch_first=True)  # right padding: causal, harmless
        hidden = self.final_norm(self.gpt(padded))
        return [
            hidden[row, start : start + n]
            for row, (start, n) in enumerate(zip(mel_starts, counts, strict=True))
        ]


def build_dummy_gpt(config: ModelConfig, *, speaker_mode: str = "conformer") -> UnifiedVoice:
    """The ``dummy`` load format's GPT: seeded random weights (torch's initialisers), eval mode."""
    with seeded("gpt"):
        model = UnifiedVoice.from_config(config, speaker_mode=speaker_mode)
    return model.requires_grad_(False).eval()
