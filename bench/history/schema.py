"""The history's tables, one schema for SQLite and PostgreSQL (SQLAlchemy Core).

- ``runs``: one row per stored run — its id, when it was created (UTC, ISO 8601, so that
  text order is time order), the suite's version and git commit, whether it completed, and
  the whole results.json document, from which ``Run.from_json`` re-loads it;
- ``environments``: each environment of a run and the machine it was — hostname, CPU
  model and count, kernel release, accel (native, kvm, tcg);
- ``series``: one row per environment and configuration of a run: every field of the
  configuration (bench/results/rows.py CONFIG_FIELDS: impl, mode, size, topology,
  outstanding, load, arrivals, placement, factor levels, server options) and its label;
- ``values``: the per-round values of every metric of a series: metric, round, value.

A value is identified by its joins: value → series (configuration) → environment (machine,
kernel, accel) → run (created, version, commit).  ``meta`` records the schema's version.
"""

from __future__ import annotations

import sqlalchemy as sa

from bench import factors
from bench.results.rows import CONFIG_FIELDS

SCHEMA_VERSION = "hellobench-history/1"

metadata = sa.MetaData()

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(128), nullable=False, unique=True),
    sa.Column("created", sa.String(40), nullable=False, index=True),
    sa.Column("added", sa.String(40), nullable=False),
    sa.Column("suite_version", sa.String(64)),
    sa.Column("git_commit", sa.String(64)),
    sa.Column("complete", sa.Boolean, nullable=False),
    sa.Column("document", sa.Text, nullable=False),
)

environments = sa.Table(
    "environments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), nullable=False, index=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("hostname", sa.String(256), nullable=False),
    sa.Column("cpu_model", sa.String(256), nullable=False),
    sa.Column("cpu_count", sa.Integer, nullable=False),
    sa.Column("kernel", sa.String(256), nullable=False),
    sa.Column("accel", sa.String(32)),
    sa.UniqueConstraint("run", "name"),
    sa.Index("environments_machine", "hostname", "cpu_model", "cpu_count", "kernel"),
)

series = sa.Table(
    "series",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("environment", sa.Integer, sa.ForeignKey("environments.id"), nullable=False,
              index=True),
    sa.Column("impl", sa.String(128), nullable=False, index=True),
    sa.Column("mode", sa.String(32), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("topology", sa.String(32), nullable=False),
    sa.Column("outstanding", sa.Integer),
    sa.Column("load_fraction", sa.Float),
    sa.Column("offered_rps", sa.Float),
    sa.Column("server_cpu", sa.Integer),
    sa.Column("client_cpu", sa.Integer),
    # a run factor's column comes from its entry (bench/factors.py): a new factor is a new
    # column and so a new SCHEMA_VERSION (tests pin each version's columns)
    *(sa.Column(name, sa.String(32), nullable=False) for name in factors.NAMES),
    sa.Column("server_options", sa.String(512), nullable=False),
    sa.Column("configuration", sa.String(1024), nullable=False),
)  # fmt: skip
# the configuration fields as columns of ``series`` (the environment name is the
# environment row's)
SERIES_FIELDS = tuple(c.name for c in series.columns if c.name in CONFIG_FIELDS)

values = sa.Table(
    "values",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("series", sa.Integer, sa.ForeignKey("series.id"), nullable=False),
    sa.Column("metric", sa.String(64), nullable=False, index=True),
    sa.Column("round", sa.Integer, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.UniqueConstraint("series", "metric", "round"),
)
