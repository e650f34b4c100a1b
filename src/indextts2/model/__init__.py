"""The IndexTTS2 networks, their configuration and their checkpoint loaders.

One file per network family. ``model/`` knows nothing of the engine, the server or the CLI.
"""
