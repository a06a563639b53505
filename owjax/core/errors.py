"""Error messages shared by every part of owjax: unknown names always list the valid choices."""

from __future__ import annotations

import difflib

__all__ = ["unknown_name_message"]


def unknown_name_message(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> str:
    """An error message for an unknown ``name`` of ``kind``, with close matches from ``valid``."""
    close = difflib.get_close_matches(name, list(valid), n=5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    shown = ", ".join(list(valid)[:40]) + (" …" if len(valid) > 40 else "")
    return f"unknown {kind} {name!r}.{hint} Valid {kind}s ({len(valid)}): {shown}"
