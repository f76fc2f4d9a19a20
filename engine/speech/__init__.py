"""Text-to-speech: the text front end, the voices and the speak job.

- ``text.py``: sentences, and numbers, years, times, money and abbreviations as words (shared by
  every voice)
- ``voices.py``: the installed voices (Piper VITS voices through ``piper-tts``; SpeechT5 +
  HiFi-GAN with an x-vector) behind one ``Voice`` interface
- ``speecht5.py``: SpeechT5's autoregressive decoding loop (KV caches, stop token, length limits)
- ``task.py``: :func:`synthesize` (a generator of audio, sentence by sentence, for playback) and
  :func:`speak_file` (the job the Speak panel, the CLI and batch runs call)
"""
