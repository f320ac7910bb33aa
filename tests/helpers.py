"""What several test modules build the same way: nnU-Net's two U-Nets at a test size, and the 15 subsets in the
paper's table order (a hand-written expectation, not derived from the code under test)."""
import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

COMMON = {"n_stages": 4, "features_per_stage": [8, 16, 32, 64], "conv_op": "torch.nn.modules.conv.Conv3d",
          "kernel_sizes": [[3, 3, 3]] * 4, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
          "n_conv_per_stage_decoder": [1, 1, 1], "conv_bias": True,
          "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-5, "affine": True},
          "dropout_op": None, "dropout_op_kwargs": None,
          "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}
NETWORKS = {
    "PlainConvUNet": ("dynamic_network_architectures.architectures.unet.PlainConvUNet", {"n_conv_per_stage": [2] * 4}),
    "ResidualEncoderUNet": ("dynamic_network_architectures.architectures.unet.ResidualEncoderUNet",
                            {"n_blocks_per_stage": [1, 2, 2, 2]}),
}
REQ_IMPORT = ["conv_op", "norm_op", "dropout_op", "nonlin"]
PAPER_ROWS = ["T2", "T1ce", "T1", "FLAIR", "T1ce+T2", "T1+T1ce", "T1+FLAIR", "T1+T2", "T2+FLAIR", "T1ce+FLAIR",
              "T1+T1ce+FLAIR", "T1+T2+FLAIR", "T1ce+T2+FLAIR", "T1+T1ce+T2", "T1+T1ce+T2+FLAIR"]


def architecture(kind: str) -> dict:
    """The architecture kwargs of a plans file for the test-size U-Net of `kind`."""
    return dict(COMMON, **NETWORKS[kind][1])


def small_unet(kind: str = "PlainConvUNet", deep_supervision: bool = True, input_channels: int = 4):
    """A seeded 4-stage 3d U-Net of `kind` with 3 outputs, built by nnU-Net from plans-style kwargs."""
    torch.manual_seed(0)
    return get_network_from_plans(NETWORKS[kind][0], architecture(kind), REQ_IMPORT, input_channels, 3,
                                  allow_init=True, deep_supervision=deep_supervision)
