"""The folder nnUNet_extTrainer points at (`nnUNetv2_mtg_paths trainers`).

nnU-Net imports each module here by file name and forgets it afterwards, so these modules only
wire library pieces together; everything that is pickled or re-imported lives in nnunetv2_mtg.
"""
