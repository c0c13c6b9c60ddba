"""What the coordinator and the participant agree on about the wire (see PROTOCOL.md):
the shape of participant IDs and messages, and the longest line either accepts."""

from __future__ import annotations

import re

PARTICIPANT_ID = re.compile(r"[A-Za-z0-9_.-]+")  # use with fullmatch
MESSAGE = re.compile(r"[A-Za-z0-9]+")  # use with fullmatch: alphanumeric, as the assignment says
MAX_LINE = 64 * 1024  # bytes per line, terminator not counted
