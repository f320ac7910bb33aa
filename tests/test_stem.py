"""The modality stem and its anchors, against hand-computed values; the forms read from trainer attributes."""
import math

import pytest
import torch

from nnunetv2_mtg.env import UserInputError
from nnunetv2_mtg.forms import AlignmentForm, input_channels, read_form, wrap
from nnunetv2_mtg.stem import GaussianAnchor, MixtureAnchor, ModalityStem, presence
from test_alignment import COMMON, NETWORKS, _net


def _stem(anchor, channels=2, m=3):
    torch.manual_seed(0)
    return ModalityStem(m, channels, anchor, torch.nn.Conv3d, torch.nn.InstanceNorm3d, {"affine": True},
                        torch.nn.LeakyReLU, {"inplace": True})


def test_presence_per_sample_in_a_mixed_batch():
    x = torch.randn(4, 3, 5, 5, 5)
    x[0, 1] = 0  # one modality missing
    x[1, :2] = 0  # two missing
    x[2] = 0  # a background patch: every channel zero -> nothing is missing
    x[3, 2, 1:] = 0  # a channel that is zero almost everywhere is present
    assert presence(x).tolist() == [[True, False, True], [False, False, True], [True, True, True], [True, True, True]]


def test_mixture_anchor_hand_values():
    anchor = MixtureAnchor(3)
    with torch.no_grad():
        anchor.logits.copy_(torch.tensor([0.0, math.log(3.0), 5.0]))
    f = torch.zeros(1, 3, 1, 2)  # (B, M, F, voxels)
    f[0, 0] = 1.0
    f[0, 1] = 5.0
    f[0, 2] = 100.0
    present = torch.tensor([[True, True, False]])
    # softmax over the present logits [0, ln 3] -> weights 1/4, 3/4; the absent modality has no weight
    a = anchor(f, present)
    torch.testing.assert_close(a, torch.full((1, 1, 1, 2), 0.25 * 1 + 0.75 * 5))
    # loss: mean over present modalities of the mean squared distance: ((1-4)^2 + (5-4)^2) / 2 = 5
    assert anchor.loss(f, present).item() == pytest.approx(5.0)


def test_gaussian_anchor_hand_values_and_bound():
    g = GaussianAnchor(2, sigma_floor=0.1)
    assert g.sigma().detach().tolist() == pytest.approx([1.0, 1.0])  # starts as N(0, 1)
    f = torch.zeros(1, 2, 2, 3)
    f[:, :, 1] = 2.0
    present = torch.tensor([[True, True]])
    # channel 0 at the mean: 0.5 log 2 pi; channel 1 two sigma away: 0.5 * 4 + 0.5 log 2 pi
    expected = 0.5 * math.log(2 * math.pi) + 0.5 * 2.0
    assert g.loss(f, present).item() == pytest.approx(expected, rel=1e-6)
    # features sitting exactly on mu: the loss falls as sigma shrinks, but never below the bound
    optimiser = torch.optim.SGD(g.parameters(), lr=1.0)
    on_mu = torch.zeros(1, 2, 2, 3)
    for _ in range(2000):
        optimiser.zero_grad()
        loss = g.loss(on_mu, present)
        loss.backward()
        optimiser.step()
    assert g.loss(on_mu, present).item() >= g.lower_bound() - 1e-6
    assert g.lower_bound() == pytest.approx(math.log(0.1) + 0.5 * math.log(2 * math.pi))
    assert g.sigma().min().item() >= 0.1
    with pytest.raises(ValueError, match="sigma_floor"):
        GaussianAnchor(2, sigma_floor=0.0)


@pytest.mark.parametrize("kind", ["mixture", "gaussian"])
def test_substitution_missing_gets_the_anchor_present_untouched(kind):
    stem = _stem(kind)
    x = torch.randn(3, 3, 6, 6, 6)
    x[0, 1] = 0
    x[1] = 0  # background patch
    out = stem(x).view(3, 3, 2, 6, 6, 6)
    features = stem.split(x)
    anchor = stem.anchor(features, presence(x))
    # sample 0: modality 1 is the anchor, modalities 0 and 2 their own features
    torch.testing.assert_close(out[0, 1], anchor[0, 0].expand_as(out[0, 1]))
    torch.testing.assert_close(out[0, [0, 2]], features[0, [0, 2]])
    # a background patch and a complete sample pass through without substitution
    torch.testing.assert_close(out[1], features[1])
    torch.testing.assert_close(out[2], features[2])
    assert torch.isfinite(stem.alignment_loss())
    # the bypass check's replacement: every modality is the anchor
    everywhere = stem.anchor_everywhere().view(3, 3, 2, 6, 6, 6)
    torch.testing.assert_close(everywhere[2, 0], everywhere[2, 2])


def test_forms_from_attributes_and_their_errors():
    arch = dict(COMMON, **NETWORKS["PlainConvUNet"][1])

    def form(**attrs):
        return read_form(type("nnUNetTrainerMine", (), attrs), arch, 4)

    assert form().name == "none"
    assert form(aligned_stages=(-1,)).name == "bottleneck" and form(aligned_stages=(-1,)).stages == (3,)
    assert form(aligned_stages="all", free_bits=0.5).stages == (0, 1, 2, 3)
    assert form(stem_anchor="mixture").stem_channels == 4  # 8 features over 4 modalities, at least 4
    assert form(stem_anchor="gaussian", stem_channels_per_modality=3).name == "stem-gaussian"
    for attrs, message in (({"stem_anchor": "gauss"}, "unknown anchor kind"),
                           ({"aligned_stages": (7,)}, r"stage\(s\) \[7\] do not exist"),
                           ({"aligned_stages": "every"}, 'say "all"'),
                           ({"free_bits": -1}, "must be >= 0"),
                           ({"stem_anchor": "gaussian", "anchor_sigma_floor": 0}, "no lower bound")):
        with pytest.raises(UserInputError, match=message) as e:
            form(**attrs)
        assert "nnUNetTrainerMine" in str(e.value)


@pytest.mark.parametrize("kind", list(NETWORKS))
def test_stem_network_on_both_unets(kind):
    """The stem widens nnU-Net's own network; state_dict = stock keys (wider first conv) + stem.*."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    arch = dict(COMMON, **NETWORKS[kind][1])
    form = AlignmentForm((), tuple(arch["features_per_stage"]), stem_anchor="mixture", stem_channels=4)
    stock = _net(kind)
    inner = get_network_from_plans(NETWORKS[kind][0], arch, ["conv_op", "norm_op", "dropout_op", "nonlin"],
                                   input_channels(form, 4), 3, allow_init=True, deep_supervision=True)
    net = wrap(form, inner, 4)
    x = torch.randn(2, 4, 32, 32, 32)
    x[1, 3] = 0
    out = net(x)
    assert [tuple(o.shape) for o in out] == [(2, 3, 32, 32, 32), (2, 3, 16, 16, 16), (2, 3, 8, 8, 8)]
    assert {k for k in net.state_dict() if not k.startswith("stem.")} == set(stock.state_dict())
    assert net.stem.present.tolist() == [[True] * 4, [True, True, True, False]]
