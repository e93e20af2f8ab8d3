"""Write the EMA weights of an unfinished semantic UNet as a generators directory, to look at it early.

    .venv/bin/python scripts/snapshot_unet.py GEN_DIR OUT [--inverter-from DIR]

GEN_DIR is a generators directory whose UNet stage is still training (GEN_DIR/train/unet_state);
OUT gets its autoencoder, its inverter (or the one of --inverter-from) and the UNet's EMA weights
at the last saved step, so `generator-branches` and `reconstruct` can use them. Nothing in GEN_DIR
changes; the training goes on.
"""
import argparse
import shutil
from pathlib import Path

from brainit_core.checkpoint import load_checkpoint
from brainit_core.fileio import read_json
from brainit_core.reconstruction.diffusion import ConditionalUNet, DiffusionConfig, save_conditional_unet


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("gen_dir", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--inverter-from", type=Path, default=None)
    args = p.parse_args()
    tensors, record, meta = load_checkpoint(args.gen_dir / "train" / "unet_state")
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in record.items()}
    model = ConditionalUNet(DiffusionConfig(**cfg))
    model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema/")})
    args.out.mkdir(parents=True, exist_ok=True)
    step = meta.get("step", record.get("step"))
    save_conditional_unet(model, args.out / "unet", meta={"snapshot_of": str(args.gen_dir), "step": step})
    inv = args.inverter_from or args.gen_dir
    for stem, src in (("autoencoder", args.gen_dir), ("inverter", inv)):
        for ext in (".safetensors", ".json"):
            shutil.copy2(src / f"{stem}{ext}", args.out / f"{stem}{ext}")
    settings = read_json(args.gen_dir / "generators.json", {})
    settings["snapshot"] = {"of": str(args.gen_dir), "unet_step": step, "inverter_from": str(inv)}
    from brainit_core.reconstruction.generators import write_generators_json

    write_generators_json(args.out, settings)
    print(f"{args.out}: UNet EMA at step {step}")


if __name__ == "__main__":
    main()
