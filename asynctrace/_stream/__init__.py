"""Stream: the flusher thread that turns new records into spans while the program runs, the
JSON file as it grows, reading it as it grows, and the live view.

Nothing is imported here: each module is imported where it is used.
"""
