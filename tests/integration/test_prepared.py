"""Prepared statements (prepared.py) keep SQL's own colons and percent signs as they are: only :name is a parameter."""

from __future__ import annotations

import pytest

from playbook_sync import db, prepared

pytestmark = pytest.mark.integration


def test_a_regex_class_a_cast_and_a_percent_sign_survive_preparation(database_url):
    sql = ("SELECT 'a%b' LIKE :pattern AS liked, 'x' ~ '^[[:alpha:]]$' AS alpha, CAST(:n AS int) + 1 AS n, "
           "'7'::int AS cast, :n::int * 2 AS twice")
    with db.session_scope(database_url) as session:
        first = prepared.execute(session, sql, {"pattern": "a%", "n": 4}).one()
        again = prepared.execute(session, sql, {"pattern": "b%", "n": 5}).one()  # the prepared statement, reused
    assert tuple(first) == (True, True, 5, 7, 8)
    assert tuple(again) == (False, True, 6, 7, 10)
