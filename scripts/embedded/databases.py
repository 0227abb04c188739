"""The stack's SQLite databases: migrate only when needed, start fresh ones from a template.

`airflow db migrate` costs about six CPU-seconds even on a database already at head, and
`mlflow server` runs every MLflow migration when it finds an empty database. Both are
paid at every start on two cores unless avoided:

* after a successful migration, a stamp `<package version> <alembic revision>` is written
  next to the database; the next start skips the migration while the venv's package
  version and the database's revision still match it (read with sqlite3, no import);
* the first fresh database a package version produces is kept, untouched, under
  `<venvs>/.db-templates/`; a later fresh start copies it instead of migrating from empty.
  It lives beside the venvs because it depends only on the installed version: a venv
  rebuilt with another version gets a template of its own.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def installed_version(venv: Path, distribution: str) -> str | None:
    """The version of `distribution` in `venv`, from its dist-info folder (no import)."""
    prefix = f"{distribution}-"
    for info in sorted(venv.glob(f"lib/python*/site-packages/{prefix}*.dist-info")):
        return info.name[len(prefix) : -len(".dist-info")]
    return None


def alembic_revision(db: Path) -> str | None:
    """The revision stamped in an alembic-managed SQLite database, None when there is none."""
    if not db.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def _copy(source: Path, dest: Path) -> None:
    """A consistent copy (sqlite3 backup API), renamed into place so no reader sees half."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with (
            contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src,
            contextlib.closing(sqlite3.connect(tmp)) as dst,
        ):
            src.backup(dst)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


@dataclass(frozen=True)
class ManagedDatabase:
    """One SQLite database of the stack, owned by the package `name` at `version`."""

    path: Path
    templates: Path
    name: str
    version: str | None

    @property
    def stamp(self) -> Path:
        return self.path.with_name(self.path.name + ".migrated")

    @property
    def template(self) -> Path | None:
        return None if self.version is None else self.templates / f"{self.name}-{self.version}.db"

    def is_current(self) -> bool:
        """True when the last migration ran with this package version and nothing changed since."""
        if self.version is None or not self.stamp.exists():
            return False
        return self.stamp.read_text().strip() == f"{self.version} {alembic_revision(self.path)}"

    def mark_migrated(self) -> None:
        if self.version is not None:
            self.stamp.write_text(f"{self.version} {alembic_revision(self.path)}\n")

    def start_from_template(self) -> bool:
        """Copy the template into place when there is no database yet; False when not possible."""
        template = self.template
        if self.path.exists() or template is None or not template.exists():
            return False
        _copy(template, self.path)
        self.mark_migrated()
        return True

    def keep_as_template(self, empty_when_pristine: Sequence[str] = ()) -> bool:
        """Save this database as the template unless one exists or a query finds user data.

        Each query of `empty_when_pristine` must return 0 on a database nobody used yet.
        """
        template = self.template
        if template is None or template.exists() or alembic_revision(self.path) is None:
            return False
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as conn:
            for query in empty_when_pristine:
                if conn.execute(query).fetchone()[0]:
                    return False
        _copy(self.path, template)
        return True
