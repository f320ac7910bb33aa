"""LossWithTerms: the weighted sum a trainer's loss is, what it logs, and that validation sees nnU-Net's loss only."""
import pytest
import torch

from nnunetv2_mtg.loss_terms import LossWithTerms


def _loss(training: bool):
    seg = lambda output, target: (output - target).square().mean()  # noqa: E731
    terms = {"a": (0.5, lambda output, target: output.sum()),
             "b": (2.0, lambda output, target: torch.tensor(3.0)),
             "logged_only": (0.0, lambda output, target: torch.tensor(7.0))}
    return LossWithTerms(seg, lambda: training, terms)


def test_weights_multiply_and_a_zero_weight_is_logged_not_added():
    output, target = torch.tensor([1.0, 2.0], requires_grad=True), torch.tensor([0.0, 0.0])
    loss = _loss(training=True)
    total = loss(output, target)
    assert total.item() == pytest.approx(2.5 + 0.5 * 3.0 + 2.0 * 3.0)  # seg 2.5, a = 3, b = 3; logged_only not added
    total.backward()
    assert output.grad.tolist() == pytest.approx([1.0 + 0.5, 2.0 + 0.5])  # d seg + 0.5 * d sum
    logged = loss.pop_last_terms()
    assert {k: float(v) for k, v in logged.items()} == {"a": 3.0, "b": 3.0, "logged_only": 7.0}  # unweighted
    assert loss.pop_last_terms() == {}  # popped once per step


def test_validation_gets_the_segmentation_loss_alone():
    output, target = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0])
    loss = _loss(training=False)
    assert loss(output, target).item() == pytest.approx(2.5)
    assert loss.pop_last_terms() == {}
