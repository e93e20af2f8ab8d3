"""Where the app's dataset, run and generators come from (no streamlit here, so it is testable).

Resolution order for the default, first match wins:

1. environment variables ``BRAINIT_APP_DATA``, ``BRAINIT_APP_RUN``, ``BRAINIT_APP_GENERATORS``;
2. the shipped demo bundle ``assets/demo/{dataset,run,generators}`` (the app works the moment it is
   installed);
3. a locally trained demo: ``~/.brainit/twin-demo-seed0``, ``~/.brainit/runs/demo``,
   ``~/.brainit/generators/demo`` (``python -m brainit_core train-demo``).

Other datasets and runs under the data directory (``$BRAINIT_DATA`` or ``~/.brainit``) are
listed for the sidebar by :func:`discover`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from brainit_core.utils import assets_dir, default_data_dir


@dataclass(frozen=True)
class Sources:
    """Paths of one app configuration.

    Attributes
    ----------
    dataset : Path or None
        Canonical dataset directory (``dataset.json`` inside).
    run : Path or None
        Trained Brain-IT run (``run.json`` + ``bit.safetensors``).
    generators : Path or None
        Generators directory (``generators.json``).
    origin : str
        ``"env"``, ``"bundle"``, ``"local"`` or ``"none"``.
    problems : tuple of str
        What is missing, in words a user can act on.
    """

    dataset: Path | None
    run: Path | None
    generators: Path | None
    origin: str = "none"
    problems: tuple = field(default_factory=tuple)

    @property
    def complete(self) -> bool:
        return not self.problems


def is_dataset(path) -> bool:
    return path is not None and (Path(path) / "dataset.json").is_file()


def is_run(path) -> bool:
    return path is not None and (Path(path) / "run.json").is_file() and (Path(path) / "bit.safetensors").is_file()


def is_generators(path) -> bool:
    return path is not None and (Path(path) / "generators.json").is_file()


def check(dataset, run, generators, origin: str) -> Sources:
    """Wrap three paths as :class:`Sources`, listing what is missing or malformed."""
    problems = []
    dataset, run, generators = (Path(p).expanduser() if p else None for p in (dataset, run, generators))
    if not is_dataset(dataset):
        problems.append(f"dataset: {dataset} has no dataset.json (build a twin on the Data page, "
                        "or `python -m brainit_core twin build`)")
    if not is_run(run):
        problems.append(f"run: {run} needs run.json and bit.safetensors (`python -m brainit_core train-demo`)")
    if not is_generators(generators):
        problems.append(f"generators: {generators} has no generators.json (`python -m brainit_core train-demo`)")
    return Sources(dataset, run, generators, origin, tuple(problems))


def bundle_dir() -> Path:
    """The shipped demo bundle."""
    return assets_dir() / "demo"


def default_sources() -> Sources:
    """The configuration the app opens with (see the module docstring for the order)."""
    env = [os.environ.get(k) for k in ("BRAINIT_APP_DATA", "BRAINIT_APP_RUN", "BRAINIT_APP_GENERATORS")]
    if any(env):
        return check(*env, origin="env")
    b = bundle_dir()
    bundle = check(b / "dataset", b / "run", b / "generators", origin="bundle")
    if bundle.complete:
        return bundle
    d = default_data_dir()
    local = check(d / "twin-demo-seed0", d / "runs" / "demo", d / "generators" / "demo", origin="local")
    if local.complete:
        return local
    return bundle


def discover(root=None) -> dict[str, list[Path]]:
    """Datasets, runs and generator directories found under the bundle and the data directory.

    Looks two levels deep (``root/x`` and ``root/x/y``), which covers ``~/.brainit/<dataset>``,
    ``~/.brainit/runs/<run>`` and ``~/.brainit/generators/<name>``.
    """
    roots = [bundle_dir(), Path(root).expanduser() if root else default_data_dir()]
    found: dict[str, list[Path]] = {"dataset": [], "run": [], "generators": []}
    for r in roots:
        if not r.is_dir():
            continue
        candidates = [r] + [p for p in sorted(r.iterdir()) if p.is_dir()]
        candidates += [q for p in candidates[1:] for q in sorted(p.iterdir()) if q.is_dir()]
        for p in candidates:
            for kind, test in (("dataset", is_dataset), ("run", is_run), ("generators", is_generators)):
                if test(p) and p not in found[kind]:
                    found[kind].append(p)
    return found


def run_subjects(run) -> list[str]:
    """Subjects a run decodes, read from its ``bit.json`` without loading weights."""
    meta = Path(run) / "bit.json"
    if not meta.is_file():
        return []
    record = json.loads(meta.read_text())
    for holder in (record, record.get("config", {}), record.get("meta", {})):
        if isinstance(holder, dict) and holder.get("subjects"):
            return list(holder["subjects"])
    return []
