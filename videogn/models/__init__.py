"""Video ResNets: I3D and C2D networks built with pytorchvideo's builders.

`build_model`, `i3d_r50` and `c2d_r50` build a network from `NetSettings`; `inflate_from_2d` fills it with 2D
ImageNet weights. Submodules: `resnet` (networks), `norm` (norm layers), `heads` (test heads), `formats` (model zoo
checkpoints), `inflate` (2D → 3D inflation), `weights` (starting weights).

The names below are imported on first use, so importing one submodule does not import them all.
"""

import warnings

from videogn.lazy import lazy_exports

with warnings.catch_warnings():  # pytorchvideo imports fvcore, which calls the deprecated torch.jit.script
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    import pytorchvideo.models  # noqa: F401

_HOMES = {
    "InflationError": "inflate",
    "InflationReport": "inflate",
    "inflate_from_2d": "inflate",
    "NetSettings": "resnet",
    "build_model": "resnet",
    "c2d_r50": "resnet",
    "count_parameters": "resnet",
    "fuse_norm_activations": "resnet",
    "i3d_r50": "resnet",
    "init_weights": "resnet",
    "zero_init_last_norms": "resnet",
}

__all__ = sorted(_HOMES)


__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
