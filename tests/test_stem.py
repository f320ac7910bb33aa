"""The modality stem and its anchors, against hand-computed values; the forms read from trainer attributes."""
import math

import pytest
import torch

from nnunetv2_mtg.env import UserInputError
from nnunetv2_mtg.forms import AlignmentForm, input_channels, read_form, wrap
from nnunetv2_mtg.stem import ANCHOR_KINDS, GaussianAnchor, MixtureAnchor, ModalityStem, StandinAnchor, grouped_block, \
    informative, presence
from helpers import NETWORKS, architecture, small_unet


def _stem(anchor, channels=2, m=3, loss_kind="invariant", loss_pool=1):
    torch.manual_seed(0)
    block = grouped_block(m, channels, torch.nn.Conv3d, torch.nn.InstanceNorm3d, {"affine": True},
                          torch.nn.LeakyReLU, {"inplace": True})
    return ModalityStem(m, channels, anchor, block, loss_kind=loss_kind, loss_pool=loss_pool)


def test_presence_per_sample_in_a_mixed_batch():
    x = torch.randn(4, 3, 5, 5, 5)
    x[0, 1] = 0  # one modality missing
    x[1, :2] = 0  # two missing
    x[2] = 0  # a background patch: every channel zero -> nothing is missing
    x[3, 2, 1:] = 0  # a channel that is zero almost everywhere is present
    assert presence(x).tolist() == [[True, False, True], [False, False, True], [True, True, True], [True, True, True]]
    assert informative(x).tolist() == [True, True, False, True]


def _two_modalities():
    f = torch.zeros(1, 3, 1, 2)  # (B, M, F, voxels)
    f[0, 0] = 1.0
    f[0, 1] = 5.0
    f[0, 2] = 100.0
    return f, torch.tensor([[True, True, False]]), torch.tensor([True])


def test_mixture_anchor_hand_values():
    f, present, eligible = _two_modalities()
    anchor = MixtureAnchor(3, loss_kind="raw")
    with torch.no_grad():
        anchor.logits.copy_(torch.tensor([0.0, math.log(3.0), 5.0]))
    # softmax over the present logits [0, ln 3] -> weights 1/4, 3/4; the absent modality has no weight
    torch.testing.assert_close(anchor(f, present), torch.full((1, 1, 1, 2), 0.25 * 1 + 0.75 * 5))
    # raw: mean over present modalities of the mean squared distance: ((1-4)^2 + (5-4)^2) / 2 = 5
    assert anchor.loss(f, present, eligible).item() == pytest.approx(5.0)
    # invariant: each distance over the features' variance about their mean 3 ((1-3)^2 = (5-3)^2 = 4): (9/4 + 1/4) / 2
    anchor.loss_kind = "invariant"
    assert anchor.loss(f, present, eligible).item() == pytest.approx(1.25)


def test_standin_anchor_hand_values():
    f, present, eligible = _two_modalities()
    anchor = StandinAnchor(3)
    with torch.no_grad():
        anchor.logits.copy_(torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, math.log(3.0), 0.0]]))
    a = anchor(f, present)
    # the missing modality 2 gets its own weights over the present 0, 1: 1/4, 3/4; each present one is the other's
    torch.testing.assert_close(a[0, 2], torch.full((1, 2), 4.0))
    torch.testing.assert_close(a[0, 0], torch.full((1, 2), 5.0))
    torch.testing.assert_close(a[0, 1], torch.full((1, 2), 1.0))
    # distances (1-5)^2 = (5-1)^2 = 16 over the variance 4
    assert anchor.loss(f, present, eligible).item() == pytest.approx(4.0)


def test_gaussian_anchor_hand_values_and_bound():
    g = GaussianAnchor(2, sigma_floor=0.1, loss_kind="raw")
    assert g.sigma().detach().tolist() == pytest.approx([1.0, 1.0])  # starts as N(0, 1)
    f = torch.zeros(1, 2, 2, 3)
    f[:, :, 1] = 2.0
    present, eligible = torch.tensor([[True, True]]), torch.tensor([True])
    # channel 0 at the mean: 0.5 log 2 pi; channel 1 two sigma away: 0.5 * 4 + 0.5 log 2 pi
    expected = 0.5 * math.log(2 * math.pi) + 0.5 * 2.0
    assert g.loss(f, present, eligible).item() == pytest.approx(expected, rel=1e-6)
    # invariant: standardised features; modality 0 at 0, modality 1 at 2 (one channel): z = -1 and +1
    g_inv = GaussianAnchor(1)
    f = torch.zeros(1, 2, 1, 3)
    f[0, 1] = 2.0
    assert g_inv.loss(f, present, eligible).item() == pytest.approx(0.5 + 0.5 * math.log(2 * math.pi), rel=1e-6)
    # a missing modality gets the anchor mean de-standardised: centre 1 + scale 1 * mu_a
    with torch.no_grad():
        g_inv.mu.fill_(0.5)
    torch.testing.assert_close(g_inv(f, present), torch.full((1, 1, 1, 1), 1.5))
    # features sitting exactly on mu: the loss falls as sigma shrinks, but never below the bound
    optimiser = torch.optim.SGD(g.parameters(), lr=1.0)
    on_mu = torch.zeros(1, 2, 2, 3)
    for _ in range(2000):
        optimiser.zero_grad()
        loss = g.loss(on_mu, present, eligible)
        loss.backward()
        optimiser.step()
    assert g.loss(on_mu, present, eligible).item() >= g.lower_bound() - 1e-6
    assert g.lower_bound() == pytest.approx(math.log(0.1) + 0.5 * math.log(2 * math.pi))
    assert g.sigma().min().item() >= 0.1


def _scaled_norm_loss(stem, x, s):
    """The stem's alignment loss after its norm's scale and shift are multiplied by s (the encoder's own norm
    would undo the rescaling, so the segmentation is unchanged)."""
    norm = stem.block[1]
    with torch.no_grad():
        weight, bias = norm.weight.clone(), norm.bias.clone()
        norm.weight.mul_(s)
        norm.bias.mul_(s)
    stem(x)
    loss = stem.alignment_loss().item()
    with torch.no_grad():
        norm.weight.copy_(weight)
        norm.bias.copy_(bias)
    return loss


@pytest.mark.parametrize("kind", ANCHOR_KINDS)
def test_invariant_loss_ignores_a_rescaling_raw_does_not(kind):
    x = torch.randn(3, 3, 8, 8, 8)
    x[0, 1] = 0
    for pool in (1, 2):
        stem = _stem(kind, loss_pool=pool).train()
        with torch.no_grad():  # a norm that is not the identity, so the scale acts on something
            stem.block[1].weight.uniform_(0.5, 1.5)
            stem.block[1].bias.uniform_(-0.5, 0.5)
        base = _scaled_norm_loss(stem, x, 1.0)
        assert base > 0
        for s in (0.05, 20.0):
            assert _scaled_norm_loss(stem, x, s) == pytest.approx(base, rel=0.05)
    raw = _stem(kind, loss_kind="raw").train()
    with torch.no_grad():
        raw.block[1].bias.uniform_(-0.5, 0.5)
    # the earlier loss could be driven down by shrinking the features (for the mixtures by s^2; the Gaussian's down
    # to its anchor's entropy, and further as sigma_a follows)
    factor = 0.8 if kind == "gaussian" else 0.01
    assert _scaled_norm_loss(raw, x, 0.05) < factor * _scaled_norm_loss(raw, x, 1.0)


@pytest.mark.parametrize("kind", ["mixture", "standin"])
def test_mixture_loss_zero_only_for_equal_features(kind):
    anchor = StandinAnchor(3) if kind == "standin" else MixtureAnchor(3)
    present, eligible = torch.tensor([[True, True, True]]), torch.tensor([True])
    same = torch.randn(1, 1, 4, 5, 5).expand(1, 3, 4, 5, 5)
    assert anchor.loss(same, present, eligible).item() == pytest.approx(0.0, abs=1e-6)
    distinct = torch.randn(1, 3, 4, 5, 5)
    assert anchor.loss(distinct, present, eligible).item() > 0.1


@pytest.mark.parametrize("kind", ANCHOR_KINDS)
def test_loss_leaves_out_background_and_single_modality_samples(kind):
    """Only informative samples count; for the mixtures also only those with >= 2 present modalities (a single
    modality is its own mixture: distance 0 by construction, which would dilute the mean)."""
    stem = _stem(kind).train()
    x = torch.randn(3, 3, 6, 6, 6)
    x[0, 1:] = 0  # one present modality
    x[1] = 0  # background
    stem(x)
    batch = stem.alignment_loss()
    stem(x[2:])
    alone = stem.alignment_loss()
    if kind == "gaussian":  # a single modality is informative about the Gaussian anchor: samples 0 and 2 count
        stem(x[[0, 2]])
        alone = stem.alignment_loss()
    torch.testing.assert_close(batch, alone)
    # nothing eligible: 0, and still differentiable
    stem(x[:2] if kind != "gaussian" else x[1:2])
    empty = stem.alignment_loss()
    assert empty.item() == 0.0 and empty.requires_grad


@pytest.mark.parametrize("kind", ANCHOR_KINDS)
def test_substitution_missing_gets_the_anchor_present_untouched(kind):
    stem = _stem(kind).train()
    x = torch.randn(3, 3, 6, 6, 6)
    x[0, 1] = 0
    x[1] = 0  # background patch
    out = stem(x).view(3, 3, 2, 6, 6, 6)
    features = stem.split(x)
    anchor = stem.anchor(features, presence(x))
    # sample 0: modality 1 is the anchor, modalities 0 and 2 their own features
    torch.testing.assert_close(out[0, 1], anchor[0, 1 if kind == "standin" else 0].expand_as(out[0, 1]))
    torch.testing.assert_close(out[0, [0, 2]], features[0, [0, 2]])
    # a background patch and a complete sample pass through without substitution
    torch.testing.assert_close(out[1], features[1])
    torch.testing.assert_close(out[2], features[2])
    assert torch.isfinite(stem.alignment_loss())
    # the bypass check's replacement: every modality is the anchor the present modalities make
    everywhere = stem.anchor_everywhere(x).view(3, 3, 2, 6, 6, 6)
    for m in range(3):
        torch.testing.assert_close(everywhere[2, m], anchor[2, m if kind == "standin" else 0].expand_as(everywhere[2, m]))


def test_eval_mode_keeps_nothing_unless_asked():
    """Inference holds no extra activations; a frozen teacher (eval mode) keeps its output for the student."""
    stem = _stem("mixture")
    x = torch.randn(2, 3, 6, 6, 6)
    stem.train()(x)
    assert stem.features is not None and stem.output is not None
    with torch.no_grad():
        stem.eval()(x)
    assert stem.features is None and stem.output is None and stem.present is None
    stem.retain = True
    with torch.no_grad():
        out = stem(x)
    assert stem.output is out


def test_forms_from_attributes_and_their_errors():
    arch = architecture("PlainConvUNet")

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
                           ({"stem_anchor": "gaussian", "anchor_sigma_floor": 0}, "no lower bound"),
                           ({"stem_anchor": "mixture", "stem_placement": "middle"}, "stem_placement = 'middle'"),
                           ({"stem_anchor": "mixture", "anchor_loss": "l2"}, "anchor_loss = 'l2': known are"),
                           ({"stem_anchor": "mixture", "anchor_loss_pool": 0}, "anchor_loss_pool = 0: must be"),
                           ({"stem_anchor": "mixture", "stem_channels_per_modality": -2}, "modality = -2: must be")):
        with pytest.raises(UserInputError, match=message) as e:
            form(**attrs)
        assert "nnUNetTrainerMine" in str(e.value)
    # the form checks itself when made directly too, and names its fields' trainer attributes
    widths = tuple(arch["features_per_stage"])
    assert AlignmentForm("all", widths).stages == (0, 1, 2, 3) and AlignmentForm((-1, 0), widths).stages == (0, 3)
    with pytest.raises(UserInputError, match=r"AlignmentForm.anchor_sigma_floor = 0.0: must be > 0"):
        AlignmentForm((), widths, stem_anchor="gaussian", stem_channels=2, sigma_floor=0.0)


@pytest.mark.parametrize("kind", list(NETWORKS))
def test_stem_network_on_both_unets(kind):
    """The stem widens nnU-Net's own network; state_dict = stock keys (wider first conv) + stem.*."""
    arch = architecture(kind)
    form = AlignmentForm((), tuple(arch["features_per_stage"]), stem_anchor="mixture", stem_channels=4)
    stock = small_unet(kind)
    inner = small_unet(kind, input_channels=input_channels(form, 4))
    net = wrap(form, inner, 4)
    x = torch.randn(2, 4, 32, 32, 32)
    x[1, 3] = 0
    out = net(x)
    assert [tuple(o.shape) for o in out] == [(2, 3, 32, 32, 32), (2, 3, 16, 16, 16), (2, 3, 8, 8, 8)]
    assert {k for k in net.state_dict() if not k.startswith("stem.")} == set(stock.state_dict())
    assert net.stem.present.tolist() == [[True] * 4, [True, True, True, False]]


@pytest.mark.parametrize("kind", list(NETWORKS))
def test_first_block_form_on_both_unets(kind):
    """nnU-Net's first convolution becomes grouped by modality (fewer weights than the dense one); its output is
    the stem (aligned, substituted); every other parameter is stock."""
    arch = architecture(kind)
    attrs = {"stem_anchor": "mixture", "stem_placement": "first_block", "anchor_loss_pool": 2}
    form = read_form(type("nnUNetTrainerFB", (), attrs), arch, 4)
    assert form.stem_channels == arch["features_per_stage"][0] // 4 and input_channels(form, 4) == 4
    stock = small_unet(kind)
    net = wrap(form, small_unet(kind), 4).train()
    x = torch.randn(2, 4, 32, 32, 32)
    x[1, 3] = 0
    out = net(x)
    assert [tuple(o.shape) for o in out] == [(2, 3, 32, 32, 32), (2, 3, 16, 16, 16), (2, 3, 8, 8, 8)]
    first = [k for k in stock.state_dict() if k.endswith("convs.0.conv.weight")][0]
    prefix = first[: -len("conv.weight")]
    keys = set(net.state_dict())
    assert prefix + "anchor.logits" in keys and prefix + "block.conv.weight" in keys
    # (nnU-Net's decoder holds the encoder too, so its keys appear under decoder.encoder.* as well)
    renamed = {k.replace(prefix, prefix + "block.") for k in stock.state_dict()}
    assert {k for k in keys if not k.endswith("anchor.logits")} == renamed
    assert net.state_dict()[prefix + "block.conv.weight"].shape[1] == 1  # one input channel per group
    assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in stock.parameters())
    assert not any(k.startswith("stem.") for k in keys)  # the stem is the encoder's block, held once
    assert net.stem.present.tolist() == [[True] * 4, [True, True, True, False]]
    out_stem = net.stem.output.view(2, 4, -1, 32, 32, 32)
    anchor = net.stem.anchor(net.stem.features, net.stem.present)
    torch.testing.assert_close(out_stem[1, 3], anchor[1, 0])
    assert torch.isfinite(net.stem.alignment_loss())
    with pytest.raises(UserInputError, match="does not divide evenly"):
        read_form(type("nnUNetTrainerFB", (), attrs), arch, 3)


@pytest.mark.parametrize("trainer", ["nnUNetTrainerMTGTeacherMixture", "nnUNetTrainerMTGTeacherFirstBlock"])
def test_invariant_teachers_alignment_term_survives_shrinking_its_norm(trainer):
    """The scale-invariance check on the invariant forms' networks: the aligned features' norm scale and shift x 0.05 change
    the alignment term by less than 2x (the default's raw loss falls by s^2, see
    test_invariant_loss_ignores_a_rescaling_raw_does_not), and the prediction not at all."""
    import nnunetv2_mtg.trainers.nnUNetTrainerMTGTeacher as module

    arch = architecture("PlainConvUNet")
    form = read_form(getattr(module, trainer), arch, 4)
    net = wrap(form, small_unet(input_channels=input_channels(form, 4)), 4).train()
    torch.manual_seed(1)
    x = torch.randn(2, 4, 32, 32, 32)
    x[0, 1] = 0
    norm = net.stem.block[1] if form.placement == "front" else net.stem.block.norm
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    torch.manual_seed(2)
    before, out_before = None, None
    for s in (1.0, 0.05):
        with torch.no_grad():
            norm.weight.mul_(s)
            norm.bias.mul_(s)
            out = net.eval()(x)[0]
            net.train()(x)
        term = net.stem.alignment_loss().item()
        if before is None:
            before, out_before = term, out
    assert before / 2 < term < before * 2
    # the encoder's own norm undoes the rescaling (up to its eps): the segmentation is the same
    assert (out.argmax(1) == out_before.argmax(1)).float().mean() > 0.99


@pytest.mark.parametrize("placement", ["front", "first_block"])
def test_stem_network_under_torch_compile(placement):
    """nnU-Net compiles the network on CUDA by default; the stem's substitution and the values it keeps for the
    loss must survive compilation (aot_eager: the same graph capture on the CPU)."""
    arch = architecture("PlainConvUNet")
    form = read_form(type("nnUNetTrainerC", (), {"stem_anchor": "mixture", "stem_placement": placement}), arch, 4)
    net = wrap(form, small_unet(input_channels=input_channels(form, 4)), 4)
    compiled = torch.compile(net, backend="aot_eager")
    x = torch.randn(2, 4, 32, 32, 32)
    x[0, 1] = 0
    x[1, 2:] = 0
    eager_out = net.train()(x)[0]
    eager_loss = net.stem.alignment_loss()
    out = compiled.train()(x)[0]
    torch.testing.assert_close(out, eager_out, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(net.stem.alignment_loss(), eager_loss, rtol=1e-4, atol=1e-5)
    assert net.stem.present.tolist() == [[True, False, True, True], [True, True, False, False]]
    (out.square().mean() + net.stem.alignment_loss()).backward()
    assert net.stem.anchor.logits.grad is not None and torch.isfinite(net.stem.anchor.logits.grad).all()
    with torch.no_grad():
        compiled.eval()(x)
    assert net.stem.features is None  # eval: nothing kept, compiled or not
