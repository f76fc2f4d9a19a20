"""Batch runs: one engine task over many files, resumable, on local worker processes or on Ray.

Layout (each a small module):

- ``inputs``   -- INPUT arguments -> :class:`~engine.batch.inputs.Input` (files, folders walked for
  audio/video, ``.txt`` lists of paths), each with an output ``key`` unique in the batch;
- ``tasks``    -- the task registry: name -> engine function + how its outputs are written
  (``transcribe``, ``stems``, ``tag``, ``separate``; ``speak`` and ``analyze`` once their modules exist);
- ``manifest`` -- ``DIR/batch-manifest.json``: per input, its content hash, the options hash and
  the outputs written; decides what a second run skips;
- ``worker``   -- what runs one file in a worker (a process of the local pool, a Ray actor, or the
  caller itself): stage the outputs in a private folder, then move them into place atomically;
- ``runner``   -- :func:`run_batch`: the driver (manifest, scheduling, progress, summary);
- ``progress`` -- files done, audio hours done, throughput and ETA across the batch;
- ``ray_backend`` -- the same files as Ray tasks on actors that keep their model loaded (``ray`` is
  imported there only, so the engine imports without it).
"""

from __future__ import annotations

from .runner import BatchSummary, run_batch  # noqa: F401  (light: no torch, no ray)
