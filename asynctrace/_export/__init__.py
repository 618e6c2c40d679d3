"""Export: the Chrome Trace Event JSON (written and read back), the terminal timeline, the
HTML page, and what every output shares (JSON encoding, capped text, files written whole).

Nothing is imported here: each module is imported where it is used.
"""
