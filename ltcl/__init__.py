"""ltcl: contrastive learning on long-tailed images with help from out-of-distribution data."""

__version__ = "0.1.0"
