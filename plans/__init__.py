"""Plans presets: JSON overlays applied by `nnUNetv2_mtg_plans` (see nnunetv2_mtg/plans_presets.py)."""
