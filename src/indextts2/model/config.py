"""Model configuration: the official ``config.yaml`` plus the auxiliary models' ``config.json`` files.

The official code hard-codes a few sizes instead of reading them from the config (the w2v-BERT width of
1024, s2mel's gpt_layer, CAMPPlus channels; see the goldens' ``hardcoded_dims.json``). We derive
them from the config (``semantic_width``) or from checkpoint shapes, so that the small golden
checkpoint and the release one load through the same code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from indextts2.errors import ConfigError

__all__ = ["PRESETS", "ModelConfig", "load_config", "load_preset"]

PRESETS: tuple[str, ...] = ("tiny", "full", "tiny-2.5", "full-2.5")


def _fix_nones(value: Any) -> Any:
    """OmegaConf-style ``None`` strings (``fmax: None``) become real None."""
    if isinstance(value, dict):
        return {k: _fix_nones(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fix_nones(v) for v in value]
    if value == "None":
        return None
    return value


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} does not hold a mapping")
    result: dict[str, Any] = _fix_nones(data)
    return result


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} does not hold a JSON object")
    return data


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build the networks, before any weight is read.

    Attributes:
        main: the parsed ``config.yaml`` (sections ``gpt``, ``semantic_codec``, ``s2mel``, ...).
        w2v_bert: the w2v-BERT 2.0 ``config.json`` (HF ``Wav2Vec2BertConfig`` fields).
        w2v_bert_preprocessor: its ``preprocessor_config.json`` (SeamlessM4T feature extractor).
        bigvgan: the BigVGAN ``config.json``.
        name: where the config came from (a directory, or ``dummy:tiny``...), for messages.
    """

    main: dict[str, Any]
    w2v_bert: dict[str, Any]
    w2v_bert_preprocessor: dict[str, Any]
    bigvgan: dict[str, Any]
    name: str = ""

    def section(self, *keys: str) -> Any:
        """A nested section of ``config.yaml``, with a clear error when it is missing."""
        node: Any = self.main
        for depth, key in enumerate(keys):
            if not isinstance(node, dict) or key not in node:
                path = ".".join(keys[: depth + 1])
                raise ConfigError(f"config {self.name or ''} has no '{path}' entry".replace("  ", " "))
            node = node[key]
        return node

    @property
    def semantic_width(self) -> int:
        """Width of the w2v-BERT features (1024 in the release; the official code hard-codes it)."""
        return int(self.section("semantic_codec", "hidden_size"))

    @property
    def gpt_dim(self) -> int:
        return int(self.section("gpt", "model_dim"))

    @property
    def sample_rate(self) -> int:
        """Output sample rate (s2mel / BigVGAN): 22050 Hz for IndexTTS2."""
        return int(self.section("s2mel", "preprocess_params", "sr"))


def load_config(
    config_yaml: str | Path,
    *,
    w2v_bert_dir: str | Path,
    bigvgan_dir: str | Path,
) -> ModelConfig:
    """Read a checkpoint's configs: ``config.yaml`` and the w2v-BERT and BigVGAN ``config.json``."""
    w2v = Path(w2v_bert_dir)
    return ModelConfig(
        main=_read_yaml(Path(config_yaml)),
        w2v_bert=_read_json(w2v / "config.json"),
        w2v_bert_preprocessor=_read_json(w2v / "preprocessor_config.json"),
        bigvgan=_read_json(Path(bigvgan_dir) / "config.json"),
        name=str(Path(config_yaml).parent),
    )


def load_preset(name: str) -> ModelConfig:
    """The config of a ``dummy`` load format: ``tiny`` / ``tiny-2.5`` (the golden checkpoints' sizes) or
    ``full`` / ``full-2.5`` (release sizes) of IndexTTS-2 / IndexTTS-2.5."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}")
    root = resources.files("indextts2.model.presets") / name
    with resources.as_file(root) as directory:
        path = Path(directory)
        return ModelConfig(
            main=_read_yaml(path / "config.yaml"),
            w2v_bert=_read_json(path / "w2v_bert.json"),
            w2v_bert_preprocessor=_read_json(path / "w2v_bert_preprocessor.json"),
            bigvgan=_read_json(path / "bigvgan.json"),
            name=f"dummy:{name}",
        )
