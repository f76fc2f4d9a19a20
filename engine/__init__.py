"""Sonoscope engine: Qt-free audio I/O, DSP, jobs, chunking, model store and models.

Importing ``engine`` is cheap: torch and the model code are imported only by the
modules that need them, so the GUI can paint before any model code is loaded.
"""

__version__ = "0.1.0"
