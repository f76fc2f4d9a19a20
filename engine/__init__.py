"""Sonoscope engine: everything the app does, without Qt, usable headless and as a library.

Find a capability by its folder: ``audio/`` (I/O, DSP, chunking, devices, capture, playback,
VAD), ``models/`` (networks and checkpoint readers; ``models.load``), one package per user task
(``transcribe/``, ``stems/``), ``results.py`` (the one result model), ``store.py`` (models on
disk), ``jobs.py`` (progress and cancel), ``compute.py`` (torch device and threads), ``cli/``.

Importing ``engine`` is cheap: torch and the model code are imported only by the modules that
need them, so the GUI can paint before any model code is loaded.
"""

__version__ = "0.1.0"
