"""nnunetv2-mtg: missing-modality brain tumour segmentation on nnU-Net v2 (README.md; the method as implemented: docs/design.md)."""
__version__ = "0.1.0"
