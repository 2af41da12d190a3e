"""The twin's one refusal type.

The twin is pure code with no idea of HTTP or commands: whatever it refuses (a circuit,
a controller command, a pulse schedule, a QEC code) is bad input, raised as TwinError with
a stable code. The adapters turn it into the domain's InvalidInput.
"""

from __future__ import annotations


class TwinError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
