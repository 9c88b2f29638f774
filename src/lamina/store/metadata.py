"""Function metadata in SQL (SQLAlchemy Core; SQLite by default, PostgreSQL later).

One row per function version keyed by (account_id, region, name, version); every other
field of `FunctionConfig` lives in a JSON document that round-trips exactly (enums,
tuples, nested dataclasses). Every write is a single statement, hence atomic; SQLite runs
in WAL mode with synchronous=FULL so an acknowledged write survives a crash or restart.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lamina import errors
from lamina.domain.messages import revision_mismatch
from lamina.domain.model import LATEST, FunctionConfig, LayerVersion
from lamina.domain.pagination import decode_marker, encode_marker
from lamina.store.secrets import EnvelopeCipher

_KEY_FIELDS = ("account_id", "region", "name", "version")

_metadata = sa.MetaData()
functions_table = sa.Table(
    "functions", _metadata,
    sa.Column("account_id", sa.String(12), primary_key=True),
    sa.Column("region", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(140), primary_key=True),
    sa.Column("version", sa.String(16), primary_key=True),
    sa.Column("revision_id", sa.String(64), nullable=False),
    sa.Column("doc", sa.Text, nullable=False),
)

layers_table = sa.Table(
    "layer_versions", _metadata,
    sa.Column("account_id", sa.String(12), primary_key=True),
    sa.Column("region", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(140), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("doc", sa.Text, nullable=False),
)

# the last version number each layer has ever had: numbers are never reused, even after
# the highest version is deleted and the server restarts
layer_counters_table = sa.Table(
    "layer_counters", _metadata,
    sa.Column("account_id", sa.String(12), primary_key=True),
    sa.Column("region", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(140), primary_key=True),
    sa.Column("last", sa.Integer, nullable=False),
)



class SqlMetadataStore:
    """A `MetadataStore` (see `lamina.store.protocols`) on any SQLAlchemy URL."""

    def __init__(self, url: str, cipher: EnvelopeCipher | None = None) -> None:
        self._cipher = cipher
        self.engine = _make_engine(url)
        _metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- reads -----------------------------------------------------------------------

    def get_function(self, region: str, name: str, *, version: str = LATEST,
                     account_id: str | None = None) -> FunctionConfig | None:
        t = functions_table
        query = sa.select(t.c.doc).where(t.c.region == region, t.c.name == name, t.c.version == version)
        if account_id is not None:
            query = query.where(t.c.account_id == account_id)
        with self.engine.connect() as conn:
            doc = conn.execute(query.order_by(t.c.account_id).limit(1)).scalar()
        return None if doc is None else self._decode(doc)

    def list_functions(self, region: str, marker: str | None, max_items: int, *,
                       account_id: str | None = None) -> tuple[list[FunctionConfig], str | None]:
        t = functions_table
        query = sa.select(t.c.doc).where(t.c.region == region, t.c.version == LATEST)
        if account_id is not None:
            query = query.where(t.c.account_id == account_id)
        if marker is not None:
            after = decode_marker(marker)
            if not isinstance(after, str):
                raise errors.InvalidParameterValueException("Invalid marker")
            query = query.where(t.c.name > after)
        query = query.order_by(t.c.name, t.c.account_id).limit(max(1, max_items) + 1)
        with self.engine.connect() as conn:
            docs = list(conn.execute(query).scalars())
        configs = [self._decode(d) for d in docs[:max(1, max_items)]]
        more = len(docs) > len(configs)
        return configs, (encode_marker(configs[-1].name) if more else None)

    def all_functions(self) -> list[FunctionConfig]:
        t = functions_table
        query = sa.select(t.c.doc).order_by(t.c.account_id, t.c.region, t.c.name, t.c.version)
        with self.engine.connect() as conn:
            return [self._decode(d) for d in conn.execute(query).scalars()]

    def latest_functions(self, account_id: str) -> list[FunctionConfig]:
        t = functions_table
        query = sa.select(t.c.doc).where(t.c.account_id == account_id, t.c.version == LATEST)
        with self.engine.connect() as conn:
            return [self._decode(d) for d in conn.execute(query.order_by(t.c.region, t.c.name)).scalars()]

    def function_versions(self, account_id: str, region: str, name: str) -> list[FunctionConfig]:
        t = functions_table
        query = sa.select(t.c.doc).where(t.c.account_id == account_id, t.c.region == region, t.c.name == name)
        with self.engine.connect() as conn:
            rows = [self._decode(d) for d in conn.execute(query).scalars()]
        return sorted(rows, key=lambda c: (c.published, int(c.version) if c.published else 0))

    # -- writes ----------------------------------------------------------------------

    def create_function(self, cfg: FunctionConfig) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(functions_table).values(**self._row(cfg)))
        except sa.exc.IntegrityError:
            # AWS's wording, singular "exist" included
            raise errors.ResourceConflictException(f"Function already exist: {cfg.name}") from None

    def put_function(self, cfg: FunctionConfig, *, expected_revision: str | None = None) -> None:
        row = self._row(cfg)
        t = functions_table
        with self.engine.begin() as conn:
            if expected_revision is None:
                conn.execute(_upsert(self.engine, row))
                return
            # compare-and-swap in one statement: no window between the check and the write
            result = conn.execute(
                sa.update(t)
                .where(*(t.c[k] == row[k] for k in _KEY_FIELDS), t.c.revision_id == expected_revision)
                .values(revision_id=row["revision_id"], doc=row["doc"])
            )
            if result.rowcount != 1:
                raise errors.PreconditionFailedException(revision_mismatch())

    # -- layers ------------------------------------------------------------------------

    def put_layer_version(self, layer: LayerVersion) -> None:
        row = {"account_id": layer.account_id, "region": layer.region, "name": layer.name,
               "version": layer.version, "doc": json.dumps(_encode(layer), sort_keys=True, separators=(",", ":"))}
        t = layers_table
        with self.engine.begin() as conn:  # insert, or replace the version's row (its policy changed)
            conn.execute(sa.delete(t).where(t.c.account_id == layer.account_id, t.c.region == layer.region,
                                            t.c.name == layer.name, t.c.version == layer.version))
            conn.execute(sa.insert(t).values(**row))

    def delete_layer_version(self, account_id: str, region: str, name: str, version: int) -> bool:
        t = layers_table
        with self.engine.begin() as conn:
            return conn.execute(sa.delete(t).where(
                t.c.account_id == account_id, t.c.region == region, t.c.name == name, t.c.version == version,
            )).rowcount > 0

    def all_layer_versions(self) -> list[LayerVersion]:
        t = layers_table
        with self.engine.connect() as conn:
            docs = conn.execute(sa.select(t.c.doc).order_by(t.c.name, t.c.version)).scalars()
            return [_from_json(LayerVersion, json.loads(d)) for d in docs]

    def get_layer_version(self, account_id: str, region: str, name: str, version: int) -> LayerVersion | None:
        t = layers_table
        query = sa.select(t.c.doc).where(t.c.account_id == account_id, t.c.region == region, t.c.name == name,
                                         t.c.version == version)
        with self.engine.connect() as conn:
            doc = conn.execute(query).scalar()
        return None if doc is None else _layer(doc)

    def layer_versions(self, account_id: str, region: str, name: str | None = None) -> list[LayerVersion]:
        t = layers_table
        query = sa.select(t.c.doc).where(t.c.account_id == account_id, t.c.region == region)
        if name is not None:
            query = query.where(t.c.name == name)
        with self.engine.connect() as conn:
            docs = conn.execute(query.order_by(t.c.name, t.c.version.desc())).scalars()
            return [_layer(d) for d in docs]

    def next_layer_version(self, account_id: str, region: str, name: str) -> int:
        """Take the layer's next version number, atomically (one statement: concurrent
        publishers, in this process or another, each get their own)."""
        counters, t = layer_counters_table, layers_table
        highest = sa.select(sa.func.coalesce(sa.func.max(t.c.version), 0) + 1).where(
            t.c.account_id == account_id, t.c.region == region, t.c.name == name).scalar_subquery()
        insert = _dialect_insert(self.engine)(counters).values(
            account_id=account_id, region=region, name=name, last=highest)
        statement = insert.on_conflict_do_update(
            index_elements=["account_id", "region", "name"], set_={"last": counters.c.last + 1},
        ).returning(counters.c.last)
        with self.engine.begin() as conn:
            number: int = conn.execute(statement).scalar_one()
        return number

    # -- documents ---------------------------------------------------------------------

    def _row(self, cfg: FunctionConfig) -> dict[str, Any]:
        row: dict[str, Any] = {k: getattr(cfg, k) for k in _KEY_FIELDS}
        row["revision_id"] = cfg.revision_id
        doc = _encode(cfg)
        if self._cipher is not None and cfg.environment:
            # environment values never reach the database in plain text
            plain = json.dumps(cfg.environment, separators=(",", ":")).encode()
            doc["environment"] = {_ENCRYPTED: self._cipher.encrypt(plain, _context(cfg))}
        row["doc"] = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        return row

    def _decode(self, text: str) -> FunctionConfig:
        doc = json.loads(text)
        sealed = (doc.get("environment") or {}).get(_ENCRYPTED)
        if sealed is not None:
            if self._cipher is None:
                raise ValueError("this store holds encrypted environment variables but was opened without a key")
            doc["environment"] = json.loads(self._cipher.decrypt(sealed, _context_of(doc)))
        value = _from_json(FunctionConfig, doc)
        assert isinstance(value, FunctionConfig)
        return value

    def delete_version(self, region: str, name: str, version: str, *, account_id: str | None = None) -> bool:
        t = functions_table
        statement = sa.delete(t).where(t.c.region == region, t.c.name == name, t.c.version == version)
        if account_id is not None:
            statement = statement.where(t.c.account_id == account_id)
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount > 0

    def delete_function(self, region: str, name: str, *, account_id: str | None = None) -> bool:
        t = functions_table
        statement = sa.delete(t).where(t.c.region == region, t.c.name == name)
        if account_id is not None:
            statement = statement.where(t.c.account_id == account_id)
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount > 0


# -- engine ------------------------------------------------------------------------------


def _make_engine(url: str) -> Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    in_memory = parsed.database in (None, "", ":memory:")
    if in_memory:
        # one database per connection, so every caller shares a single one (tests only)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False},
                                  poolclass=sa.pool.StaticPool)
    else:
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def _dialect_insert(engine: Engine) -> Any:
    """The dialect's INSERT, which has ON CONFLICT … DO UPDATE (SQLite and PostgreSQL)."""
    if engine.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    raise NotImplementedError(f"no upsert for {engine.dialect.name}")


def _upsert(engine: Engine, row: dict[str, Any]) -> Any:
    values = {"revision_id": row["revision_id"], "doc": row["doc"]}
    return _dialect_insert(engine)(functions_table).values(**row).on_conflict_do_update(
        index_elements=list(_KEY_FIELDS), set_=values)


def _layer(doc: str) -> LayerVersion:
    value = _from_json(LayerVersion, json.loads(doc))
    assert isinstance(value, LayerVersion)
    return value


# -- FunctionConfig <-> JSON ---------------------------------------------------------------


_ENCRYPTED = "__encrypted__"


def _context(cfg: FunctionConfig) -> bytes:
    """Binds a ciphertext to its function version, so that it cannot be moved to another."""
    return f"{cfg.account_id}/{cfg.region}/{cfg.name}/{cfg.version}".encode()


def _context_of(doc: dict[str, Any]) -> bytes:
    return f"{doc['account_id']}/{doc['region']}/{doc['name']}/{doc['version']}".encode()


def _encode(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list | frozenset | set):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in function metadata")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _from_json(tp: Any, value: Any) -> Any:
    """Rebuild a value of type `tp` from its JSON form, guided by the type hints."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        last: Exception | None = None
        for arg in typing.get_args(tp):
            if arg is type(None):
                continue
            try:
                return _from_json(arg, value)
            except (TypeError, ValueError, KeyError) as exc:
                last = exc
        raise TypeError(f"{value!r} fits none of {tp}") from last
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_json(args[0], v) for v in value)
        return tuple(_from_json(a, v) for a, v in zip(args, value, strict=True))
    if origin in (list, frozenset, set):
        (arg,) = typing.get_args(tp)
        return origin(_from_json(arg, v) for v in value)
    if origin is dict:
        key_tp, val_tp = typing.get_args(tp)
        return {_from_json(key_tp, k): _from_json(val_tp, v) for k, v in value.items()}
    if tp is Any:
        return value
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            return tp(value)
        if dataclasses.is_dataclass(tp):
            hints = _hints(tp)
            known = {f.name for f in dataclasses.fields(tp) if f.init}
            # fields added later take their defaults; fields since removed are ignored
            kwargs = {k: _from_json(hints[k], v) for k, v in value.items() if k in known}
            return tp(**kwargs)
        if tp is float and isinstance(value, int):
            return float(value)
        if tp in (str, int, float, bool) and not isinstance(value, tp):
            raise TypeError(f"{value!r} is not {tp.__name__}")
        return value
    return value
