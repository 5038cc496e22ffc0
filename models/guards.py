"""Database-level guards: the audit table refuses UPDATE and DELETE (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy.engine import Connection

MESSAGE = "auditevent is append-only: audit events cannot be changed or deleted"

SQLITE = [
    f"CREATE TRIGGER IF NOT EXISTS audit_event_no_update BEFORE UPDATE ON auditevent BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
    f"CREATE TRIGGER IF NOT EXISTS audit_event_no_delete BEFORE DELETE ON auditevent BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
]
POSTGRESQL = [
    f"""CREATE OR REPLACE FUNCTION peerwatch_audit_append_only() RETURNS trigger AS $$
        BEGIN RAISE EXCEPTION '{MESSAGE}'; END; $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS audit_event_no_update ON auditevent",
    "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON auditevent FOR EACH ROW EXECUTE FUNCTION peerwatch_audit_append_only()",
    "DROP TRIGGER IF EXISTS audit_event_no_delete ON auditevent",
    "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON auditevent FOR EACH ROW EXECUTE FUNCTION peerwatch_audit_append_only()",
]


def install_audit_guards(conn: Connection) -> None:
    """Create (or re-create) the append-only triggers; idempotent."""
    statements = POSTGRESQL if conn.dialect.name == "postgresql" else SQLITE
    for sql in statements:
        conn.exec_driver_sql(sql)
