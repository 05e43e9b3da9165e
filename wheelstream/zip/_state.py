"""The parser's states; what each expects and which state follows is the table in ``_parser``'s docstring.

A module of its own so that the readers (``_entry_start``, ``_entry_data``, ``_central``) can move the parser
on to the next state without importing the parser, which imports them.
"""

from __future__ import annotations

import enum

__all__ = ["State"]


class State(enum.Enum):
    RECORD = "record"
    ENTRY_DATA = "entry data"
    DATA_DESCRIPTOR = "data descriptor"
    CENTRAL_DIRECTORY = "central directory"
    TRAILER = "trailer"
    DEFERRED = "deferred"
    DONE = "done"
    ERROR = "error"
