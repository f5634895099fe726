import numpy as np
import pytest
import torch

from mstbnn.compiler.mst import build_schedule
from mstbnn.nn.layers import BinaryConv2d, BinaryLinear
from mstbnn.nn.regularizer import DISTANCES, MSTRegularizer, lambda_at, xnor_layer_weights


def _layers(seed):
    torch.manual_seed(seed)
    return [BinaryLinear(24, 16), BinaryConv2d(3, 8, 3)]


@pytest.mark.parametrize("negation,max_depth", [(False, None), (True, None), (False, 2), (True, 3)])
def test_rebuild_uses_compiler_trees(negation, max_depth):
    layers = _layers(0)
    reg = MSTRegularizer(layers, negation=negation, max_depth=max_depth)
    reg.rebuild()
    for layer, sched in zip(layers, reg.schedules):
        want = build_schedule((layer.latent_matrix().detach() >= 0).numpy(), negation=negation, max_depth=max_depth)
        assert np.array_equal(sched.parent, want.parent) and np.array_equal(sched.negate, want.negate)
        if max_depth is not None:
            assert sched.height <= max_depth
    assert reg.mst_weight() == sum(s.weight for s in reg.schedules)


@pytest.mark.parametrize("distance", DISTANCES)
def test_penalty_zero_on_identical_channels(distance):
    layer = BinaryLinear(10, 6)
    with torch.no_grad():
        layer.weight.copy_(torch.linspace(-1, 1, 10).repeat(6, 1))
    reg = MSTRegularizer([layer], distance=distance, margin=0.0)
    reg.rebuild()
    assert reg.mst_weight() == 0
    assert float(reg.penalty().detach()) == 0.0


@pytest.mark.parametrize("distance", DISTANCES)
def test_negation_edge_pulls_toward_negated_parent(distance):
    layer = BinaryLinear(12, 2)
    base = torch.linspace(-1, 1, 12) + 0.05
    with torch.no_grad():
        layer.weight.copy_(torch.stack([base, -base]))
    plain = MSTRegularizer([layer], distance=distance, margin=0.0)
    plain.rebuild()
    neg = MSTRegularizer([layer], distance=distance, negation=True, margin=0.0)
    neg.rebuild()
    assert neg.schedules[0].negate.any()
    assert float(neg.penalty().detach()) == 0.0 < float(plain.penalty().detach())


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("seed", [0, 1])
def test_minimising_penalty_shrinks_tree_weight(distance, seed):
    layers = _layers(seed)
    reg = MSTRegularizer(layers, distance=distance)
    reg.rebuild()
    before = reg.mst_weight()
    params = [l.weight for l in layers]
    opt = torch.optim.Adam(params, lr=0.05)
    for step in range(60):
        if step % 10 == 0:
            reg.rebuild()
        opt.zero_grad()
        reg.penalty().backward()
        opt.step()
        with torch.no_grad():
            for p in params:
                p.clamp_(-1, 1)
    reg.rebuild()
    assert reg.mst_weight() < before / 2


def test_penalty_before_rebuild_and_unknown_distance():
    with pytest.raises(RuntimeError):
        MSTRegularizer(_layers(0)).penalty()
    with pytest.raises(ValueError):
        MSTRegularizer(_layers(0), distance="cosine")


@pytest.mark.parametrize("epoch,warmup,ramp,want", [(0, 2, 4, 0.0), (1, 2, 4, 0.0), (2, 2, 4, 2.5), (5, 2, 4, 10.0),
                                                    (9, 2, 4, 10.0), (0, 0, 0, 10.0)])
def test_lambda_schedule(epoch, warmup, ramp, want):
    assert lambda_at(epoch, 10.0, warmup, ramp) == pytest.approx(want)


@pytest.mark.parametrize("evaluations,sizes", [([1, 1, 1], [100, 400, 20]), ([64, 16, 1], [288, 18432, 32768])])
def test_xnor_layer_weights_count_each_weight_by_its_xnors(evaluations, sizes):
    w = xnor_layer_weights(evaluations, sizes)
    assert sum(a * n for a, n in zip(w, sizes)) == pytest.approx(1.0)
    # Per weight, a layer's factor is proportional to its evaluations per inference.
    assert [a / w[0] for a in w] == pytest.approx([e / evaluations[0] for e in evaluations])
