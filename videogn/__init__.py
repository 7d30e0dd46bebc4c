"""videogn: inflated 3D ResNets with Group Normalization for video classification."""

__version__ = "0.1.0"
