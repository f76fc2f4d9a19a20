"""Audio: everything about samples before a model sees them and after it is done.

- ``io``: probe, decode (soundfile, PyAV), resample (soxr), encode (atomic writes)
- ``dsp``: the one STFT, mel filter banks, Whisper log-mel, Kaldi fbank
- ``chunking``: the one overlap-add harness for models that process long audio
- ``devices``: PortAudio devices and whether recording / playback can work
- ``capture``: the input ring buffer, the input stream and the streaming WAV recorder
- ``playback``: arrays and files to the output device
- ``vad``: Silero voice activity detection

Importing this package is cheap (no numpy, no torch); each module imports what it needs.
"""

SPEECH_RATE = 16000  # the sample rate of every speech model here (Whisper, wav2vec2, Silero VAD)
