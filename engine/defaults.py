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
# Whisper live decodes on torch threads of its own (the count is per thread). Two: on an otherwise idle
# 2-core machine (AVX-512 VNNI) a tiny.en int8 decode takes 0.31-0.38 s instead of 0.56 s, and in real time
# (benchmarks/bench_live.py) committed p95 went 7.7 -> 4.5 s and shown p95 4.1 -> 1.7 s. Beside other work
# (a job on the same cores) a decode on two threads waits for the slower one (0.6-1.05 s against 0.5-0.6 s
# on one): the count is the most, and decodes drop to one thread while they run slow (ThreadChoice).
LIVE_WHISPER_THREADS = 2
# Live Whisper (LocalAgreement-2, engine/transcribe/whisper/streaming.py). WER of a deterministic replay
# (offline tiny.en int8; LibriVox 5 utterances / three 60 s files of short phrases said twice):
#   step 1.0, min window 4, agree with the previous decode:        7.0 / 4.3 / 2.9 / 7.3 %
#   step 0.4, min window 3, agree with the decode >= 1 s earlier:   7.0 / 4.3 / 2.9 / 7.3 %
#   the same, min window 2:                                         9.9 / 4.3 / 2.9 / 7.3 %
#   the same, encoder on the window + 12 s (not 30 s):             14.1 / 5.8 / 7.2 / 9.1 %
#   the same, aligned word times:                                   9.9 / 4.3 / 4.3 / 7.3 %
# In real time (benchmarks/bench_live.py, files 1 and 2; p95 s after the word's end, WER; offline 5.8 / 2.9):
#   step 1.0, min window 4:  committed 6.1, shown 2.1, 2.9 %
#   step 0.7, min window 3:  committed 3.3 / 4.4, shown 1.6 / 1.8, 2.9 / 5.8 %
#   step 0.4, min window 3:  committed 3.3 / 3.1, shown 1.9 / 1.5, 9.4 / 8.0 %  (a decode takes ~0.4 s:
#   back to back, on audio cut at other places, with more words committed from shorter windows)
# The window is re-decoded every LIVE_WHISPER_STEP seconds (or as soon as the last decode ends, if later).
LIVE_WHISPER_STEP = 0.7
# A pause this long ends an utterance: it is decoded once more and committed whole. Two threads, real time,
# 60 s of phrases said twice: 0.6 s: committed p95 4.5 s, WER 9.4%; 0.4 s: 3.4 s, 4.3% (offline 5.8%).
# Deterministic replay of three 60 s files (tune clips): 4.3 / 5.8 / 12.7% at 0.6 s, 5.8 / 5.8 / 5.5% at 0.4 s.
# (LIVE_WHISPER_MIN_WINDOW 2 as well: p95 2.95 s in real time, but 4.3 / 5.8 / 11.8% replayed.)
LIVE_WHISPER_MIN_SILENCE = 0.4
# No word is committed by agreement before the window holds this much audio (Whisper changes the first
# words of a shorter one); they show as tentative meanwhile.
LIVE_WHISPER_MIN_WINDOW = 3.0
# Words are committed where the newest hypothesis agrees with the one decoded at least this many seconds
# earlier (LocalAgreement-2 with hypotheses far enough apart to be two opinions, however short the step).
# 0.6 (with a 0.7 s step: the previous decode) against 1.0, first decode a step into the speech, two
# threads: replayed 4.3 / 5.8 / 5.5% against 5.8 / 5.8 / 12.7% (the same files as above); real time,
# seeds 1 and 2: committed median 1.59 / 1.67 s against 2.04 / 2.10 s, p95 3.1-3.5 s either way, WER 4.3%.
LIVE_WHISPER_AGREE_GAP = 0.6
# Seconds of padding the encoder sees after a window shorter than 30 s (TranscribeOptions.short_context;
# None: the whole 30 s). 0.2 s a decode instead of 0.3-0.4 s, but tiny.en hears short windows worse.
LIVE_WHISPER_SHORT_CONTEXT: float | None = None
# Word times from cross-attention alignment (one more decoder pass) instead of a segment's time spread
# over its characters: better times, but the text changed for the worse on two files of four.
LIVE_WHISPER_WORD_TIMES = False

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
