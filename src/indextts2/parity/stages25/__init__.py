"""The parity stages of IndexTTS-2.5 (``shared/goldens-2.5``); the text stage is ``stages.text``."""
