"""Sound classification over time: AudioSet tagging (EfficientAT, AST) and wav2vec2 classifiers.

- ``taggers.py``: each kind of model behind one small interface (sample rate, native window,
  labels, single- or multi-label, ``logits(windows)``)
- ``task.py``: :func:`~engine.tags.task.tag_file`, the tagging job that the Tags panel and
  ``main.py tag`` both run: sliding windows over a streamed file, clip-level top tags, events
- ``exports.py``: JSON, CSV of events, Audacity label track
"""
