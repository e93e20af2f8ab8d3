"""The run directory format, owned in one place (no torch import: the app's sidebar reads it cheaply).

A run directory (``RUN/``) is written by ``train`` or ``transfer``::

    RUN/
      run.json                 the run's record: preset, dataset, feature space, training subjects,
                               configs, stage timings; ``transfer`` when made by ``transfer``
      bit.safetensors/json     the final BrainITModel; bit.json's config lists every subject it
                               decodes with its vertex count, and its sha256
      encoder/encoder.*        image-to-fMRI encoder
      v2c.npz/json             voxel-to-cluster map
      synthetic/, bit_<head>_state.*, bit_<head>_best.*, curves.json, curves.png, eval_features.json

Every reader of ``run.json`` / ``bit.json`` goes through :class:`RunDirectory`; loading the weights
for prediction is :class:`brainit_core.models.run.BrainITRun`.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

from brainit_core.errors import CheckpointError
from brainit_core.fileio import read_json, write_json

RECORD = "run.json"
BIT = "bit"
RECORD_VERSION = 1


class RunDirectory:
    """A Brain-IT run directory on disk: its record and checkpoint metadata, without the weights.

    Parameters
    ----------
    path : str or PathLike

    Examples
    --------
    >>> run = RunDirectory("~/.brainit/runs/demo")
    >>> run.is_complete, run.subjects, run.space
    (True, ['twin01', 'twin02'], {'name': 'lite0', 'preset': 'demo'})
    """

    def __init__(self, path):
        self.path = Path(path).expanduser()

    # -- files ----------------------------------------------------------------------------------
    @property
    def record_path(self) -> Path:
        return self.path / RECORD

    @property
    def bit_path(self) -> Path:
        """Stem of the final checkpoint (``bit.safetensors`` + ``bit.json``)."""
        return self.path / BIT

    @property
    def encoder_path(self) -> Path:
        """Stem of the encoder checkpoint."""
        return self.path / "encoder" / "encoder"

    @property
    def v2c_path(self) -> Path:
        """Stem of the V2C map (``v2c.npz`` + ``v2c.json``)."""
        return self.path / "v2c"

    @property
    def scores_path(self) -> Path:
        """Feature-level scores written by ``evaluate-features``."""
        return self.path / "eval_features.json"

    @property
    def has_record(self) -> bool:
        return self.record_path.is_file()

    @property
    def is_complete(self) -> bool:
        """Training finished: the record and the final checkpoint (both files) are there."""
        return (self.has_record and self.bit_path.with_suffix(".safetensors").is_file()
                and self.bit_path.with_suffix(".json").is_file())

    @staticmethod
    def is_run(path) -> bool:
        """``path`` holds a finished run."""
        return path is not None and RunDirectory(path).is_complete

    def is_empty(self) -> bool:
        return not self.path.exists() or not any(self.path.iterdir())

    # -- the record -----------------------------------------------------------------------------
    @cached_property
    def record(self) -> dict:
        """``run.json`` as a dict (read once per instance)."""
        rec = read_json(self.record_path)
        if rec is None:
            raise CheckpointError(f"{self.record_path} not found: {self.path} is not a Brain-IT run directory "
                                  "(train one with `python -m brainit_core train`)")
        if not isinstance(rec, dict):
            raise CheckpointError(f"{self.record_path}: expected a JSON object, got {type(rec).__name__}")
        return rec

    def read_record(self, default=None):
        """``run.json``, or ``default`` when there is none yet (a run being started)."""
        return self.record if self.has_record else default

    def save_record(self, record: dict) -> None:
        """Write ``run.json`` atomically (and keep it as this instance's record)."""
        write_json(self.record_path, record)
        self.__dict__["record"] = record

    @property
    def preset(self) -> str:
        return str(self.record.get("preset", "demo"))

    @property
    def space(self) -> dict:
        """The feature space BIT predicts: ``{"name": ..., "preset": ...}``."""
        space = self.record.get("space") or (self.bit_config_record.get("space") if self.is_complete else None)
        return dict(space or {"name": "lite0", "preset": self.preset})

    @property
    def space_label(self) -> str:
        """``"lite0 (demo)"``."""
        s = self.space
        return f"{s.get('name', '?')} ({s.get('preset', '?')})"

    @property
    def training_subjects(self) -> list[str]:
        """Subjects the run was trained on (a transferred run's reference subjects)."""
        return list(self.record.get("subjects", []))

    @property
    def bit_config(self) -> dict:
        """``asdict(BITConfig)`` of the run (a transfer's own overrides are in :attr:`transfer`)."""
        return dict(self.record.get("bit_config") or {})

    @property
    def encoder_config(self) -> dict | None:
        return self.record.get("encoder_config")

    @property
    def encoder_backbone(self) -> str:
        """The network the image-to-fMRI encoder reads (``encoder_config.backbone``: ``"lite1"``,
        ``"dinov2-vitl14-reg"``, ...). A run recorded before the encoder had its own backbone read the
        decoder's feature space: its name (``"lite0"``)."""
        backbone = (self.encoder_config or {}).get("backbone")
        return str(backbone) if backbone else str(self.space.get("name", "lite0"))

    @property
    def transfer(self) -> dict | None:
        """``{"from", "subject", "minutes", "n_trials", "bit_config", "selection"}`` of a transferred run, else
        None; ``selection`` (``{"mode", "n_fit_trials", "n_holdout_trials"}``) is absent in older runs."""
        return self.record.get("transfer")

    @property
    def stages(self) -> dict:
        return dict(self.record.get("stages") or {})

    @property
    def dataset(self) -> str | None:
        """The dataset the run was trained on (as recorded; it may have moved since)."""
        return self.record.get("dataset")

    @property
    def stage2(self) -> dict | None:
        """``{"from_run", "from_run_sha256", "generators", "config", "steps", "seconds", "eval"}`` of a run
        written by ``stage2`` (BIT's semantic head fine-tuned with the generator), else None."""
        return self.record.get("stage2")

    # -- the final checkpoint's record (bit.json) -----------------------------------------------
    @cached_property
    def bit_record(self) -> dict:
        """``bit.json``: the checkpoint record (config, meta, sha256), read without loading weights."""
        from brainit_core.checkpoint import read_checkpoint_record

        if not self.is_complete:
            raise CheckpointError(f"{self.bit_path}.safetensors / .json not found: the run's training has not "
                                  "finished (resume it with `python -m brainit_core train ... --resume`)")
        return read_checkpoint_record(self.bit_path)

    @property
    def bit_config_record(self) -> dict:
        return dict(self.bit_record.get("config") or {})

    @property
    def subjects(self) -> list[str]:
        """Every subject BIT decodes (training subjects plus transferred ones); [] before training ends."""
        if not self.is_complete:
            return []
        subjects = self.bit_config_record.get("subjects") or {}
        return list(subjects)

    def n_vertices(self, subject: str) -> int:
        """Vertex count BIT expects for ``subject``."""
        return int(self.bit_config_record["subjects"][subject])

    @property
    def sha256(self) -> str:
        """sha256 of ``bit.safetensors`` as recorded in ``bit.json``."""
        return str(self.bit_record["sha256"])

    @property
    def identities(self) -> set:
        """The sha256s the run answers to: its checkpoint's and, for a bundled (float16) copy, the sha256 of
        the run it was made from (what a benchmark of that run recorded)."""
        meta = self.bit_record.get("meta") or {}
        return {v for v in (self.bit_record.get("sha256"), meta.get("bundled_from_sha256")) if v}

    # -- scores ---------------------------------------------------------------------------------
    def read_scores(self) -> dict | None:
        """``eval_features.json`` (written by ``evaluate-features``), or None when the run was not scored."""
        return read_json(self.scores_path)

    def save_scores(self, scores: dict) -> None:
        """Write ``eval_features.json`` atomically."""
        write_json(self.scores_path, scores)

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"


def new_run_record(preset: str, dataset: str, space: dict, subjects: list, bit_config: dict,
                   encoder_config: dict) -> dict:
    """The record a fresh training run starts with."""
    return {"format_version": RECORD_VERSION, "preset": preset, "dataset": str(dataset), "space": dict(space),
            "subjects": list(subjects), "bit_config": dict(bit_config), "encoder_config": dict(encoder_config),
            "stages": {}}


class RunStages:
    """Book-keeping of a run's stages in ``run.json``: each finished stage is written with its seconds,
    so an interrupted run skips what is done when it starts again."""

    def __init__(self, run: RunDirectory, record: dict):
        self.run = run
        self.record = record

    def done(self, name: str) -> bool:
        return name in self.record.setdefault("stages", {})

    def finish(self, name: str, seconds: float, **info) -> None:
        self.record.setdefault("stages", {})[name] = {"seconds": round(seconds, 2), **info}
        self.run.save_record(self.record)

    def total_seconds(self) -> float:
        """Seconds of every stage, plus earlier training of heads trained further (``extended``)."""
        earlier = sum(v.get("earlier_seconds", 0.0) for v in self.record.get("extended", {}).values())
        return round(sum(v["seconds"] for v in self.record.get("stages", {}).values()) + earlier, 2)


# -- generators directories ------------------------------------------------------------------------
# A generators directory (GEN_DIR, ``generators.json``) is of one of two kinds: ``offline`` (the
# project's own autoencoder + UNet, trained by ``train-generators``) or ``sdxl`` (a local
# diffusers-format SDXL named in generators.json, plus the image-token projection trained by
# ``train-sdxl-projection``). These helpers read generators.json without torch (the app's sidebar).

GENERATOR_KINDS = ("offline", "sdxl")
SDXL_WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors")
SDXL_PROJECTION = "image_token_projection"


def generators_settings(path) -> dict | None:
    """``generators.json`` of a generators directory as a dict, or None when absent or unreadable."""
    from brainit_core.fileio import try_read_json

    meta = try_read_json(Path(path).expanduser() / "generators.json")
    return meta if isinstance(meta, dict) else None


def generators_space(path) -> dict | None:
    """The feature space a generators directory was trained for (``generators.json``), or None."""
    meta = generators_settings(path)
    space = meta.get("space") if meta is not None else None
    return dict(space) if isinstance(space, dict) else None


def generators_kind(path) -> str:
    """``"sdxl"`` for a full-size SDXL set, else ``"offline"``."""
    meta = generators_settings(path) or {}
    return "sdxl" if meta.get("kind") == "sdxl" else "offline"


def generators_fit(run, path) -> bool:
    """The generators at ``path`` were made for the feature space (name and preset) that ``run`` predicts."""
    space = generators_space(path)
    want = RunDirectory(run).space
    return space is not None and space.get("name") == want.get("name") and space.get("preset") == want.get("preset")


def sdxl_missing(directory, need_projection: bool = True, need_unet: bool = True) -> list[Path]:
    """Every file a diffusers-format SDXL directory lacks: ``unet/`` (unless ``need_unet`` is False),
    ``vae/`` (``config.json`` and safetensors weights, fp32 or the fp16 variant),
    ``scheduler/scheduler_config.json`` and, with ``need_projection``, ``image_token_projection.safetensors``."""
    d = Path(directory).expanduser()
    missing = []
    for sub in ("unet", "vae") if need_unet else ("vae",):
        if not (d / sub / "config.json").is_file():
            missing.append(d / sub / "config.json")
        if not any((d / sub / w).is_file() for w in SDXL_WEIGHT_NAMES):
            missing.append(d / sub / SDXL_WEIGHT_NAMES[0])
    if not (d / "scheduler" / "scheduler_config.json").is_file():
        missing.append(d / "scheduler" / "scheduler_config.json")
    if need_projection and not all((d / f"{SDXL_PROJECTION}{ext}").is_file() for ext in (".safetensors", ".json")):
        missing.append(d / f"{SDXL_PROJECTION}.safetensors")
    return missing


def sdxl_source(path) -> tuple[Path, Path | None] | None:
    """The SDXL directory an ``sdxl`` generators directory uses, and its own fine-tuned ``unet/``
    (written by ``stage2``) or None; None for a directory of another kind."""
    meta = generators_settings(path) or {}
    sdxl = meta.get("sdxl") if meta.get("kind") == "sdxl" else None
    if not isinstance(sdxl, dict) or not sdxl.get("path"):
        return None
    unet = sdxl.get("unet")
    return Path(sdxl["path"]).expanduser(), (Path(path).expanduser() / unet if unet else None)


def generators_problem(path) -> str | None:
    """Why the generators at ``path`` cannot be used, in words (None when nothing is missing): no
    ``generators.json``, or an SDXL set whose SDXL weights or trained projection are not there."""
    path = Path(path).expanduser()
    meta = generators_settings(path)
    if meta is None:
        return f"{path} has no generators.json (`python -m brainit_core train-demo` or `train-generators`)"
    if meta.get("kind") != "sdxl":
        return None
    source = sdxl_source(path)
    if source is None:
        return f"{path / 'generators.json'}: an SDXL set without the path of its SDXL directory ('sdxl' -> 'path')"
    directory, unet = source
    missing = sdxl_missing(directory, need_projection=False, need_unet=unet is None)
    if unet is not None and not (unet / "config.json").is_file():
        missing.append(unet / "config.json")
    if not (path / f"{SDXL_PROJECTION}.safetensors").is_file():
        missing.append(path / f"{SDXL_PROJECTION}.safetensors")
    if missing:
        return (f"SDXL set {path}: missing " + ", ".join(str(m) for m in missing) + " (a diffusers-format SDXL "
                "directory with unet/, vae/, scheduler/, and the projection trained by "
                "`python -m brainit_core train-sdxl-projection`)")
    return None


def generators_for_run(run, explicit=None) -> tuple[Path, str]:
    """The generators to decode ``run`` with, and in words where they were found.

    ``explicit`` (a ``--generators`` argument) wins. Otherwise the first directory whose
    ``generators.json`` names the run's feature space, among: the ``generators/`` beside the run (a
    bundle's layout, ``BUNDLE/run`` + ``BUNDLE/generators``), ``RUN/generators``, the data directory's
    ``generators/<run name>`` and ``generators/demo``, and the shipped demo bundle's.

    Raises
    ------
    CheckpointError
        When nothing matches (the message lists where it looked).
    """
    from brainit_core.utils import assets_dir, default_data_dir

    if explicit:
        return Path(explicit).expanduser(), "as given"
    run = RunDirectory(run)
    candidates = [(run.path.parent / "generators", "beside the run"), (run.path / "generators", "inside the run"),
                  (default_data_dir() / "generators" / run.path.name, "named after the run in the data directory"),
                  (default_data_dir() / "generators" / "demo", "the locally trained demo's"),
                  (assets_dir() / "demo" / "generators", "the shipped demo bundle's")]
    for path, how in candidates:
        if generators_fit(run.path, path):
            return path, how
    looked = "\n  ".join(str(p) for p, _ in candidates)
    raise CheckpointError(f"no generators for {run.path} (feature space {run.space_label}) found; looked at:\n  {looked}\n"
                          "pass --generators DIR (train them with `python -m brainit_core train-generators`)")
