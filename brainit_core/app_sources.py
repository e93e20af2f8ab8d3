"""Where the app's dataset, run and generators come from (no streamlit: the app's sidebar calls it).

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

import os
from dataclasses import dataclass, field
from pathlib import Path

from brainit_core.data.info import DatasetInfo
from brainit_core.errors import BrainITError
from brainit_core.runs import (RunDirectory, generators_fit, generators_kind, generators_problem, generators_settings,
                               generators_space)
from brainit_core.utils import assets_dir, default_data_dir


@dataclass(frozen=True)
class Sources:
    """Paths of one app configuration.

    Attributes
    ----------
    dataset : Path or None
        Canonical dataset directory (:class:`~brainit_core.data.info.DatasetInfo`).
    run : Path or None
        Finished Brain-IT run (:class:`~brainit_core.runs.RunDirectory`).
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


def is_generators(path) -> bool:
    return path is not None and (Path(path) / "generators.json").is_file()


def check(dataset, run, generators, origin: str) -> Sources:
    """Wrap three paths as :class:`Sources`, listing what is missing or malformed."""
    problems = []
    dataset, run, generators = (Path(p).expanduser() if p else None for p in (dataset, run, generators))
    if dataset is None:
        problems.append("dataset: none found (build a twin on the Data page, or `python -m brainit_core twin build`)")
    else:
        try:
            DatasetInfo(dataset)
        except BrainITError as exc:
            problems.append(f"dataset: {exc} (or build a twin on the Data page)")
    if not RunDirectory.is_run(run):
        problems.append(f"run: {run} needs run.json, bit.safetensors and bit.json (`python -m brainit_core train-demo`)")
    if generators is None:
        problems.append("generators: None has no generators.json (`python -m brainit_core train-demo`)")
    elif (problem := generators_problem(generators)) is not None:
        problems.append(f"generators: {problem}")
    elif RunDirectory.is_run(run) and not _fits(run, generators):
        problems.append(f"generators: {generators} were made for the feature space {generators_space(generators)}; "
                        f"the run predicts {RunDirectory(run).space} (choose generators made for it)")
    return Sources(dataset, run, generators, origin, tuple(problems))


def _fits(run, generators) -> bool:
    try:
        return generators_fit(run, generators)
    except (BrainITError, OSError):
        return False


def generator_choices(run, candidates) -> list[str]:
    """The generator directories among ``candidates`` made for ``run``'s feature space (all of them when
    none is, or when there is no readable run: :func:`check` then says what is wrong)."""
    fitting = [str(g) for g in candidates if run and _fits(run, g)]
    return fitting or [str(g) for g in candidates]


def generators_label(path) -> str:
    """``"generators/demo"``, with ``· SDXL`` for a full-size SDXL set and ``· stage 2`` for a fine-tune."""
    p = Path(path)
    label = f"{p.parent.name}/{p.name}" if p.parent.name else p.name
    settings = generators_settings(p) or {}
    if generators_kind(p) == "sdxl":
        label += " · SDXL"
    if settings.get("stage2"):
        label += " · stage 2"
    return label


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
            for kind, test in (("dataset", DatasetInfo.is_dataset), ("run", RunDirectory.is_run),
                               ("generators", is_generators)):
                if test(p) and p not in found[kind]:
                    found[kind].append(p)
    return found
