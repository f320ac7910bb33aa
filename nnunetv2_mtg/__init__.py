"""nnunetv2-mtg: missing-modality brain tumour segmentation on nnU-Net v2 (see DESIGN.md, README.md)."""
__version__ = "0.1.0"
