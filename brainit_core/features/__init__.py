"""Image feature spaces: what BIT predicts (semantic tokens, low-level pyramid)."""
from brainit_core.features.base import FeatureSpace, TokenSpec, images_to_tensor, maps_to_tokens, tokens_to_maps
from brainit_core.features.cache import FeatureSet, compute_features, extract_features
from brainit_core.features.lite import EfficientNetLiteFeatures, LiteFeatureConfig

# every name get_feature_space builds (the second is features.fullsize.NAME)
FEATURE_SPACES = ("lite0", "bigg-vgg16bn")


def get_feature_space(name: str = "lite0", preset: str = "demo", device=None, **kwargs) -> FeatureSpace:
    """Build a feature space by name.

    Parameters
    ----------
    name : str
        ``"lite0"`` (offline default). Full-size spaces are registered in
        :mod:`brainit_core.features.fullsize`.
    preset : str
        ``ci`` / ``demo`` / ``full`` sizes.
    device : torch.device, optional
    """
    if name == "lite0":
        cfg = LiteFeatureConfig.preset(preset)
        for k, v in kwargs.items():
            setattr(cfg, k, v)
        space = EfficientNetLiteFeatures(cfg)
    else:
        from brainit_core.features import fullsize

        space = fullsize.build(name, preset=preset, **kwargs)
    return space.to(device) if device is not None else space


__all__ = ["FEATURE_SPACES", "FeatureSpace", "TokenSpec", "FeatureSet", "EfficientNetLiteFeatures", "LiteFeatureConfig",
           "compute_features", "extract_features", "get_feature_space", "images_to_tensor",
           "maps_to_tokens", "tokens_to_maps"]
