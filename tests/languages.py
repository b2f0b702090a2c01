"""The command table in both languages, as every platform's tests run it: each command with
arguments that make it answer (run by an operator), and how to tell the language of a reply."""

from __future__ import annotations

import re

CJK = re.compile(r"[\u4e00-\u9fff]")
PERSONA = {"en": "You are a friendly cat.", "zh": "你是一只友好的猫。"}


def commands(lang: str) -> list[tuple[str, str]]:
    """(name, args) for every command of the table, in the order a user might try them."""
    return [
        ("help", ""), ("model", ""), ("model", "demo"), ("persona", ""), ("persona", f"set {PERSONA[lang]}"),
        ("persona", "reset"), ("reset", ""), ("status", ""), ("moderation", "block zorblax"),
        ("moderation", "list"), ("moderation", "remove zorblax"), ("usage", ""), ("quota", ""),
        ("access", ""), ("forget-me", ""), ("hearth-channel", "on"),
    ]


def in_language(reply: str, lang: str) -> bool:
    """A Chinese reply's first line holds Chinese; an English one's none. (Later lines may
    quote what others wrote: a persona template, model descriptions, the user's words.)"""
    first = reply.strip().splitlines()[0] if reply.strip() else ""
    return bool(CJK.search(first)) if lang == "zh" else not CJK.search(first)
