"""The term glossary: how to read technical terms, per language, applied before normalisation.

Format (the official ``glossary.yaml``, found at the top of a model directory)::

    M.2:
      en: M dot two
      zh: M 二
    NVMe: N-V-M-E        # one reading for both languages

Terms match case-insensitively, longest first, each replacing the text left by the ones before. A
term with a per-language table but no entry for the language of the text stays as it is. A user's
glossary is laid over the model's: its entries win.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indextts2.errors import ConfigError, InvalidInput

__all__ = ["GLOSSARY_FILE_NAME", "Glossary"]

# The official file name inside a model directory (infer_v2.py looks for it there).
GLOSSARY_FILE_NAME = "glossary.yaml"
_LANGUAGES = ("zh", "en")


def _entry(term: Any, reading: Any, source: str) -> tuple[str, str | dict[str, str]]:
    if not isinstance(term, str) or not term:
        raise ConfigError(f"{source}: glossary term {term!r} must be non-empty text (quote it in YAML)")
    if isinstance(reading, str):
        return term, reading
    if isinstance(reading, Mapping):
        table: dict[str, str] = {}
        for language, text in reading.items():
            if language not in _LANGUAGES or not isinstance(text, str):
                raise ConfigError(
                    f"{source}: glossary term {term!r} maps {language!r} to {text!r}; "
                    "use 'zh' and/or 'en' with text readings"
                )
            table[language] = text
        return term, table
    raise ConfigError(
        f"{source}: glossary term {term!r} has reading {reading!r}; give text or a table of zh/en texts"
    )


def _literal(value: str) -> Callable[[re.Match[str]], str]:
    return lambda _match: value


@dataclass(frozen=True)
class Glossary:
    """An immutable term -> reading table (reading: text, or ``{"zh": ..., "en": ...}``)."""

    entries: Mapping[str, str | Mapping[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checked = dict(_entry(term, reading, "glossary") for term, reading in self.entries.items())
        object.__setattr__(self, "entries", checked)
        ordered = sorted(checked, key=len, reverse=True)
        patterns = tuple((term, re.compile(re.escape(term), re.IGNORECASE)) for term in ordered)
        object.__setattr__(self, "_patterns", patterns)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def from_mapping(cls, entries: Mapping[Any, Any], *, source: str = "glossary") -> Glossary:
        """Build from a mapping, with errors naming ``source``."""
        if not isinstance(entries, Mapping):
            raise InvalidInput(f"{source}: a glossary must be a mapping of term -> reading")
        return cls(dict(_entry(term, reading, source) for term, reading in entries.items()))

    @classmethod
    def from_yaml(cls, path: str | Path) -> Glossary:
        """Read a glossary YAML file; an empty file is an empty glossary."""
        import yaml

        file = Path(path)
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidInput(f"glossary file {file} does not exist") from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"glossary file {file} cannot be read: {exc}") from None
        if loaded is None:
            return cls()
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"glossary file {file} must hold a mapping of term -> reading")
        return cls.from_mapping(loaded, source=str(file))

    def merged(self, other: Glossary | None) -> Glossary:
        """This glossary with ``other``'s entries laid over it."""
        if not other:
            return self
        return Glossary({**self.entries, **other.entries})

    def apply(self, text: str, language: str) -> str:
        """Replace every term by its reading for ``language`` ("zh" or "en")."""
        patterns: tuple[tuple[str, re.Pattern[str]], ...] = getattr(self, "_patterns", ())
        for term, pattern in patterns:
            reading = self.entries[term]
            replacement = reading if isinstance(reading, str) else reading.get(language, term)
            # A function, so backslashes in a reading are literal (re.sub would read them as escapes).
            text = pattern.sub(_literal(replacement), text)
        return text
