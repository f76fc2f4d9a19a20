"""One default per setting, shared by the desktop app and the command line (no Qt, no torch).

The app's settings registry (``app.settings.define`` in the panels) and the CLI's ``argparse``
defaults both read these names, so a file transcribed, split or tagged with no options gives
the same result from either. Change a default here and both follow.
"""

from __future__ import annotations

# -- transcription ---------------------------------------------------------------------------------
# Whisper base, not tiny.en: both ship as offline packs and both run faster than real time on a
# laptop CPU (base int8 ~15x, tiny.en ~27x here), but base is clearly more accurate (1.4 % WER on
# the LibriVox test utterances) and it is multilingual, so "detect the language" (the default)
# also works for speech that is not English, and "translate to English" is there at all. tiny.en
# is the live default below, where speed is what matters.
TRANSCRIBE_MODEL = "whisper-base"
CTC_MODEL = "wav2vec2-base-960h"
TRANSCRIBE_MODELS = {"whisper": TRANSCRIBE_MODEL, "ctc": CTC_MODEL}
LANGUAGE = "auto"            # detect
TASK = "transcribe"          # or "translate" (to English)
BEAM_SIZE = 1                # greedy; 5 is slightly more accurate and several times slower
WORD_TIMESTAMPS = False
TRANSCRIPT_FORMAT = "srt"

# -- live transcription -------------------------------------------------------------------------------
# Live re-decodes a sliding window every second: the fastest English model keeps up on a CPU.
LIVE_ENGINE = "whisper"
LIVE_MODELS = {"whisper": "whisper-tiny.en", "ctc": CTC_MODEL}
# CTC live: a 0.3 s chunk, 1.2 s of left context, 0.15 s look-ahead. benchmarks/bench_ctc.py, wav2vec2-base
# size, int8, 2 cores: words on screen p95 0.37 s, committed p95 0.53 s, 0.19x real time; the old
# 1 s / 2 s / 0.5 s gave 1.18 s / 1.66 s. Its cost: 69% of frames decoded as with the whole file in view
# against 81% (random weights: a proxy). --chunk / --left / --right trade it back.
LIVE_CTC_CHUNK, LIVE_CTC_LEFT, LIVE_CTC_RIGHT = 0.3, 1.2, 0.15
# Whisper live decodes on one torch thread of its own (the count is per thread): with two, a decode waits
# for the slower one, and beside other work (drawing, playback, a job) a short window decoded 2-3x slower.
LIVE_WHISPER_THREADS = 1

# -- stems ----------------------------------------------------------------------------------------------
STEMS = 2                    # 2: vocals / accompaniment, 4: + drums / bass, 5: + piano
STEMS_MODE = "soft"          # soft masks: the stems add up to the original
STEMS_FORMAT = "wav"
STEM_MODELS = {2: "spleeter-2stems", 4: "spleeter-4stems", 5: "spleeter-5stems"}  # catalog ids by stem count
# Stems are written as 32-bit float WAV (WAVE_FORMAT_EXTENSIBLE, see engine.audio.io.soundfile_format):
# a stem can exceed full scale where the mix does not clip, and only float keeps "the stems add
# up to the original" exact.
STEMS_WAV_SUBTYPE = "FLOAT"

# -- sound tags -------------------------------------------------------------------------------------
TAG_TOP = 10                 # labels kept per file
TAG_THRESHOLD = 0.3          # score at which a label makes an event
TAG_HOP = 1.0                # seconds between windows

# -- audio files ---------------------------------------------------------------------------------------
EXPORT_FORMAT = "wav"        # File → Export in the app; `convert` takes it from the output's name
