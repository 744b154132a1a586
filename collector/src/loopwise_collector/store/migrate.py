"""Numbered schema migrations, applied at start and recorded in ``schema_migrations``.

Each ``migrations/NNNN_name.sql`` file holds statements separated by ``;`` at line end, written
once for both topologies. Tokens: ``$db``, ``$on_cluster``, ``$replicated``, ``$local`` and
``$cluster``. A statement whose first line is ``-- @cluster`` runs only on a cluster, where tables
become ``Replicated*`` ``*_local`` tables behind ``Distributed`` ones of the plain name.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from importlib import resources
from string import Template

from clickhouse_connect.driver.client import Client

from loopwise_collector.store._connection import quote_identifier, translate_errors

log = logging.getLogger("loopwise.store")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_CLUSTER_MARK = "-- @cluster"


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered migration file.

    Example:
        >>> m = load_migrations()[0]
        >>> (m.number, m.name)
        (1, 'spans_scores')
    """

    number: int
    name: str
    sql: str

    def statements(self, database: str, cluster: str | None) -> list[str]:
        """The statements to run for this topology, with tokens filled in."""
        tokens = {
            "db": quote_identifier(database),
            "on_cluster": f"ON CLUSTER {quote_identifier(cluster)}" if cluster else "",
            "replicated": "Replicated" if cluster else "",
            "local": "_local" if cluster else "",
            "cluster": f"'{cluster}'" if cluster else "''",
        }
        out = []
        for raw in re.split(r";\s*\n", Template(self.sql).substitute(tokens)):
            lines = [ln for ln in raw.strip().splitlines() if ln.strip()]
            cluster_only = any(ln.strip() == _CLUSTER_MARK for ln in lines)
            body = "\n".join(ln for ln in lines if not ln.lstrip().startswith("--")).strip().rstrip(";")
            if body and (cluster or not cluster_only):
                out.append(body)
        return out


def load_migrations() -> list[Migration]:
    """All bundled migrations in order; numbers must be contiguous from 1."""
    found = []
    for entry in resources.files("loopwise_collector.store.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.number)
    if [m.number for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration numbers are not contiguous: {[m.number for m in found]}")
    return found


def apply_migrations(client: Client, database: str, cluster: str | None = None) -> list[int]:
    """Create the database and apply every migration not yet recorded; returns those applied.

    Idempotent and safe to race: statements are ``IF NOT EXISTS`` and the record is only read.
    """
    db = quote_identifier(database)
    on_cluster = f"ON CLUSTER {quote_identifier(cluster)}" if cluster else ""
    engine = "ReplicatedMergeTree" if cluster else "MergeTree"
    with translate_errors():
        client.command(f"CREATE DATABASE IF NOT EXISTS {db} {on_cluster}")
        client.command(
            f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations {on_cluster} "
            f"(number UInt32, name String, applied_at DateTime64(3, 'UTC')) ENGINE = {engine} ORDER BY number"
        )
        done = {row[0] for row in client.query(f"SELECT DISTINCT number FROM {db}.schema_migrations").result_rows}  # noqa: S608 - db is a validated identifier
        applied = []
        for migration in load_migrations():
            if migration.number in done:
                continue
            log.info("applying migration %04d_%s to %s", migration.number, migration.name, database)
            for statement in migration.statements(database, cluster):
                client.command(statement)
            client.insert(
                f"{db}.schema_migrations",
                [[migration.number, migration.name, time.time_ns() // 1_000_000]],
                column_names=["number", "name", "applied_at"],
            )
            applied.append(migration.number)
    return applied
