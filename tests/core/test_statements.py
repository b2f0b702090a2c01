"""The statements both SQL stores run, written once (bot.store.statements)."""

from __future__ import annotations

import re

from bot.store import postgres_schema, statements
from bot.store.statements import numbered

SHARED = {name: sql for name, sql in vars(statements).items() if name.isupper() and isinstance(sql, str)}


def test_placeholders_are_numbered_in_order_and_a_question_mark_in_text_stays() -> None:
    sql = "UPDATE t SET a = ?, note = 'why? it''s ?' WHERE b = ? AND c = ?"
    assert numbered(sql) == "UPDATE t SET a = $1, note = 'why? it''s ?' WHERE b = $2 AND c = $3"


def test_every_shared_statement_is_postgresqls_numbered() -> None:
    assert len(SHARED) >= 30
    for name, sql in SHARED.items():
        postgres = getattr(postgres_schema, name)
        outside_text = re.sub(r"'(?:[^']|'')*'", "''", postgres)
        assert "?" not in outside_text, name
        assert len(re.findall(r"\$\d+", postgres)) == sql.count("?"), name
