"""medseg-gui: a CT/MR tumour segmentation workstation."""

__version__ = "0.1.0"
