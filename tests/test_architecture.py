"""The layering rules of ARCHITECTURE.md, checked on the source: they fail the moment someone breaks them."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "brainit_core"
MODULES = sorted(CORE.rglob("*.py"))
PAGES = sorted((ROOT / "pages").glob("*.py"))


def _imports(path: Path):
    """(module imported, names imported from it) for every import statement of ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [a.name for a in node.names]


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


# ARCHITECTURE.md's layers, top to bottom: a module may import its own layer and the ones above it
LAYERS = (
    ("foundations", ("errors", "fileio", "locks", "checkpoint", "progress", "utils", "stimulus")),
    ("formats", ("runs", "data.info", "data.dataset", "data.writer")),
    ("data sources", ("data", "data.nsd", "data.nsd_files", "data.twin", "data.uploads", "data.summary")),
    ("features", ("features",)),
    ("drawing", ("viz",)),
    ("metrics", ("metrics", "baselines")),
    ("models", ("models",)),
    ("reconstruction", ("reconstruction",)),
    ("analysis", ("analysis",)),
    ("benchmark", ("benchmark",)),
    ("command line and packaging", ("cli", "cli_types", "__main__", "bundle", "app_sources", "demo_cli", "data.nsd_cli",
                                    "data.twin.cli", "models.cli", "reconstruction.cli", "reconstruction.branches_cli", "metrics.cli",
                                    "benchmark.cli")),
    ("app", ("ui",)),
)


def _layer(module: str) -> int | None:
    """Index in LAYERS of the longest prefix that names ``module`` (None: the package itself)."""
    name = module.removeprefix("brainit_core").removeprefix(".").removesuffix(".__init__")
    best = None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (i, len(p))
    return None if best is None else best[0]


def test_every_module_has_a_layer_and_imports_only_upward():
    offenders = []
    for path in MODULES:
        own = _layer(_module_name(path))
        if path.name == "__init__.py" and path.parent == CORE:
            continue
        if own is None:
            offenders.append(f"{path.relative_to(ROOT)} is in no layer of ARCHITECTURE.md")
            continue
        for module, _ in _imports(path):
            if not module.startswith("brainit_core.") or (target := _layer(module)) is None:
                continue
            if target > own:
                offenders.append(f"{path.relative_to(ROOT)} ({LAYERS[own][0]}) imports {module} "
                                 f"({LAYERS[target][0]}, a lower layer)")
    assert not offenders, "\n".join(offenders)


def test_the_core_never_imports_streamlit_or_the_ui():
    offenders = []
    for path in MODULES:
        if path.is_relative_to(CORE / "ui"):
            continue
        for module, _ in _imports(path):
            if module.split(".")[0] == "streamlit" or module.startswith("brainit_core.ui"):
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not offenders, "\n".join(offenders)


def test_no_module_imports_another_modules_private_names():
    offenders = []
    for path in MODULES + PAGES + sorted((ROOT / "scripts").glob("*.py")) + [ROOT / "app.py"]:
        for module, names in _imports(path):
            if not module.startswith("brainit_core"):
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            hidden = [p for p in module.split(".") if p.startswith("_") and not p.startswith("__")]
            if (private or hidden) and module != _module_name(path):
                offenders.append(f"{path.relative_to(ROOT)}: from {module} import {', '.join(names)}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("limit, paths", [(400, MODULES), (150, PAGES)], ids=["modules", "pages"])
def test_size_limits(limit, paths):
    too_long = {str(p.relative_to(ROOT)): n for p in paths if (n := len(p.read_text().splitlines())) > limit}
    assert not too_long, f"over {limit} lines: {too_long}"


def test_run_and_dataset_records_are_parsed_in_one_place():
    """run.json / bit.json / dataset.json are read through RunDirectory and DatasetInfo only."""
    owners = {CORE / "runs.py", CORE / "data" / "info.py"}
    offenders = []
    for path in MODULES + PAGES:
        if path in owners:
            continue
        text = path.read_text()
        for name in ("run.json", "bit.json", "dataset.json"):
            for line in text.splitlines():
                if name in line and ("read_text" in line or "json.load" in line or "read_json" in line):
                    offenders.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
