"""GroupNorm3d against a reference formula, nn.GroupNorm, gradcheck; batch independence; make_norm factories."""

import pytest
import torch
from numerics import assert_same_function
from torch import nn

from videogn.errors import ConfigError
from videogn.models.norm import NORM_KINDS, FrozenBatchNorm3d, GroupNorm3d, SubBatchNorm3d, make_norm

SHAPES = [(2, 32, 4, 6, 6), (1, 64, 3, 5, 7), (3, 128, 2, 4, 4)]


def reference_group_norm(x: torch.Tensor, groups: int, weight: torch.Tensor, bias: torch.Tensor, eps: float):
    """Paper formula: per sample and group, mean / biased variance over C/G channels and all of T, H, W."""
    n, c = x.shape[:2]
    g = x.reshape(n, groups, -1).double()  # (N, G, C/G·T·H·W)
    mean = g.mean(-1, keepdim=True)
    var = g.var(-1, unbiased=False, keepdim=True)
    y = ((g - mean) / torch.sqrt(var + eps)).reshape(x.shape)
    shape = (1, c, 1, 1, 1)
    return (y * weight.double().view(shape) + bias.double().view(shape)).to(x.dtype)


def grouping_cases(c: int):
    return [
        ({"num_groups": 1}, 1),
        ({"num_groups": c}, c),
        ({"num_groups": 32}, 32),
        ({"num_groups": None, "channels_per_group": 16}, c // 16),
    ]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last_3d])
def test_matches_reference_formula_and_nn_groupnorm(shape, memory_format):
    torch.manual_seed(0)
    x = (torch.randn(shape) * 3 + 1).contiguous(memory_format=memory_format)
    for kwargs, groups in grouping_cases(shape[1]):
        gn = GroupNorm3d(shape[1], **kwargs)
        assert gn.num_groups == groups
        nn.init.normal_(gn.weight)
        nn.init.normal_(gn.bias)
        y = gn(x)
        assert y.is_contiguous(memory_format=memory_format), "output must keep the input's memory format"
        group = x[0].numel() // groups  # the statistics sum this many values
        assert_same_function(y, reference_group_norm(x, groups, gn.weight, gn.bias, gn.eps), terms=group)
        ref = nn.GroupNorm(groups, shape[1])
        ref.load_state_dict(gn.state_dict())
        assert_same_function(y, ref(x.contiguous()), terms=group)


def test_gradcheck_float64():
    gn = GroupNorm3d(8, num_groups=4).double()
    nn.init.normal_(gn.weight)
    x = torch.randn(2, 8, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gn, (x,))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_low_precision_stays_accurate(dtype):
    torch.manual_seed(0)
    gn = GroupNorm3d(64, num_groups=32)
    conv = nn.Conv3d(16, 64, 1)
    x = torch.randn(2, 16, 4, 8, 8) * 50 + 100  # a large mean: float16 statistics would lose it
    with torch.autocast("cpu", dtype=dtype):
        h = conv(x)
        y = gn(h)
    assert torch.isfinite(y).all()
    expected = reference_group_norm(h.float(), 32, gn.weight, gn.bias, gn.eps)
    torch.testing.assert_close(y.float(), expected, atol=0.05, rtol=0.05)


def test_batch_of_one_and_odd_sizes():
    gn = GroupNorm3d(32, num_groups=8)
    for shape in [(1, 32, 1, 1, 2), (1, 32, 7, 3, 5)]:
        y = gn(torch.randn(shape))
        assert y.shape == shape and torch.isfinite(y).all()


def test_batch_independence_gn_but_not_bn():
    torch.manual_seed(0)
    batch = torch.randn(8, 32, 2, 4, 4) + torch.arange(8.0).view(8, 1, 1, 1, 1)  # samples differ in mean
    gn = GroupNorm3d(32, num_groups=8)
    assert torch.equal(gn(batch[:1]), gn(batch)[:1])
    bn = nn.BatchNorm3d(32).train()
    assert not torch.allclose(bn(batch[:2])[:1], bn(batch)[:1], atol=1e-3)


def test_groups_must_divide_width_and_error_names_both():
    with pytest.raises(ValueError, match=r"width 48 .*num_groups=32"):
        GroupNorm3d(48, num_groups=32)
    with pytest.raises(ValueError, match=r"width 40 .*channels_per_group=16"):
        GroupNorm3d(40, channels_per_group=16)
    with pytest.raises(ValueError, match="not both"):
        GroupNorm3d(64, num_groups=8, channels_per_group=16)
    with pytest.raises(ValueError, match=r"\(N, C, T, H, W\)"):
        GroupNorm3d(32)(torch.randn(2, 32, 4, 4))


@pytest.mark.parametrize("kind", NORM_KINDS)
def test_factory_accepts_both_call_styles(kind):
    factory = make_norm(kind, **({"num_groups": 4} if kind == "gn" else {}))
    a = factory(16)
    b = factory(num_features=16, eps=1e-3, momentum=0.2)
    assert type(a) is type(b)
    x = torch.randn(2, 16, 2, 3, 3)
    assert a(x).shape == x.shape and b(x).shape == x.shape
    if kind in ("bn", "syncbn"):
        assert isinstance(b, nn.BatchNorm3d) and b.momentum == 0.2 and b.eps == 1e-3
    elif kind == "frozen_bn":
        assert isinstance(b, FrozenBatchNorm3d)
    else:
        assert isinstance(b, GroupNorm3d)
        assert b.num_groups == {"gn": 4, "ln": 1, "in": 16}[kind]


def test_factory_options_win_and_bad_options_are_named():
    assert make_norm("gn", eps=1e-6)(num_features=64, eps=1e-5).eps == 1e-6
    assert make_norm("gn", channels_per_group=16)(64).num_groups == 4
    assert make_norm("gn", momentum=0.1, num_groups=4)(num_features=16, momentum=0.2).num_groups == 4  # ignored
    assert isinstance(make_norm("bn", num_groups=4)(16), nn.BatchNorm3d)  # switching gn -> bn needs no other edit
    with pytest.raises(ValueError, match="unknown norm option.*groups"):
        make_norm("gn", groups=4)
    with pytest.raises(ValueError, match="unknown norm kind 'gm'"):
        make_norm("gm")


def test_frozen_bn_never_updates_statistics_and_loads_bn_weights():
    bn = nn.BatchNorm3d(8).train()
    bn(torch.randn(4, 8, 2, 3, 3) * 2 + 1)  # populate running stats
    frozen = FrozenBatchNorm3d(8)
    frozen.load_state_dict(bn.state_dict())  # num_batches_tracked accepted
    frozen.train()
    x = torch.randn(2, 8, 2, 3, 3)
    before = frozen.running_mean.clone()
    assert_same_function(frozen(x), bn.eval()(x), terms=4)  # scale and shift folded: a few roundings per value
    assert torch.equal(frozen.running_mean, before)
    assert not list(frozen.parameters())  # γ and β are frozen too (torchvision's and detectron2's FrozenBN)
    assert set(frozen.state_dict()) == {"weight", "bias", "running_mean", "running_var"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last_3d])
def test_cuda_autocast_keeps_low_precision_and_accuracy(memory_format):
    torch.manual_seed(0)
    gn = GroupNorm3d(64, num_groups=32).cuda()
    nn.init.normal_(gn.weight, 1.0, 0.1)
    x = (torch.randn(2, 64, 4, 8, 8, device="cuda") * 20 + 50).contiguous(memory_format=memory_format)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = gn(x.bfloat16())
    assert y.dtype == torch.bfloat16  # not upcast to float32 by autocast
    assert y.is_contiguous(memory_format=memory_format)
    expected = reference_group_norm(x.bfloat16().float(), 32, gn.weight, gn.bias, gn.eps)
    torch.testing.assert_close(y.float(), expected, atol=0.05, rtol=0.02)
    y.float().sum().backward()
    assert gn.weight.grad is not None and gn.weight.grad.dtype == torch.float32


def test_sub_batch_bn_equals_separate_bn_layers_on_the_chunks():
    torch.manual_seed(0)
    x = (torch.randn(6, 4, 3, 5, 5) * 2 + 1).requires_grad_()
    sub = make_norm("bn", bn_clips=2)(4)
    assert isinstance(sub, SubBatchNorm3d) and sub.clips == 2
    with torch.no_grad():
        sub.weight.uniform_(0.5, 1.5), sub.bias.uniform_(-1, 1)
    y = sub(x)
    y.pow(2).sum().backward()
    # three "GPUs" with 2 clips each: the same γ, β
    separate = [nn.BatchNorm3d(4) for _ in range(3)]
    x_ref = x.detach().clone().requires_grad_()
    for bn in separate:
        bn.weight.data.copy_(sub.weight.detach()), bn.bias.data.copy_(sub.bias.detach())
    y_ref = torch.cat([bn(chunk) for bn, chunk in zip(separate, x_ref.chunk(3), strict=True)])
    y_ref.pow(2).sum().backward()
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(sub.weight.grad, sum(bn.weight.grad for bn in separate))
    # running statistics: those of the whole batch (the chunks' merged), as one BN layer on all 6 clips keeps them
    whole = nn.BatchNorm3d(4)
    whole(x.detach())
    torch.testing.assert_close(sub.running_mean, whole.running_mean)
    torch.testing.assert_close(sub.running_var, whole.running_var)
    sub.eval(), whole.eval()
    whole.weight.data, whole.bias.data = sub.weight.data, sub.bias.data
    torch.testing.assert_close(sub(x.detach()), whole(x.detach()))  # eval: the merged statistics
    assert set(sub.state_dict()) == set(whole.state_dict())  # loads where BatchNorm3d does


def test_sub_batch_bn_refuses_a_batch_that_is_not_a_multiple():
    sub = make_norm("bn", bn_clips=4)(8)
    with pytest.raises(ConfigError, match="bn_clips.*batch of 6 clips"):
        sub(torch.randn(6, 8, 2, 3, 3))
    assert type(make_norm("gn", num_groups=2, bn_clips=4)(8)) is GroupNorm3d  # other kinds ignore the option
