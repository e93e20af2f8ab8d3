"""The stimulus library's category taxonomy: which installed picture belongs to which category.

Categories are those that matter for visual cortex (faces and people, bodies, animals, food,
vehicles, places and buildings, plants, words and signs, and other objects): the ventral
category-selective regions (FFA, EBA, PPA, VWFA and the food region NSD revealed) and the object
areas that respond to the rest. The rules map the folders of Debian's ``openclipart-png`` and
``tuxpaint-stamps-default`` to these categories (longest folder prefix wins). A few folders are
mixed (``transportation/`` holds cars and road signs side by side); their items are assigned by
the words of the file name or of the tuxpaint description, and left out when no word matches.
Folders that hold no picture of a thing (icons, shapes, flags, gradients, card faces, maps) are
left out (category ``None``).

Backgrounds are photographs from ``mate-backgrounds`` and ``plasma-workspace-wallpapers``: each is
a ``scene`` (a landscape, sky, water or texture with no salient object), a ``closeup`` of one thing
(recorded with the category it shows, so that a composer can avoid an unlabelled flower behind the
objects) or ``abstract`` (art, not a photograph; not used for scenes). Wallpapers not listed here
(a newer package) are ``unknown`` and not used.
"""
from __future__ import annotations

import re

CATEGORIES = ("face", "body", "animal", "food", "vehicle", "place", "plant", "word", "object")
"""Category keys, in label-vector order."""

CATEGORY_LABELS = {"face": "face/person", "body": "body", "animal": "animal", "food": "food",
                   "vehicle": "vehicle", "place": "place/building", "plant": "plant", "word": "word/sign",
                   "object": "other object"}

OBJECT_PACKAGES = ("openclipart-png", "tuxpaint-stamps-default")
BACKGROUND_PACKAGES = ("mate-backgrounds", "plasma-workspace-wallpapers")

_VEHICLE = {"car", "cars", "autos", "bus", "truck", "lorry", "plane", "airplane", "bike", "bicycle", "motorcycle",
            "tram", "tramway", "hummer", "ambulans", "ambulance", "engine", "tank", "shuttle", "cruiser", "jeep",
            "boat", "ship", "train", "locomotive", "sportcar", "redcar", "blazer", "taxi", "tractor", "van",
            "helicopter", "neon", "cobra", "skoda", "toyota", "sledge", "aerestatico"}
_SIGN = {"lane", "sign", "signs", "roundabout", "zigzag", "crosswind", "tunnel", "entry", "turn", "ahead", "way",
         "opposite", "only", "grounded", "drawbridge", "motorway", "cycles", "ampelfrau", "ampelmaennchen"}
_ANIMAL = {"cat", "blackcat", "bat", "spider", "bunny", "chick", "bluebird", "butterfly", "reindeer", "dog",
           "bird", "mermaid"}
_FOOD = {"pudding", "pie", "turkey", "candy", "cane", "egg", "chocolate", "jackolantern", "pumpkin", "cake"}
_PLANT = {"tree", "daffodil", "clover", "shamrock", "xmaswreath"}
_FACE_PART = {"eye", "eyes", "mouth", "lips", "ear", "iris", "dente", "girlface", "head", "moustache"}
_NOT_BUILDING = {"brick", "wall", "wall1", "capitello", "sign", "hallway", "demolizione"}

# (package, folder prefix) -> a category, None (left out) or a keyword rule {category: words, None: default};
# in a keyword rule the first category whose words match wins (road signs name vehicles: "bus_lane")
_RULES: dict[tuple[str, str], object] = {
    ("openclipart-png", "animals"): "animal",
    ("openclipart-png", "animals/fantasy"): None,
    ("openclipart-png", "buildings"): {"_exclude": _NOT_BUILDING, None: "place"},
    ("openclipart-png", "buildings/homes"): "place",
    ("openclipart-png", "buildings/furniture"): "object",
    ("openclipart-png", "people"): "face",
    ("openclipart-png", "people/bodypart"): {"face": _FACE_PART, None: "body"},
    ("openclipart-png", "people/stickmen"): "body",
    ("openclipart-png", "people/smilies"): "face",
    ("openclipart-png", "people/clothing"): "object",
    ("openclipart-png", "food"): "food",
    ("openclipart-png", "transportation"): {"word": _SIGN, "vehicle": _VEHICLE, None: None},
    ("openclipart-png", "transportation/vehicles"): "vehicle",
    ("openclipart-png", "transportation/boating"): "vehicle",
    ("openclipart-png", "transportation/roadsigns"): "word",
    ("openclipart-png", "transportation/aiga-symbols"): "word",
    ("openclipart-png", "plants"): "plant",
    ("openclipart-png", "signs_and_symbols/hazard"): "word",
    ("openclipart-png", "signs_and_symbols/clocks"): "object",
    ("openclipart-png", "office"): "object",
    ("openclipart-png", "tools"): "object",
    ("openclipart-png", "tools/weapons"): None,
    ("openclipart-png", "electronics"): "object",
    ("openclipart-png", "containers"): "object",
    ("openclipart-png", "education"): "object",
    ("openclipart-png", "computer/hardware"): "object",
    ("openclipart-png", "recreation/music"): "object",
    ("openclipart-png", "recreation/sports"): "object",
    ("openclipart-png", "recreation/toys"): "object",
    ("openclipart-png", "recreation/games/chess"): "object",
    ("openclipart-png", "recreation/games/dice"): "object",
    ("tuxpaint-stamps-default", "animals"): "animal",
    ("tuxpaint-stamps-default", "cartoon/tux"): "animal",
    ("tuxpaint-stamps-default", "clothes"): "object",
    ("tuxpaint-stamps-default", "food"): "food",
    ("tuxpaint-stamps-default", "hobbies"): "object",
    ("tuxpaint-stamps-default", "household"): "object",
    ("tuxpaint-stamps-default", "medical"): "object",
    ("tuxpaint-stamps-default", "military/vehicles"): "vehicle",
    ("tuxpaint-stamps-default", "people"): "face",
    ("tuxpaint-stamps-default", "people/body_parts"): {"face": _FACE_PART, None: "body"},
    ("tuxpaint-stamps-default", "people/toys"): "face",
    ("tuxpaint-stamps-default", "plants"): "plant",
    ("tuxpaint-stamps-default", "seasonal"): {"animal": _ANIMAL, "food": _FOOD, "plant": _PLANT, None: None},
    ("tuxpaint-stamps-default", "sports"): "object",
    ("tuxpaint-stamps-default", "symbols/alphabets"): "word",
    ("tuxpaint-stamps-default", "symbols/alphabets/asl"): "body",
    ("tuxpaint-stamps-default", "symbols/faces"): "face",
    ("tuxpaint-stamps-default", "town"): "object",
    ("tuxpaint-stamps-default", "town/flags"): None,
    ("tuxpaint-stamps-default", "town/houses"): "place",
    ("tuxpaint-stamps-default", "town/monuments"): "place",
    ("tuxpaint-stamps-default", "town/cartoon"): "place",
    ("tuxpaint-stamps-default", "town/roadsigns"): "word",
    ("tuxpaint-stamps-default", "vehicles"): "vehicle",
}

# backgrounds: (package, name) -> (kind, category shown by a close-up or None); name = file stem or wallpaper folder
_BACKGROUNDS = {
    ("mate-backgrounds", "Aqua"): ("scene", None), ("mate-backgrounds", "Dune"): ("scene", None),
    ("mate-backgrounds", "GreenMeadow"): ("scene", None), ("mate-backgrounds", "Storm"): ("scene", None),
    ("mate-backgrounds", "Wood"): ("scene", None), ("mate-backgrounds", "Blinds"): ("closeup", "plant"),
    ("mate-backgrounds", "FreshFlower"): ("closeup", "plant"), ("mate-backgrounds", "Garden"): ("closeup", "plant"),
    ("mate-backgrounds", "LadyBird"): ("closeup", "animal"), ("mate-backgrounds", "RainDrops"): ("closeup", "plant"),
    ("mate-backgrounds", "TwoWings"): ("closeup", "plant"), ("mate-backgrounds", "YellowFlower"): ("closeup", "plant"),
    ("plasma-workspace-wallpapers", "BytheWater"): ("scene", None),
    ("plasma-workspace-wallpapers", "ColdRipple"): ("scene", None),
    ("plasma-workspace-wallpapers", "DarkestHour"): ("scene", None),
    ("plasma-workspace-wallpapers", "Kite"): ("scene", None),
    ("plasma-workspace-wallpapers", "MilkyWay"): ("scene", None),
    ("plasma-workspace-wallpapers", "Path"): ("scene", None),
    ("plasma-workspace-wallpapers", "Volna"): ("scene", None),
    ("plasma-workspace-wallpapers", "summer_1am"): ("scene", None),
    ("plasma-workspace-wallpapers", "ColorfulCups"): ("closeup", "object"),
    ("plasma-workspace-wallpapers", "EveningGlow"): ("closeup", "vehicle"),
    ("plasma-workspace-wallpapers", "FallenLeaf"): ("closeup", "plant"),
    ("plasma-workspace-wallpapers", "Grey"): ("closeup", "place"),
    ("plasma-workspace-wallpapers", "OneStandsOut"): ("closeup", "plant"),
}
_ABSTRACT_FOLDERS = {("mate-backgrounds", "abstract"), ("mate-backgrounds", "desktop")}


def taxonomy_fingerprint() -> str:
    """A hash of the rules above: part of the library version, so that a changed taxonomy rebuilds the index."""
    import hashlib
    import json

    def plain(v):
        if isinstance(v, dict):
            return sorted((str(k), plain(x)) for k, x in v.items())
        return sorted(v) if isinstance(v, (set, frozenset)) else v

    text = json.dumps([CATEGORIES, sorted((list(k), plain(v)) for k, v in _RULES.items()),
                       sorted((list(k), list(v)) for k, v in _BACKGROUNDS.items()), sorted(_ABSTRACT_FOLDERS)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def words_of(text: str) -> set[str]:
    """Lower-case words of a file name or description (``"bus1_bw_jarno.png"`` -> ``{"bus", "bw", "jarno", "png"}``)."""
    return set(re.findall(r"[a-z]+", text.lower()))


def _apply(rule, words: set[str]):
    if not isinstance(rule, dict):
        return rule
    if words & rule.get("_exclude", set()):
        return None
    for cat, vocab in rule.items():
        if cat is not None and cat != "_exclude" and vocab and words & vocab:
            return cat
    return rule.get(None)


def categorise(package: str, relpath: str, description: str = "") -> str | None:
    """The category of one object picture, or ``None`` when the taxonomy leaves it out.

    Parameters
    ----------
    package : str
        ``"openclipart-png"`` or ``"tuxpaint-stamps-default"``.
    relpath : str
        The picture's path inside the package's picture folder, with ``/`` (``"people/stickmen/sm_001.png"``).
    description : str
        Tuxpaint's one-line description (its ``.txt`` file), used by keyword rules with the file name.

    Returns
    -------
    str or None
        One of :data:`CATEGORIES`, or ``None``.
    """
    parts = relpath.split("/")[:-1]
    words = words_of(relpath.split("/")[-1]) | words_of(description)
    for depth in range(len(parts), 0, -1):
        key = (package, "/".join(parts[:depth]))
        if key in _RULES:
            return _apply(_RULES[key], words)
    return None


def background_kind(package: str, relpath: str) -> tuple[str, str | None]:
    """Whether a background picture is a ``scene``, a ``closeup`` (with the category it shows), ``abstract`` or ``unknown``.

    Parameters
    ----------
    package : str
        ``"mate-backgrounds"`` or ``"plasma-workspace-wallpapers"``.
    relpath : str
        Path inside the package's folder: ``"nature/Dune.jpg"`` or ``"Path/contents/images/1920x1080.jpg"``.

    Returns
    -------
    (kind, category) : (str, str or None)
    """
    parts = relpath.split("/")
    if (package, parts[0]) in _ABSTRACT_FOLDERS:
        return "abstract", None
    name = parts[0] if package == "plasma-workspace-wallpapers" else parts[-1].rsplit(".", 1)[0]
    return _BACKGROUNDS.get((package, name), ("unknown", None))
