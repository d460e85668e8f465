"""Gradient clipping (the lecture's rule) and the learning-rate schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from elman.train.optim import (
    LRSchedule,
    ParameterAverage,
    build_optimizer,
    clip_grad_norm,
    clip_grad_value,
)


def params_with_grads(seed: int, scale: float) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(3, 4), (5,), (2, 2, 2)]
    params = []
    for shape in shapes:
        p = torch.nn.Parameter(torch.zeros(shape))
        p.grad = scale * torch.randn(shape, generator=g)
        params.append(p)
    params.append(torch.nn.Parameter(torch.zeros(2)))  # no gradient: skipped
    return params


def lecture_rule(grads: list[np.ndarray], threshold: float) -> tuple[list[np.ndarray], float]:
    """if ‖g‖ ≥ threshold: g ← threshold/‖g‖ · g, with g all gradients concatenated (float64)."""
    flat = np.concatenate([g.ravel() for g in grads])
    norm = float(np.sqrt((flat**2).sum()))
    if norm >= threshold:
        grads = [threshold / norm * g for g in grads]
    return grads, norm


@pytest.mark.parametrize("scale", [0.01, 1.0, 30.0])
def test_clip_grad_norm_is_the_lecture_rule_and_torch(scale):
    threshold = 1.5
    ours = params_with_grads(0, scale)
    ref = params_with_grads(0, scale)
    expected, expected_norm = lecture_rule(
        [p.grad.double().numpy() for p in ours if p.grad is not None], threshold
    )
    norm, fired = clip_grad_norm(ours, threshold)
    torch_norm = torch.nn.utils.clip_grad_norm_(ref, threshold)
    assert bool(fired) == (expected_norm >= threshold)
    assert norm.item() == pytest.approx(expected_norm, rel=1e-6)  # the pre-clip norm
    assert norm.item() == pytest.approx(torch_norm.item(), rel=1e-6)
    got = [p.grad for p in ours if p.grad is not None]
    for g, e, r in zip(got, expected, [p.grad for p in ref if p.grad is not None], strict=True):
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-5, atol=1e-8)
        # torch divides by ‖g‖ + 1e-6, so it agrees up to that epsilon
        torch.testing.assert_close(g, r, rtol=2e-6 / threshold + 1e-6, atol=1e-7)
    after = math.sqrt(sum(float((g.double() ** 2).sum()) for g in got))
    assert after <= threshold * (1 + 1e-6)


def test_clip_fires_exactly_at_the_threshold():
    def one(threshold: float):
        p = torch.nn.Parameter(torch.zeros(2))
        p.grad = torch.tensor([3.0, 4.0])  # ‖g‖ = 5 exactly in float32
        norm, fired = clip_grad_norm([p], threshold)
        return p.grad, norm.item(), bool(fired)

    grad, norm, fired = one(5.0)
    assert fired and norm == 5.0 and torch.equal(grad, torch.tensor([3.0, 4.0]))
    grad, norm, fired = one(5.0001)
    assert not fired and torch.equal(grad, torch.tensor([3.0, 4.0]))
    grad, norm, fired = one(2.5)
    assert fired and norm == 5.0 and torch.allclose(grad, torch.tensor([1.5, 2.0]))


def test_clip_without_gradients_is_a_no_op():
    norm, fired = clip_grad_norm([torch.nn.Parameter(torch.ones(3))], 1.0)
    assert norm.item() == 0.0 and not bool(fired)


def test_clip_grad_value_matches_torch():
    ours, ref = params_with_grads(1, 2.0), params_with_grads(1, 2.0)
    clip_grad_value(ours, 0.7)
    torch.nn.utils.clip_grad_value_(ref, 0.7)
    for a, b in zip(ours, ref, strict=True):
        if a.grad is None:
            assert b.grad is None
            continue
        assert torch.equal(a.grad, b.grad)
        assert a.grad.abs().max() <= 0.7


def rates(schedule: LRSchedule, losses: list[float]) -> list[float]:
    """The rate of epochs 1, 2, ...: the first is the base rate, each later one from step()."""
    out = [schedule.lr]
    for epoch, loss in enumerate(losses, start=1):
        out.append(schedule.step(epoch, loss))
    return out


def test_fixed_schedule_is_zaremba():
    # Zaremba et al. 2014 (small): lr 1 for 4 epochs, then halved after every epoch.
    s = LRSchedule("fixed", 1.0, decay=0.5, decay_start=4)
    got = rates(s, [5.0] * 8)
    assert got == [1.0, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125]
    # the validation loss plays no part
    s2 = LRSchedule("fixed", 1.0, decay=0.5, decay_start=4)
    assert rates(s2, [9.0, 1.0, 5.0, 0.5, 7.0, 0.1, 3.0, 2.0]) == got


def test_plateau_schedule_decays_only_when_validation_stops_improving():
    s = LRSchedule("plateau", 20.0, decay=0.25, decay_start=1)
    got = rates(s, [5.0, 4.0, 4.0, 3.0, 3.5, 2.0])
    assert got == [20.0, 20.0, 20.0, 5.0, 5.0, 1.25, 1.25]


def test_newbob_schedule_is_rnnlm():
    # Full rate while each epoch gains more than 0.3%; then halve after every epoch; the second
    # epoch without such a gain ends training (Mikolov's RNNLM, min_improvement 1.003).
    s = LRSchedule("newbob", 0.1, decay=0.5, decay_start=1, min_improvement=0.003)
    got = rates(s, [6.0, 5.0, 4.999, 4.5, 4.2])
    assert got == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.025, 0.0125])
    assert s.annealing and not s.done
    s.step(6, 4.199)  # under 0.3% better while annealing
    assert s.done


def test_min_improvement_makes_a_small_gain_count_as_none():
    s = LRSchedule("plateau", 1.0, decay=0.5, decay_start=1, min_improvement=0.01)
    assert rates(s, [5.0, 4.99, 4.0]) == [1.0, 1.0, 0.5, 0.5]


def test_constant_schedule_and_min_lr():
    assert rates(LRSchedule("constant", 0.1, decay=0.5, decay_start=1), [3, 4, 5]) == [0.1] * 4
    s = LRSchedule("fixed", 1.0, decay=0.1, decay_start=1, min_lr=0.005)
    assert rates(s, [1.0] * 4) == pytest.approx([1.0, 0.1, 0.01, 0.005, 0.005])


def test_schedule_state_round_trip():
    s = LRSchedule("plateau", 1.0, decay=0.5, decay_start=1)
    rates(s, [3.0, 4.0])
    t = LRSchedule("plateau", 1.0, decay=0.5, decay_start=1)
    t.load_state_dict(s.state_dict())
    assert t.step(3, 3.5) == s.step(3, 3.5) == 0.25
    n = LRSchedule("newbob", 1.0, decay=0.5, decay_start=1)
    rates(n, [3.0, 4.0])
    m = LRSchedule("newbob", 1.0, decay=0.5, decay_start=1)
    m.load_state_dict(n.state_dict())
    assert m.annealing and m.step(3, 5.0) == n.step(3, 5.0) and m.done and n.done


def test_parameter_average_is_the_mean_of_the_iterates_and_swap_is_its_own_inverse():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(3, 2))
    b = torch.nn.Parameter(torch.randn(2))
    avg = ParameterAverage([w, b])
    seen = [(w.detach().clone(), b.detach().clone())]
    for _ in range(4):
        with torch.no_grad():
            w.add_(torch.randn(3, 2))
            b.mul_(1.5)
        avg.update()
        seen.append((w.detach().clone(), b.detach().clone()))
    assert avg.count == 5
    torch.testing.assert_close(avg.mean[0], torch.stack([x for x, _ in seen]).mean(0))
    torch.testing.assert_close(avg.mean[1], torch.stack([y for _, y in seen]).mean(0))
    last_w = w.detach().clone()
    avg.swap()
    torch.testing.assert_close(w.detach(), torch.stack([x for x, _ in seen]).mean(0))
    avg.swap()
    assert torch.equal(w.detach(), last_w)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="plateau, newbob, fixed, constant"):
        LRSchedule("cosine", 1.0, decay=0.5, decay_start=1)
    with pytest.raises(ValueError, match="sgd, adam, adamw"):
        build_optimizer("rmsprop", [torch.nn.Parameter(torch.ones(1))], lr=1.0)


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("sgd", {"weight_decay": 1e-3}),
        ("sgd", {"momentum": 0.9, "weight_decay": 1e-3}),
        ("adam", {"weight_decay": 1e-3}),
        ("adamw", {"weight_decay": 1e-2}),
    ],
)
def test_fused_optimisers_take_pytorchs_loop_steps(name, settings):
    """build_optimizer's fused update against PyTorch's op-by-op loop (fused=False,
    foreach=False) over five steps: SGD bit for bit, Adam and AdamW to float32 rounding."""
    loop_class = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    lr = 0.5 if name == "sgd" else 0.01
    fused = [torch.nn.Parameter(torch.randn(40, 7, generator=torch.Generator().manual_seed(3)))]
    loop = [torch.nn.Parameter(fused[0].detach().clone())]
    opt = build_optimizer(name, fused, lr=lr, **settings)
    assert opt.param_groups[0]["fused"]
    ref = loop_class[name](loop, lr=lr, foreach=False, fused=False, **settings)
    g = torch.Generator().manual_seed(4)
    for _ in range(5):
        grad = torch.randn(40, 7, generator=g)
        fused[0].grad, loop[0].grad = grad.clone(), grad.clone()
        opt.step()
        ref.step()
    assert not torch.equal(fused[0], torch.randn(40, 7, generator=torch.Generator().manual_seed(3)))
    if name == "sgd":
        assert torch.equal(fused[0], loop[0])
    else:
        torch.testing.assert_close(fused[0], loop[0], rtol=1e-6, atol=1e-7)
