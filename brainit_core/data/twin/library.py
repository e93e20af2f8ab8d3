"""The stimulus library: free pictures installed from Debian packages, indexed by category.

Objects with transparency come from ``openclipart-png`` and ``tuxpaint-stamps-default``,
photographic backgrounds from ``mate-backgrounds`` and ``plasma-workspace-wallpapers``, and words
are drawn with DejaVu Sans Bold (``fonts-dejavu-core``) when it is installed. All four picture
packages are required; install them with :data:`INSTALL_COMMAND`.

The index records, for every usable picture, its path, package, package version, licence (from the
package's ``copyright`` file), category (:mod:`.taxonomy`), size and the box of its opaque pixels.
Files that cannot be decoded are skipped and counted, never silently dropped. The library version
is a hash of the sorted (relative path, size) list of the packages' files, the package versions,
the font, the index format and the taxonomy's rules; the index is cached as JSON under
``default_data_dir()/library/index-<version>.json`` and rebuilt when the version changes.

Paths are found under a root (a system root: ``/`` by default, or the ``root`` argument, or
``$BRAINIT_LIBRARY_ROOT``), so that tests can build a tiny fake library in a temporary folder with
the same layout (``usr/share/openclipart/png/...``, ``usr/share/doc/<package>/copyright``,
``var/lib/dpkg/status``).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainit_core.data.twin.packages import licence_of, package_versions, read_licences
from brainit_core.data.twin.taxonomy import (BACKGROUND_PACKAGES, CATEGORIES, OBJECT_PACKAGES, background_kind,
                                             categorise, taxonomy_fingerprint)
from brainit_core.errors import BrainITError
from brainit_core.fileio import try_read_json, write_json
from brainit_core.utils import default_data_dir

INSTALL_COMMAND = "apt-get install openclipart-png tuxpaint-stamps-default mate-backgrounds plasma-workspace-wallpapers"
ENV_ROOT = "BRAINIT_LIBRARY_ROOT"
INDEX_FORMAT = 1  # bump when what is measured changes (taxonomy changes are caught by taxonomy_fingerprint)
PACKAGE_FOLDERS = {"openclipart-png": "usr/share/openclipart/png",
                   "tuxpaint-stamps-default": "usr/share/tuxpaint/stamps",
                   "mate-backgrounds": "usr/share/backgrounds/mate",
                   "plasma-workspace-wallpapers": "usr/share/wallpapers"}
FONT_PACKAGE, FONT_PATH = "fonts-dejavu-core", "usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
_SUFFIXES = {".png", ".jpg", ".jpeg", ".txt"}
_MAX_PIXELS = 24_000_000  # a picture larger than this is left out as too large (a few posters of 10^8 pixels)
_MAX_FILL = 0.97  # an object whose opaque box is this full is a rectangle (a photo with its backdrop): left out
_MIN_SIDE = 12  # an object whose opaque box is smaller than this (pixels) is left out as too small


class MissingLibraryError(BrainITError, FileNotFoundError):
    """A package of the stimulus library is not installed; the message names the install command."""


@dataclass(frozen=True)
class LibrarySource:
    """One package of the library: where its pictures and its copyright file are."""

    package: str
    folder: Path
    role: str  # "objects" or "backgrounds"
    copyright: Path


def library_root(root=None) -> Path:
    """The system root the library is found under: ``root``, else ``$BRAINIT_LIBRARY_ROOT``, else ``/``."""
    return Path(root or os.environ.get(ENV_ROOT) or "/").expanduser()


def default_sources(root=None) -> list[LibrarySource]:
    """The four packages' folders under :func:`library_root`."""
    base = library_root(root)
    return [LibrarySource(p, base / PACKAGE_FOLDERS[p], "objects" if p in OBJECT_PACKAGES else "backgrounds",
                          base / "usr/share/doc" / p / "copyright") for p in OBJECT_PACKAGES + BACKGROUND_PACKAGES]


def list_files(sources) -> list[tuple[str, int]]:
    """Sorted ``("<package>/<relative path>", size)`` of the sources' pictures and descriptions."""
    out = []
    for src in sources:
        for path in src.folder.rglob("*"):
            if path.suffix.lower() in _SUFFIXES and path.is_file():
                out.append((f"{src.package}/{path.relative_to(src.folder).as_posix()}", path.stat().st_size))
    return sorted(out)


def library_version(files, versions: dict, font: dict | None) -> str:
    """16 hex digits of sha256 over the file list, the package versions, the font, :data:`INDEX_FORMAT` and the taxonomy's rules."""
    h = hashlib.sha256(f"format {INDEX_FORMAT} taxonomy {taxonomy_fingerprint()}\n".encode())
    for name in sorted(versions):
        h.update(f"package {name} {versions[name]}\n".encode())
    h.update(f"font {font['package'] + ' ' + font['version'] + ' ' + str(font['size']) if font else 'none'}\n".encode())
    for rel, size in files:
        h.update(f"{rel}\t{size}\n".encode())
    return h.hexdigest()[:16]


@dataclass
class LibraryIndex:
    """The indexed library.

    Attributes
    ----------
    version : str
        The library version (:func:`library_version`).
    root : Path
        The system root the paths are resolved under.
    items : list of dict
        Usable objects, sorted by path: ``id``, ``path`` (``<package>/<relative path>``), ``package``,
        ``category``, ``width``, ``height``, ``box`` (x0, y0, x1, y1 of the opaque pixels), ``fill``
        (opaque fraction of the box), ``description``, ``licence``.
    backgrounds : list of dict
        One picture per background: ``id``, ``path``, ``package``, ``kind`` (scene, closeup, abstract,
        unknown), ``shows`` (a close-up's category), ``width``, ``height``, ``licence``.
    packages : dict
        Per package: ``version``, ``folder``, ``copyright``.
    font : dict or None
        ``path`` (under the root), ``package``, ``version``, ``size`` in bytes; ``None`` when not installed.
    counts : dict
        ``items``, ``per_category``, ``backgrounds`` per kind, and the pictures left out:
        ``not_in_taxonomy``, ``no_transparency``, ``rectangular`` (97% of the opaque box filled),
        ``too_small``, ``too_large`` (over 24 million pixels),
        ``unreadable``.
    skipped : list of dict
        Every unreadable file: ``path`` and ``reason``.
    """

    version: str
    root: Path
    items: list
    backgrounds: list
    packages: dict
    font: dict | None
    counts: dict
    skipped: list = field(default_factory=list)

    def path(self, entry: dict) -> Path:
        """The absolute file of an item or background."""
        package, rel = entry["path"].split("/", 1)
        return self.root / PACKAGE_FOLDERS[package] / rel

    def font_path(self) -> Path | None:
        return self.root / self.font["path"] if self.font else None

    def by_category(self) -> dict[str, list[int]]:
        """Item ids per category (every category of :data:`CATEGORIES`, possibly empty)."""
        out: dict[str, list[int]] = {c: [] for c in CATEGORIES}
        for item in self.items:
            out[item["category"]].append(item["id"])
        return out

    def scene_backgrounds(self, kinds=("scene",)) -> list[int]:
        """Ids of the backgrounds of the given kinds (``"scene"``, ``"closeup"``)."""
        return [b["id"] for b in self.backgrounds if b["kind"] in kinds]

    def to_json(self) -> dict:
        return {"format": INDEX_FORMAT, "version": self.version, "items": self.items, "backgrounds": self.backgrounds,
                "packages": self.packages, "font": self.font, "counts": self.counts, "skipped": self.skipped}

    def report(self) -> str:
        """A few lines for people: counts per category, backgrounds, what was left out and skipped."""
        c = self.counts
        cats = ", ".join(f"{k} {c['per_category'][k]}" for k in CATEGORIES)
        bgs = ", ".join(f"{k} {v}" for k, v in c["backgrounds"].items())
        return (f"stimulus library {self.version}: {c['items']} objects ({cats}); backgrounds: {bgs}; left out: "
                f"{c['not_in_taxonomy']} not in the taxonomy, {c['no_transparency']} without transparency, "
                f"{c['rectangular']} rectangular, "
                f"{c['too_small']} too small, {c['too_large']} too large; skipped {c['unreadable']} unreadable files"
                + (f" (first: {self.skipped[0]['path']}: {self.skipped[0]['reason']})" if self.skipped else ""))


def _check_installed(sources) -> None:
    missing = [f"{s.package} ({s.folder})" for s in sources
               if not s.folder.is_dir() or not any(p.suffix.lower() in (".png", ".jpg") for p in s.folder.rglob("*"))]
    if missing:
        raise MissingLibraryError(f"the twin's stimulus library is not installed: no pictures of {', '.join(missing)}. "
                                  f"Install it with: sudo {INSTALL_COMMAND}")


def _identity(base: Path, sources) -> tuple[str, dict, dict | None]:
    """(library version, package versions, font record) of the installed library."""
    versions = package_versions(base, [s.package for s in sources] + [FONT_PACKAGE])
    font_version = versions.pop(FONT_PACKAGE)
    font_file = base / FONT_PATH
    font = ({"path": FONT_PATH, "package": FONT_PACKAGE, "version": font_version, "size": font_file.stat().st_size}
            if font_file.is_file() else None)
    return library_version(list_files(sources), versions, font), versions, font


def _description(path: Path) -> str:
    txt = path.with_name(path.stem.removesuffix("_mirror") + ".txt")
    try:
        return txt.read_text(errors="replace").splitlines()[0].strip() if txt.is_file() else ""
    except (OSError, IndexError):
        return ""


def _measure_object(path: Path):
    """(size, box, fill, problem) of one picture; problem is None, 'no_transparency', 'rectangular', 'too_small' or 'too_large'."""
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(path)
        except Image.DecompressionBombError:
            return (0, 0), None, 0.0, "too_large"
    with im:
        size = im.size
        if size[0] * size[1] > _MAX_PIXELS:
            return size, None, 0.0, "too_large"
        im.load()
        rgba = im.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"))
    if alpha.min() == 255:
        return size, None, 0.0, "no_transparency"
    ys, xs = np.nonzero(alpha >= 16)
    if len(xs) == 0 or min(xs.max() - xs.min(), ys.max() - ys.min()) + 1 < _MIN_SIDE:
        return size, None, 0.0, "too_small"
    box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
    fill = float(len(xs) / ((box[2] - box[0]) * (box[3] - box[1])))
    if fill >= _MAX_FILL:  # a picture in an opaque rectangle (a photo with its backdrop), not a cut-out
        return size, None, 0.0, "rectangular"
    return size, box, round(fill, 4), None


def _measure_background(path: Path):
    from PIL import Image

    with Image.open(path) as im:
        size = im.size
        if im.format == "JPEG":
            im.draft("RGB", (size[0] // 8, size[1] // 8))
            im.load()
        else:
            im.verify()
    return size


def _background_files(src: LibrarySource) -> list[Path]:
    """The background pictures of a package: mate's files; one variant per plasma wallpaper (landscape, >= 1024 wide, smallest)."""
    if src.package != "plasma-workspace-wallpapers":
        return sorted(p for p in src.folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    out = []
    for wall in sorted(p for p in src.folder.iterdir() if p.is_dir()):
        variants = []
        for p in sorted((wall / "contents/images").glob("*")):
            try:
                w, h = (int(v) for v in p.stem.split("x"))
            except ValueError:
                continue
            variants.append((not (w >= h and w >= 1024), w * h, p))
        if variants:
            out.append(min(variants)[2])
    return out


def build_index(root=None, sources=None) -> LibraryIndex:
    """Index the library now (no cache; see :func:`load_library`).

    Parameters
    ----------
    root : str or PathLike, optional
        System root (:func:`library_root`).
    sources : list of LibrarySource, optional
        Default: :func:`default_sources` under ``root``.

    Raises
    ------
    MissingLibraryError
        When a package's folder is missing or holds no picture (the message names the install command).
    """
    from PIL import Image

    base = library_root(root)
    sources = sources or default_sources(base)
    _check_installed(sources)
    version, versions, font = _identity(base, sources)
    counts = {"not_in_taxonomy": 0, "no_transparency": 0, "rectangular": 0, "too_small": 0, "too_large": 0,
              "unreadable": 0}
    items, backgrounds, skipped, packages = [], [], [], {}
    for src in sources:
        stanzas = read_licences(src.copyright)
        packages[src.package] = {"version": versions[src.package], "folder": str(src.folder.relative_to(base)),
                                 "copyright": str(src.copyright.relative_to(base))}
        paths = (sorted(p for p in src.folder.rglob("*.png")) if src.role == "objects" else _background_files(src))
        for path in paths:
            rel = path.relative_to(src.folder).as_posix()
            entry = {"path": f"{src.package}/{rel}", "package": src.package, "licence": licence_of(stanzas, rel)}
            if src.role == "objects":
                description = _description(path) if src.package == "tuxpaint-stamps-default" else ""
                category = categorise(src.package, rel, description)
                if category is None:
                    counts["not_in_taxonomy"] += 1
                    continue
            try:
                if src.role == "objects":
                    size, box, fill, problem = _measure_object(path)
                else:
                    size, problem = _measure_background(path), None
            except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
                counts["unreadable"] += 1
                skipped.append({"path": entry["path"], "reason": f"{type(exc).__name__}: {exc}"})
                continue
            if problem:
                counts[problem] += 1
                continue
            entry.update(width=size[0], height=size[1])
            if src.role == "objects":
                entry.update(category=category, box=box, fill=fill, description=description, id=len(items))
                items.append(entry)
            else:
                kind, shows = background_kind(src.package, rel)
                entry.update(kind=kind, shows=shows, id=len(backgrounds))
                backgrounds.append(entry)
    per_cat = {c: sum(1 for i in items if i["category"] == c) for c in CATEGORIES}
    kinds = {k: sum(1 for b in backgrounds if b["kind"] == k) for k in ("scene", "closeup", "abstract", "unknown")}
    counts.update(items=len(items), per_category=per_cat, backgrounds=kinds)
    return LibraryIndex(version, base, items, backgrounds, packages, font, counts, skipped)


def load_library(root=None, data_dir=None, rebuild: bool = False, sources=None) -> LibraryIndex:
    """The library's index, from the cache when its version is current, else built and cached.

    Parameters
    ----------
    root : str or PathLike, optional
        System root (:func:`library_root`: the argument, ``$BRAINIT_LIBRARY_ROOT``, ``/``).
    data_dir : str or PathLike, optional
        Where ``library/index-<version>.json`` is cached; default :func:`brainit_core.utils.default_data_dir`.
    rebuild : bool
        Build even when a cached index of this version exists.
    sources : list of LibrarySource, optional
        Default: :func:`default_sources`.

    Returns
    -------
    LibraryIndex

    Raises
    ------
    MissingLibraryError
        When the library is not installed (the message names :data:`INSTALL_COMMAND`).
    """
    base = library_root(root)
    sources = sources or default_sources(base)
    _check_installed(sources)
    version = _identity(base, sources)[0]
    cache = Path(data_dir or default_data_dir()).expanduser() / "library" / f"index-{version}.json"
    data = None if rebuild else try_read_json(cache)
    if isinstance(data, dict) and data.get("format") == INDEX_FORMAT and data.get("version") == version:
        return LibraryIndex(version, base, data["items"], data["backgrounds"], data["packages"], data["font"],
                            data["counts"], data["skipped"])
    index = build_index(base, sources)
    write_json(cache, index.to_json())
    return index
