"""Video ResNets: I3D / C2D built with pytorchvideo's builders, and 2D→3D inflation."""

import warnings

with warnings.catch_warnings():  # pytorchvideo imports fvcore, which calls the deprecated torch.jit.script
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    import pytorchvideo.models  # noqa: F401

from videogn.models.inflate import InflationError, InflationReport, inflate_from_2d  # noqa: E402
from videogn.models.resnet import (  # noqa: E402
    NetSettings,
    build_model,
    c2d_r50,
    count_parameters,
    fuse_norm_activations,
    i3d_r50,
    init_weights,
    zero_init_last_norms,
)

__all__ = [
    "InflationError",
    "InflationReport",
    "NetSettings",
    "build_model",
    "c2d_r50",
    "count_parameters",
    "i3d_r50",
    "inflate_from_2d",
    "init_weights",
    "zero_init_last_norms",
    "fuse_norm_activations",
]
