"""The stimulus library's index on a tiny fake library (and, when installed, on the real one)."""
from __future__ import annotations

from pathlib import Path

import pytest

from brainit_core.data.twin import library as lib_mod
from brainit_core.data.twin.library import (INSTALL_COMMAND, MissingLibraryError, build_index, library_root,
                                            load_library)
from brainit_core.data.twin.packages import licence_of, read_licences
from brainit_core.data.twin.taxonomy import CATEGORIES, background_kind, categorise
from tests.factories import FAKE_OBJECTS, FAKE_STATUS


def test_taxonomy_maps_folders_names_and_descriptions():
    oc, tux = "openclipart-png", "tuxpaint-stamps-default"
    assert categorise(oc, "people/a_happy_boy_01.png") == "face"
    assert categorise(oc, "people/stickmen/sm_001.png") == "body"
    assert categorise(oc, "people/bodypart/hand_dennis_rutjes_01.png") == "body"
    assert categorise(oc, "people/bodypart/mouth_-_body_part_nicu_b_01.png") == "face"
    assert categorise(oc, "animals/mammals/dogs/x.png") == "animal"
    assert categorise(oc, "food/fruit/apple.png") == "food"
    assert categorise(oc, "transportation/bus1_jarno_vasamaa_01.png") == "vehicle"
    assert categorise(oc, "transportation/bus_lane.png") == "word"
    assert categorise(oc, "transportation/anchor.png") is None  # mixed folder, no word matches: left out
    assert categorise(oc, "buildings/church_building_01_01.png") == "place"
    assert categorise(oc, "buildings/wall.png") is None
    assert categorise(oc, "buildings/furniture/chair.png") == "object"
    assert categorise(oc, "computer/icons/flat-theme/action/x.png") is None
    assert categorise(oc, "shapes/stars/x.png") is None
    assert categorise(tux, "symbols/alphabets/asl/a.png") == "body"
    assert categorise(tux, "symbols/alphabets/english/filled/uppercase/a.png") == "word"
    assert categorise(tux, "seasonal/halloween/blackcat.png", "A black cat.") == "animal"
    assert categorise(tux, "seasonal/christmas/Roast_turkey.png", "A roast turkey.") == "food"
    assert categorise(tux, "seasonal/candle.png", "A candle.") is None
    assert categorise(tux, "town/houses/cartoon/x.png") == "place"
    assert background_kind("mate-backgrounds", "nature/Dune.jpg") == ("scene", None)
    assert background_kind("mate-backgrounds", "nature/Garden.jpg") == ("closeup", "plant")
    assert background_kind("mate-backgrounds", "abstract/Flow.png") == ("abstract", None)
    assert background_kind("plasma-workspace-wallpapers", "Path/contents/images/1920x1080.jpg") == ("scene", None)
    assert background_kind("plasma-workspace-wallpapers", "Newer/contents/images/1920x1080.jpg") == ("unknown", None)


def test_licences_from_copyright_files(fake_library):
    root, _ = fake_library
    assert read_licences(root / "usr/share/doc/openclipart-png/copyright") == [(["*"], "public-domain")]
    stanzas = read_licences(root / "usr/share/doc/mate-backgrounds/copyright")
    assert licence_of(stanzas, "nature/Dune.jpg") == "GPL-2+"
    assert licence_of(stanzas, "nature/Storm.jpg") == "CC-BY-SA-4.0"  # the last matching stanza wins
    assert read_licences(root / "nowhere/copyright")[0][1].startswith("unknown")


def test_index_of_the_fake_library(fake_library):
    root, _ = fake_library
    index = build_index(root)
    per_cat = index.counts["per_category"]
    for folder, cat in FAKE_OBJECTS.items():
        paths = {i["path"] for i in index.items if i["category"] == cat}
        assert f"openclipart-png/{folder}/item0.png" in paths and f"openclipart-png/{folder}/item1.png" in paths
    assert per_cat["animal"] == 4  # two clip-arts, the tuxpaint cat and the black cat (by its description)
    assert index.counts["not_in_taxonomy"] == 2  # shapes/star.png and the tuxpaint candle
    # the corrupt PNG is skipped, counted and named, never silently dropped
    assert index.counts["unreadable"] == 1
    assert index.skipped[0]["path"] == "openclipart-png/food/fruit/broken.png"
    assert "broken.png" in index.report() and "1 unreadable" in index.report()
    assert {i["licence"] for i in index.items if i["package"] == "openclipart-png"} == {"public-domain"}
    assert {i["licence"] for i in index.items if i["package"] == "tuxpaint-stamps-default"} == {"GPL-2"}
    assert {p: v["version"] for p, v in index.packages.items()} == FAKE_STATUS
    cat = next(i for i in index.items if i["path"].endswith("cats/cat.png"))
    assert cat["description"] == "A cat." and cat["box"][2] > cat["box"][0] and 0 < cat["fill"] < 1
    kinds = {b["path"]: b["kind"] for b in index.backgrounds}
    assert kinds == {"mate-backgrounds/abstract/Flow.png": "abstract", "mate-backgrounds/nature/Dune.jpg": "scene",
                     "mate-backgrounds/nature/Storm.jpg": "scene",
                     "plasma-workspace-wallpapers/Path/contents/images/1280x800.jpg": "scene"}
    assert len(index.scene_backgrounds()) == 3
    assert index.path(index.items[0]).is_file()


def test_cached_index_and_version_changes(fake_library, monkeypatch):
    root, data = fake_library
    first = load_library(root, data_dir=data)
    cache = data / "library" / f"index-{first.version}.json"
    assert cache.is_file()
    monkeypatch.setattr(lib_mod, "build_index", lambda *a, **k: pytest.fail("the cached index was not used"))
    again = load_library(root, data_dir=data)
    assert again.version == first.version and again.items == first.items and again.skipped == first.skipped
    monkeypatch.undo()
    # a changed file changes the version: the index is rebuilt under a new name
    target = root / "usr/share/openclipart/png/office/item0.png"
    target.write_bytes(target.read_bytes() + b"\0" * 7)
    changed = load_library(root, data_dir=data)
    assert changed.version != first.version
    assert (data / "library" / f"index-{changed.version}.json").is_file()
    # so does a new package version
    status = root / "var/lib/dpkg/status"
    status.write_text(status.read_text().replace("1.26.0-1", "1.26.0-2"))
    assert load_library(root, data_dir=data).version != changed.version
    # a damaged cache is rebuilt
    newest = load_library(root, data_dir=data)
    path = data / "library" / f"index-{newest.version}.json"
    path.write_text("{ torn")
    assert load_library(root, data_dir=data).items == newest.items


def test_missing_library_names_the_install_command(tmp_path, fake_library, monkeypatch):
    with pytest.raises(MissingLibraryError, match="apt-get install openclipart-png tuxpaint-stamps-default"):
        load_library(tmp_path / "empty", data_dir=tmp_path / "data")
    root, _ = fake_library
    import shutil

    shutil.rmtree(root / "usr/share/wallpapers")
    with pytest.raises(MissingLibraryError) as err:
        build_index(root)
    assert "plasma-workspace-wallpapers" in str(err.value) and INSTALL_COMMAND in str(err.value)
    monkeypatch.setenv("BRAINIT_LIBRARY_ROOT", str(root))
    assert library_root() == root and library_root(tmp_path) == tmp_path


REAL = all(Path(p).is_dir() for p in ("/usr/share/openclipart/png", "/usr/share/tuxpaint/stamps",
                                      "/usr/share/backgrounds/mate", "/usr/share/wallpapers"))


@pytest.mark.skipif(not REAL, reason=f"the stimulus library is not installed ({INSTALL_COMMAND})")
def test_the_installed_library_has_every_category(tmp_path):
    index = load_library("/", data_dir=tmp_path)
    for cat in CATEGORIES:
        assert index.counts["per_category"][cat] >= 50, (cat, index.report())
    assert len(index.scene_backgrounds()) >= 10
    assert index.counts["unreadable"] == len(index.skipped)
    assert {i["licence"] for i in index.items if i["package"] == "openclipart-png"} == {"public-domain"}
