"""Music stems: Spleeter separation of a song into 2, 4 or 5 stems (``separate.py``)."""
