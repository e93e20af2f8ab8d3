"""Facts about installed Debian packages, read from their files: versions (dpkg's status) and licences.

Nothing here runs ``dpkg``: versions come from ``<root>/var/lib/dpkg/status`` and licences from
``<root>/usr/share/doc/<package>/copyright``, so a fake system root in a test works the same way.
"""
from __future__ import annotations

import fnmatch
from pathlib import Path


def package_versions(root, packages) -> dict[str, str]:
    """Installed versions from ``<root>/var/lib/dpkg/status`` (``"unknown"`` when dpkg does not list one).

    Parameters
    ----------
    root : str or PathLike
        System root (``/`` on an installed system).
    packages : list of str
        Package names.

    Returns
    -------
    dict
        Package name -> version string.
    """
    status = Path(root) / "var/lib/dpkg/status"
    found: dict[str, str] = {}
    try:
        text = status.read_text(errors="replace")
    except OSError:
        text = ""
    for para in text.split("\n\n"):
        fields = dict(line.split(":", 1) for line in para.splitlines() if ":" in line and not line.startswith(" "))
        name = fields.get("Package", "").strip()
        if name in packages and "installed" in fields.get("Status", "").split()[-1:]:
            found[name] = fields.get("Version", "").strip() or "unknown"
    return {p: found.get(p, "unknown") for p in packages}


def read_licences(copyright_path) -> list[tuple[list[str], str]]:
    """The (file patterns, licence) stanzas of a Debian copyright file, in order.

    A machine-readable (DEP-5) file gives one entry per ``Files:`` stanza; any other file gives one
    entry for ``*``: ``"public-domain"`` when it dedicates the work to the public domain, else the
    first ``License:``-like line, else ``"see <path>"``.
    """
    path = Path(copyright_path)
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return [(["*"], f"unknown (no {path})")]
    stanzas = []
    for para in text.split("\n\n"):
        lines = para.splitlines()
        files, licence, in_files = [], None, False
        for line in lines:
            if line.startswith("Files:"):
                files, in_files = line[6:].split(), True
            elif in_files and line.startswith((" ", "\t")) and licence is None:
                files += line.split()
            else:
                in_files = False
                if line.startswith("License:") and licence is None:
                    licence = line[8:].strip()
        if files and licence:
            stanzas.append((files, licence))
    if stanzas:
        return stanzas
    low = text.lower()
    if "public domain" in low:
        return [(["*"], "public-domain")]
    return [(["*"], f"see {path}")]


def licence_of(stanzas, relpath: str) -> str:
    """The licence of ``relpath`` (path inside the package folder): the last matching stanza wins, as DEP-5 says."""
    result = "unknown"
    for patterns, licence in stanzas:
        if any(fnmatch.fnmatch(relpath, p) or fnmatch.fnmatch(relpath, "*/" + p) for p in patterns):
            result = licence
    return result
