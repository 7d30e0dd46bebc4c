"""Video ResNets: I3D / C2D built with pytorchvideo's builders, and 2D→3D inflation."""

import warnings

with warnings.catch_warnings():  # pytorchvideo imports fvcore, which calls the deprecated torch.jit.script
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    import pytorchvideo.models  # noqa: F401

from videogn.models.inflate import InflationReport, inflate_from_2d, load_state_dict_file  # noqa: E402
from videogn.models.resnet import build_model, count_parameters, init_weights, zero_init_last_norms  # noqa: E402

__all__ = [
    "InflationReport",
    "build_model",
    "count_parameters",
    "inflate_from_2d",
    "init_weights",
    "load_state_dict_file",
    "zero_init_last_norms",
]
