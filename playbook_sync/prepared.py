"""Per-entry queries as server-side prepared statements with a generic plan (issue 12).

Planning the hybrid retrieval statement (a dozen CTEs and joins) cost PostgreSQL about as
much CPU as running it, on every entry. A statement prepared once per connection with
plan_cache_mode = force_generic_plan is planned once per connection instead. Prepared
statements live in the server session, so this needs a connection per session (a direct
PostgreSQL connection or PgBouncer in session mode, not transaction pooling).
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache

from sqlalchemy import TextClause, text
from sqlalchemy.engine import Result
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

# :name (also cast as :name::int), not a ::cast nor a regex's [[:alpha:]] class
_PARAM = re.compile(r"(?<![:\w]):(\w+)(?=::|[^:\w]|$)")
INVALID_SQL_STATEMENT_NAME = "26000"  # "prepared statement ... does not exist"


@lru_cache(maxsize=64)
def _statement(sql: str) -> tuple[str, str]:
    """(name, PREPARE body) of sql: worked out once per process, not per execution (the hybrid statement is
    4 KB to hash and scan for parameters on every entry)."""
    names = list(dict.fromkeys(_PARAM.findall(sql)))
    return "pbs_" + hashlib.sha1(sql.encode()).hexdigest()[:20], _PARAM.sub(lambda m: f"${names.index(m.group(1)) + 1}", sql)


@lru_cache(maxsize=64)
def _execute_clause(sql: str, settings: str) -> TextClause:
    """The EXECUTE of sql's prepared statement with its settings, built once (SQLAlchemy caches its compiled form)."""
    arguments = ", ".join(f":{n}" for n in dict.fromkeys(_PARAM.findall(sql)))
    return text(f"{settings}SET LOCAL plan_cache_mode = force_generic_plan; EXECUTE {_statement(sql)[0]}({arguments})")


def execute(session: Session, sql: str, params: dict, *, settings: str = "") -> Result:
    """Run sql (with :named parameters) as this connection's prepared statement, preparing it on first use.

    settings: SET LOCAL statements sent first, in the same round trip (a generic plan is made under the
    settings of the first execution: pass the same planner settings every time).
    """
    name, body = _statement(sql)
    connection = session.connection()
    # The pool's per-DBAPI-connection dict: kept across check-outs, cleared when the connection is replaced.
    known = connection.connection.info.setdefault("prepared_statements", set())
    if name not in known:
        # not undone by a rollback: prepared once. The driver formats the text with %-placeholders: a literal % is %%.
        connection.exec_driver_sql(f"PREPARE {name} AS {body}".replace("%", "%%"))
        known.add(name)
    try:
        return session.execute(_execute_clause(sql, settings), params)
    except DBAPIError as exc:
        if getattr(exc.orig, "pgcode", None) == INVALID_SQL_STATEMENT_NAME:
            # The server dropped our statements (DEALLOCATE ALL or DISCARD ALL from a pooler or an admin):
            # forget them, so the next use prepares again; this transaction is aborted and fails as it is.
            known.clear()
        raise


def explain(session: Session, sql: str, params: dict, *, settings: str = "") -> list:
    """EXPLAIN (ANALYZE, FORMAT JSON) of sql's prepared statement on this connection: the generic plan a worker
    runs, not the custom plan a plain EXPLAIN of the SQL with its values would show (the two can differ by 5x)."""
    execute(session, sql, params, settings=settings).all()  # prepared (and planned) as on a worker's first entry
    clause = _execute_clause(sql, settings).text.replace("EXECUTE ", "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE ", 1)
    plan = session.execute(text(clause), params).scalar()
    return plan if isinstance(plan, list) else json.loads(plan)
