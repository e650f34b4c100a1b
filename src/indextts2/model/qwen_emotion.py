"""Emotion from text: the Qwen3-based classifier shipped with IndexTTS2 (``qwen0.6bemo4-merge/``).

The model is asked, with a fixed system prompt, to rate a text on eight emotions; its reply (JSON when
all goes well, something JSON-like otherwise) is parsed into the eight-value vector the GPT stage
takes. The prompt, the parsing rules, the melancholic-word swap and the score range follow the
official pipeline, so that the same reply gives the same vector (the goldens' ``qwen_emotion.json``).

Two deliberate differences from the official code: decoding is greedy by default (the official code
samples with the model's generation config, so the same text can give different vectors), and the
reply is capped at ``max_new_tokens`` (256) instead of 32,768 tokens, so a model that never stops
cannot hang a request.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from indextts2.errors import IndexTTS2Error, ModelFilesMissing

__all__ = [
    "EMOTION_LABELS",
    "EmotionModelError",
    "QwenEmotion",
    "parse_emotion_reply",
]

logger = logging.getLogger(__name__)

# The eight emotions in the order of the GPT's emotion vector, with the Chinese labels the
# classifier was trained to emit.
EMOTION_LABELS: tuple[tuple[str, str], ...] = (
    ("happy", "高兴"),
    ("angry", "愤怒"),
    ("sad", "悲伤"),
    ("afraid", "恐惧"),
    ("disgusted", "反感"),
    ("melancholic", "低落"),
    ("surprised", "惊讶"),
    ("calm", "自然"),
)
_CN_TO_EN = {cn: en for en, cn in EMOTION_LABELS}
_CN_ORDER = tuple(cn for _, cn in EMOTION_LABELS)
SYSTEM_PROMPT = "文本情感分类"  # "text emotion classification": the prompt the classifier was tuned on
MIN_SCORE, MAX_SCORE = 0.0, 1.2  # the official clamp range of one emotion score
THINK_END = "</think>"  # Qwen3's end-of-reasoning marker (token 151668 in the release tokenizer)
# The classifier cannot tell sad from melancholic; texts naming melancholy swap the two scores.
MELANCHOLIC_WORDS = frozenset({"低落", "melancholy", "melancholic", "depression", "depressed", "gloomy"})
# The official fallback when the reply is not JSON: "label: number" pairs anywhere in the text.
_PAIR_PATTERN = re.compile(r'([^\s":.,]+?)"?\s*:\s*([\d.]+)')
_LABEL_KEYS = ("emotion", "emotion_label", "label", "情感", "情绪")
DEFAULT_MAX_NEW_TOKENS = 256


class EmotionModelError(IndexTTS2Error):
    """The emotion model replied with something that cannot be turned into scores."""

    http_status = 502
    code = "emotion_model_error"


def _label_to_cn(value: Any) -> str | None:
    """A Chinese label for an emotion named in Chinese or English, else None."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if value in _CN_TO_EN:
        return value
    lowered = value.lower()
    return next((cn for cn, en in _CN_TO_EN.items() if en == lowered), None)


def _score(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise EmotionModelError(
            f"the emotion model returned a non-numeric score {value!r}; try again or give the emotion "
            "as a vector"
        ) from exc
    return max(MIN_SCORE, min(MAX_SCORE, number))


def _normalise_labels(content: Any) -> dict[str, Any]:
    """Resolve replies that name an emotion instead of scoring it ("angry", {"label": "低落"}...)."""
    scores: dict[str, Any] = dict(content) if isinstance(content, dict) else {}
    detected = _label_to_cn(content) if isinstance(content, str) else None
    if detected is None:
        for key in _LABEL_KEYS:
            detected = _label_to_cn(scores.get(key))
            if detected is not None:
                break
    if detected is not None and all(cn not in scores for cn in _CN_ORDER):
        scores[detected] = 1.0
    for cn in _CN_ORDER:
        named = _label_to_cn(scores.get(cn))
        if named is not None:  # a label where a score belongs: that emotion at full strength
            scores[cn] = 1.0 if named == cn else 0.0
            if named != cn:
                scores[named] = 1.0
    return scores


def parse_emotion_reply(reply: str, *, emotion_text: str) -> dict[str, float]:
    """Turn the classifier's reply into the eight scores, in vector order (happy ... calm).

    Args:
        reply: the generated text (special tokens removed; a reasoning block may precede the answer).
        emotion_text: the text that was classified (the melancholic-word swap looks at it).

    Raises:
        EmotionModelError: a score that is not a number.
    """
    if THINK_END in reply:
        reply = reply[reply.rindex(THINK_END) + len(THINK_END) :]
    content: Any
    try:
        content = json.loads(reply)
    except json.JSONDecodeError:
        try:
            content = {m.group(1): float(m.group(2)) for m in _PAIR_PATTERN.finditer(reply)}
        except ValueError as exc:
            raise EmotionModelError(f"the emotion model returned an unreadable score ({exc})") from exc
    if any(word in emotion_text.lower() for word in MELANCHOLIC_WORDS):
        swapped = dict(content) if isinstance(content, dict) else {}
        swapped["悲伤"], swapped["低落"] = swapped.get("低落", 0.0), swapped.get("悲伤", 0.0)
        content = swapped
    scores = _normalise_labels(content)
    result = {_CN_TO_EN[cn]: _score(scores.get(cn, 0.0)) for cn in _CN_ORDER}
    if all(value <= 0.0 for value in result.values()):
        logger.info("no emotion detected in %r; using calm", emotion_text[:40])
        result["calm"] = 1.0
    return result


# --------------------------------------------------------------------------------------------------
# The model


# A chat template equivalent to Qwen3's for a system + user turn with thinking disabled.
_DUMMY_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)
_DUMMY_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")


def _dummy_tokenizer() -> Any:
    """A byte-level tokenizer with Qwen's chat tokens, built in memory (no files)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: index for index, symbol in enumerate(sorted(byte_alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.add_tokens(["<think>", "</think>"])  # ordinary (non-special) tokens, as in Qwen3
    tokenizer.chat_template = _DUMMY_CHAT_TEMPLATE
    return tokenizer


class QwenEmotion:
    """The text-emotion classifier: a causal LM and its tokenizer (transformers)."""

    def __init__(self, model: Any, tokenizer: Any, *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"  # batched generation continues every row at the end
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_new_tokens = max_new_tokens

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    ) -> QwenEmotion:
        """Load ``qwen0.6bemo4-merge/`` (a Hugging Face Qwen3 directory) from disk, never the network."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(directory)
        if not (path / "config.json").is_file():
            raise ModelFilesMissing(
                str(path),
                ["config.json"],
                "the emotion-from-text model (qwen0.6bemo4-merge) is not there; download the full "
                "model (indextts2 models download) or give the emotion as a vector or a clip",
            )
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            path,
            local_files_only=True,
            torch_dtype=dtype or (torch.float16 if torch.device(device).type == "cuda" else torch.float32),
        ).to(device)
        return cls(model, tokenizer, max_new_tokens=max_new_tokens)

    @classmethod
    def dummy(
        cls, *, seed_name: str = "qwen_emotion", max_new_tokens: int = 24, **config: Any
    ) -> QwenEmotion:
        """A tiny random Qwen3 with a byte-level tokenizer, so the text-emotion path runs without files."""
        from transformers import Qwen3Config, Qwen3ForCausalLM

        from indextts2.model.dummy import seeded

        tokenizer = _dummy_tokenizer()
        settings: dict[str, Any] = {
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "max_position_embeddings": 2048,
            "sliding_window": None,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
        settings.update(config)
        with seeded(seed_name):
            model = Qwen3ForCausalLM(Qwen3Config(**settings))
        return cls(model, tokenizer, max_new_tokens=max_new_tokens)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _prompt(self, text: str) -> str:
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": text}]
        prompt: str = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, enable_thinking=False
        )
        return prompt

    @torch.inference_mode()
    def replies(self, texts: Sequence[str]) -> list[str]:
        """The raw replies for several texts, generated in one batch (greedy)."""
        prompts = [self._prompt(text) for text in texts]
        inputs = self.tokenizer(prompts, return_tensors="pt", padding=True, return_token_type_ids=False).to(
            self.device
        )
        generated = self.model.generate(
            **inputs,
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        new_tokens = generated[:, inputs["input_ids"].shape[1] :]
        return [str(r) for r in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

    def classify(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Eight emotion scores (happy ... calm, each in [0, 1.2]) per text."""
        return [
            parse_emotion_reply(reply, emotion_text=text)
            for reply, text in zip(self.replies(texts), texts, strict=True)
        ]

    @staticmethod
    def as_vector(scores: Mapping[str, float]) -> list[float]:
        """The scores in vector order."""
        return [float(scores[name]) for name, _ in EMOTION_LABELS]
