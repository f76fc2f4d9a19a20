"""Speech to text.

- ``whisper/``: Whisper's tokenizer, decoding (greedy, beam search, temperature fallback),
  word alignment, long-form transcription and its live (local agreement) streamer
- ``ctc.py``: CTC decoding (greedy, prefix beam search with a word list) and whole-file CTC
  transcription for wav2vec2 / HuBERT
- ``streaming.py``: the streamer interface, the chunked CTC streamer, replay and latency helpers
- ``live.py``: the live session (microphone or a replayed file into a streamer), a job
- ``task.py``: :func:`~engine.transcribe.task.transcribe_file`, the transcription job that the
  Transcribe panel and ``main.py transcribe`` both run
- ``exports.py``: TXT / SRT / VTT / JSON
"""
