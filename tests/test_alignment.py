"""The alignment wrapper on nnU-Net's two U-Nets, and the closed-form KL terms."""
import math

import pytest
import torch

from helpers import NETWORKS, small_unet
from nnunetv2_mtg.alignment import AlignedUNet, kl_between_gaussians, kl_to_standard_normal, unwrap


@pytest.mark.parametrize("kind", list(NETWORKS))
def test_wrapper_shapes_eval_determinism_and_identity_start(kind):
    stock = small_unet(kind)
    net = AlignedUNet(stock, stages=(-1, 2))
    x = torch.randn(2, 4, 32, 32, 32)
    out = net(x)
    assert [tuple(o.shape) for o in out] == [(2, 3, 32, 32, 32), (2, 3, 16, 16, 16), (2, 3, 8, 8, 8)]
    assert set(net.latents) == {2, 3} and net.latents[3][0].shape == (2, 64, 4, 4, 4)
    assert torch.isfinite(net.alignment_loss()) and net.alignment_loss() > 0
    train_again = net(x)[0]
    assert not torch.allclose(out[0], train_again)  # z is sampled in training
    net.eval()
    stock.eval()
    with torch.no_grad():
        a, b = net(x)[0], net(x)[0]
        assert torch.equal(a, b)  # eval uses mu
        # an untrained head is the identity on mu, so eval output equals the stock network's
        torch.testing.assert_close(a, stock(x)[0])
    net.decoder.deep_supervision = False  # what nnU-Net's set_deep_supervision_enabled(False) does
    with torch.no_grad():
        assert net(x).shape == (2, 3, 32, 32, 32)
    # checkpoints keep the stock keys; only the heads are added
    extra = set(net.state_dict()) - set(stock.state_dict())
    assert set(stock.state_dict()) <= set(net.state_dict())
    assert extra == {f"align.{s}.{p}.{w}" for s in (2, 3) for p in ("mu", "logvar") for w in ("weight", "bias")}


def test_kl_values_on_known_inputs():
    mu = torch.full((1, 2, 3, 3, 3), 1.0)
    assert kl_to_standard_normal(mu, torch.zeros_like(mu)).item() == pytest.approx(0.5)
    lv = torch.full_like(mu, math.log(4.0))
    assert kl_to_standard_normal(torch.zeros_like(mu), lv).item() == pytest.approx(0.5 * (4 - 1 - math.log(4)))
    assert kl_to_standard_normal(torch.zeros_like(mu), torch.zeros_like(mu)).item() == 0
    # KL(N(1, 4) || N(0, 1)) via the general formula equals the anchor special case
    assert kl_between_gaussians(mu, lv, torch.zeros_like(mu), torch.zeros_like(mu)).item() == pytest.approx(
        0.5 * (1 + 4 - 1 - math.log(4)))
    # KL(N(0, 1) || N(2, 9)) = log 3 + (1 + 4) / 18 - 1/2
    assert kl_between_gaussians(torch.zeros_like(mu), torch.zeros_like(mu), torch.full_like(mu, 2.0),
                                torch.full_like(mu, math.log(9.0))).item() == pytest.approx(
        math.log(3) + 5 / 18 - 0.5, rel=1e-6)


def test_alignment_loss_through_the_heads():
    net = AlignedUNet(small_unet("PlainConvUNet"))
    head = net.align["3"]
    with torch.no_grad():  # mu = 0, log sigma^2 = log 4 everywhere
        head.mu.weight.zero_()
        head.logvar.bias.fill_(math.log(4.0))
    net(torch.randn(1, 4, 32, 32, 32))
    assert net.alignment_loss().item() == pytest.approx(0.5 * (4 - 1 - math.log(4)), rel=1e-5)


def test_unknown_network_class_is_named():
    class MyNet(torch.nn.Module):
        pass

    with pytest.raises(ValueError, match="MyNet"):
        AlignedUNet(MyNet())


def test_survives_torch_compile():
    net = AlignedUNet(small_unet("ResidualEncoderUNet")).eval()
    compiled = torch.compile(net, backend="aot_eager")
    x = torch.randn(1, 4, 32, 32, 32)
    with torch.no_grad():
        expected = net(x)[0]
        got = compiled(x)[0]
    torch.testing.assert_close(got, expected)
    assert unwrap(compiled) is net and 3 in unwrap(compiled).latents
    compiled.train()
    loss = compiled(x)[0].mean() + unwrap(compiled).alignment_loss()
    loss.backward()
    assert net.align["3"].logvar.weight.grad is not None


def test_plans_with_unknown_network_fail_before_training():
    from nnunetv2_mtg.alignment import check_plans_network
    from nnunetv2_mtg.env import UserInputError

    plans = {"plans_name": "myPlans", "configurations": {
        "3d_fullres": {"architecture": {"network_class_name": "my_package.nets.SwinUNETR"}},
        "3d_lowres_like": {"inherits_from": "3d_fullres"},
        "ok": {"architecture": {"network_class_name": NETWORKS["ResidualEncoderUNet"][0]}}}}
    for cfg in ("3d_fullres", "3d_lowres_like"):
        with pytest.raises(UserInputError, match="network class SwinUNETR"):
            check_plans_network(plans, cfg)
    check_plans_network(plans, "ok")
