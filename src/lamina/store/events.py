"""The durable queue of asynchronous work, in the metadata database (SQLAlchemy Core).

One row per pending piece of work: an event waiting to invoke a function (`invoke`), or a
record waiting to be sent to an SQS queue (`sqs`). A row is written before its event is
acknowledged and deleted only once the work is done, in the same transaction as the rows
that work produces (a destination's event, a dead-letter message). A crash therefore
loses nothing: every row still present is delivered again after a restart.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

_metadata = sa.MetaData()
events_table = sa.Table(
    "async_events", _metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("account_id", sa.String(12), nullable=False),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("name", sa.String(140), nullable=False),       # the function, or "" for an SQS message
    sa.Column("qualifier", sa.String(140)),
    sa.Column("target", sa.String(350)),                     # the SQS queue ARN of an `sqs` row
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("client_context", sa.Text),
    sa.Column("attributes", sa.Text),                        # JSON: SQS message attributes
    sa.Column("enqueued_at", sa.Float, nullable=False),
    sa.Column("next_at", sa.Float, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_result", sa.Text),                       # JSON: the last attempt's response
)

INVOKE = "invoke"
SQS = "sqs"


@dataclass
class QueuedEvent:
    """A row without its payload (payloads stay on disk until delivery)."""

    id: str
    kind: str
    account_id: str
    region: str
    name: str
    qualifier: str | None
    enqueued_at: float
    next_at: float
    target: str | None = None
    client_context: str | None = None
    attributes: dict[str, Any] | None = None
    attempts: int = 0
    last_result: dict[str, Any] | None = None
    throttles: int = 0                          # consecutive, in this process only
    payload: bytes | None = field(default=None, repr=False)

    def row(self) -> dict[str, Any]:
        assert self.payload is not None
        return {
            "id": self.id, "kind": self.kind, "account_id": self.account_id, "region": self.region,
            "name": self.name, "qualifier": self.qualifier, "target": self.target, "payload": self.payload,
            "client_context": self.client_context,
            "attributes": None if self.attributes is None else json.dumps(self.attributes),
            "enqueued_at": self.enqueued_at, "next_at": self.next_at, "attempts": self.attempts,
            "last_result": None if self.last_result is None else json.dumps(self.last_result),
        }


@dataclass(frozen=True, slots=True)
class Insert:
    event: QueuedEvent


@dataclass(frozen=True, slots=True)
class Reschedule:
    event_id: str
    next_at: float
    attempts: int
    last_result: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Delete:
    event_id: str


Op = Insert | Reschedule | Delete


class SqlEventStore:
    """Thread-safe; `apply` runs a list of operations as one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        _metadata.create_all(engine)

    def apply(self, ops: Sequence[Op]) -> None:
        t = events_table
        inserts = [op.event.row() for op in ops if isinstance(op, Insert)]
        with self.engine.begin() as conn:
            if inserts:
                conn.execute(sa.insert(t), inserts)
            for op in ops:
                if isinstance(op, Reschedule):
                    conn.execute(sa.update(t).where(t.c.id == op.event_id).values(
                        next_at=op.next_at, attempts=op.attempts,
                        last_result=None if op.last_result is None else json.dumps(op.last_result)))
                elif isinstance(op, Delete):
                    conn.execute(sa.delete(t).where(t.c.id == op.event_id))

    def pending(self) -> list[QueuedEvent]:
        """Every row, oldest first, without payloads (start-up recovery)."""
        t = events_table
        columns = [c for c in t.c if c.name != "payload"]
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*columns).order_by(t.c.enqueued_at)).mappings().all()
        return [QueuedEvent(
            id=r["id"], kind=r["kind"], account_id=r["account_id"], region=r["region"], name=r["name"],
            qualifier=r["qualifier"], target=r["target"], client_context=r["client_context"],
            attributes=json.loads(r["attributes"]) if r["attributes"] else None,
            enqueued_at=r["enqueued_at"], next_at=r["next_at"], attempts=r["attempts"],
            last_result=json.loads(r["last_result"]) if r["last_result"] else None,
        ) for r in rows]

    def payloads(self, ids: Iterable[str]) -> dict[str, bytes]:
        t = events_table
        wanted = list(ids)
        out: dict[str, bytes] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                for event_id, payload in conn.execute(sa.select(t.c.id, t.c.payload).where(t.c.id.in_(chunk))):
                    out[event_id] = payload
        return out

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(events_table)).scalar() or 0)
