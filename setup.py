"""nnunetv2-mtg: missing-modality brain tumour segmentation on top of nnU-Net v2.

`trainers/` and `plans/` live at the top of the repository (that is the folder a user puts
in nnUNet_extTrainer) and are shipped inside the package as `nnunetv2_mtg.trainers` and
`nnunetv2_mtg.plans`, so a non-editable install carries them too.
"""
from setuptools import setup

setup(
    name="nnunetv2-mtg",
    version="0.1.0",
    description="Missing-modality brain tumour segmentation for nnU-Net v2 (Mind the Gap alignment + distillation)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=["nnunetv2_mtg", "nnunetv2_mtg.trainers", "nnunetv2_mtg.plans"],
    package_dir={
        "nnunetv2_mtg": "nnunetv2_mtg",
        "nnunetv2_mtg.trainers": "trainers",
        "nnunetv2_mtg.plans": "plans",
    },
    package_data={"nnunetv2_mtg.plans": ["*.json"]},
    install_requires=[
        "nnunetv2>=2.8.1,<2.9",
        "nilearn>=0.10",  # ships the MNI152 template used by the phantom
        "nibabel",
        "scipy",
        "tqdm",
        "matplotlib",
        "monai>=1.4",  # surface distances (HD95) for the subset evaluation
    ],
    extras_require={
        "test": ["pytest"],
        # the BraTS challenge's lesion-wise metrics (nnUNetv2_mtg_evaluate --lesionwise); it pins pandas < 3
        "brats": ["brats-evaluation>=0.0.10"],
    },
    entry_points={
        "console_scripts": [
            "nnUNetv2_mtg_paths=nnunetv2_mtg.paths:main",
            "nnUNetv2_mtg_phantom=nnunetv2_mtg.phantom:main",
            "nnUNetv2_mtg_plans=nnunetv2_mtg.plans_presets:main",
            "nnUNetv2_mtg_evaluate=nnunetv2_mtg.evaluate:main",
            "nnUNetv2_mtg_gap=nnunetv2_mtg.gap:main",
            "nnUNetv2_mtg_predict=nnunetv2_mtg.predict:main",
        ]
    },
)
