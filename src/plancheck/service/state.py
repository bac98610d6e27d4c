"""What the service checks with: an immutable snapshot of rulebook, limits, plans and engine.

A snapshot is built whole or not at all. Reloading (SIGHUP, or a file change seen by the
watcher) builds a new one beside the old and swaps a single reference, so a request sees one
consistent set from start to finish; a broken file leaves the old snapshot in place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from plancheck import rulebook as rulebook_law
from plancheck.documents.plan import Plan, load_plans
from plancheck.documents.yamlio import read_document
from plancheck.engine import Engine
from plancheck.rulebook.limits import LimitTable
from plancheck.rulebook.rules import Rulebook

WATCHED_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Snapshot:
    """Everything one check needs, loaded together and never changed afterwards."""

    rulebook: Rulebook
    limits: LimitTable
    plans: Mapping[str, Plan]
    plan_files: Mapping[str, Path]
    #: Each plan document as its file gives it (JSON types: dates as ISO text), in the document's own units.
    plan_documents: Mapping[str, dict]
    engine: Engine
    #: Hash of every file under the rules directory (the events' `ruleset_revision`).
    revision: str
    #: Hash of the plan documents' contents.
    plans_revision: str
    loaded_at: str
    #: (path, mtime_ns, size) of every watched file, to notice changes without reading them.
    fingerprint: tuple = field(repr=False)


def fingerprint(rules_dir: Path, plans_dir: Path) -> tuple:
    """Cheap identity of the files a snapshot is built from: paths, modification times and sizes."""
    entries = []
    for root in (rules_dir, plans_dir):
        if not root.is_dir():
            entries.append((str(root), None, None))
            continue
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() in WATCHED_SUFFIXES and path.is_file():
                stat = path.stat()
                entries.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(entries)


def load_snapshot(rules_dir: Path, plans_dir: Path) -> Snapshot:
    """Read rules, limits and plans and build the engine; raises InputError naming every problem."""
    from plancheck.checks.ruleset import built_facts
    seen = fingerprint(rules_dir, plans_dir)
    rulebook, limits = rulebook_law.load(rules_dir, built_facts())  # the law, loaded in one place
    loaded = load_plans(plans_dir)
    digest = hashlib.sha256()
    for plan_id in sorted(loaded):
        digest.update(loaded[plan_id][1].read_bytes())
    return Snapshot(
        rulebook=rulebook, limits=limits,
        plans=MappingProxyType({pid: plan for pid, (plan, _) in loaded.items()}),
        plan_files=MappingProxyType({pid: path for pid, (_, path) in loaded.items()}),
        plan_documents=MappingProxyType({pid: json.loads(json.dumps(read_document(path), default=str))
                                         for pid, (_, path) in loaded.items()}),
        engine=Engine(rulebook), revision=rulebook.revision, plans_revision=digest.hexdigest()[:12],
        loaded_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), fingerprint=seen)
