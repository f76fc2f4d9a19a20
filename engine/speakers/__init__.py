"""Speakers: separating a two-speaker mix into one track per speaker (SepFormer) and finding who
spoke when (speaker embeddings over voiced audio, clustered into turns).

- ``separate.py``: the speaker separation job (chunked, speaker order kept across chunks)
- ``diarize.py``: the who-spoke-when job and the merge of speaker turns into transcripts
"""
