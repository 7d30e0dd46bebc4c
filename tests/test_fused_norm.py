"""The fused GroupNorm (+ residual add, + ReLU) kernels of `norm_options.impl: triton` against PyTorch's ops.

On the CPU the Triton kernels run in Triton's interpreter (tests/conftest.py sets TRITON_INTERPRET=1), so these
tests check the kernels' arithmetic (values and gradients, float32 and bf16, both memory formats, odd shapes, many
tiles); on a GPU machine the same tests run the compiled kernels on CUDA tensors.
"""

import pytest
import torch
import torch.nn.functional as F
from nets import tiny_i3d
from numerics import assert_same_function, fan_in_sum
from torch import nn

from videogn.errors import ConfigError
from videogn.models import build_model, fuse_norm_activations
from videogn.models.norm import GroupNorm3d, make_norm
from videogn.models.resnet import FusedResBlock
from videogn.ops import group_norm as fused_norm

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # where the kernels run: compiled on CUDA, else interpreted
pytestmark = pytest.mark.skipif(
    not fused_norm.kernels_run_on(torch.empty(0, device=DEVICE)), reason="needs Triton (its interpreter on the CPU)"
)

FORMATS = {"contiguous": torch.contiguous_format, "channels_last_3d": torch.channels_last_3d}


def reference(x, groups, weight, bias, eps, residual, relu):
    """The same function composed of PyTorch's ops, in float32."""
    y = F.group_norm(x.float(), groups, weight, bias, eps)
    if residual is not None:
        y = y + residual.float()
    return F.relu(y) if relu else y


def run_both(x, groups, affine, residual, relu, device=DEVICE):
    """(output, gradients) of the fused op and of the reference for one random upstream gradient."""
    c = x.shape[1]
    weight = torch.randn(c, device=device, requires_grad=True) if affine else None
    bias = torch.randn(c, device=device, requires_grad=True) if affine else None
    inputs = [t for t in (x, weight, bias, residual) if t is not None]
    fused = fused_norm.group_norm_act(x, groups, weight, bias, 1e-5, residual, relu)
    expected = reference(x, groups, weight, bias, 1e-5, residual, relu)
    grad = torch.randn_like(expected)
    return (
        fused,
        expected,
        torch.autograd.grad(fused, inputs, grad.to(fused.dtype)),
        torch.autograd.grad(expected, inputs, grad),
    )


# (groups, affine, residual, relu): GN with C/G = 3 (not a power of 2), + residual + ReLU, LN and IN without affine
VARIANTS = {
    "gn": (4, True, False, False),
    "gn+residual+relu": (4, True, True, True),
    "ln+relu": (1, False, False, True),
    "in+residual": (12, False, True, False),
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_values_and_gradients_match_pytorch(fmt, dtype, variant):
    groups, affine, with_residual, relu = VARIANTS[variant]
    torch.manual_seed(0)
    shape = (2, 12, 3, 5, 7)
    x = (torch.randn(shape, device=DEVICE) * 3 + 2).to(dtype).contiguous(memory_format=FORMATS[fmt]).requires_grad_()
    # the residual in the other memory format, as a shortcut branch may be
    other = torch.channels_last_3d if fmt == "contiguous" else torch.contiguous_format
    residual = torch.randn(shape, device=DEVICE).to(dtype).contiguous(memory_format=other) if with_residual else None
    if residual is not None:
        residual.requires_grad_()
    fused, expected, grads, expected_grads = run_both(x, groups, affine, residual, relu)
    assert fused.dtype == dtype and fused.is_contiguous(memory_format=FORMATS[fmt])
    group = x[0].numel() // groups  # the statistics (and the backward's two sums) add this many values
    for got, want in zip((fused, *grads), (expected, *expected_grads), strict=True):
        assert got.dtype == want.dtype or got is fused
        if dtype == torch.float32:
            assert_same_function(got, want.to(got.dtype), terms=group)
        else:  # bf16 output: one bf16 rounding of each value (3 significant digits) on top of float32 statistics
            torch.testing.assert_close(got.float(), want.float(), atol=4e-2, rtol=2e-2)


@pytest.mark.slow
def test_statistics_stay_exact_for_offset_groups_spread_over_many_tiles(monkeypatch):
    # tiny tiles: each group's 3·4·6·6 = 432 elements fall into 27 tiles, merged 4 at a time; a mean of 1000 with unit
    # spread loses the variance to cancellation if the statistics were E[x²] − E[x]² in float32
    monkeypatch.setattr(fused_norm, "TILE_ELEMENTS", 16)
    monkeypatch.setattr(fused_norm, "MERGE_BLOCK", 4)
    torch.manual_seed(0)
    for fmt in FORMATS.values():
        x = (torch.randn(1, 12, 4, 6, 6, dtype=torch.float64, device=DEVICE) + 1000).contiguous(memory_format=fmt)
        exact = F.group_norm(x, 4, eps=1e-5)  # float64
        fused = fused_norm.group_norm_act(x.float(), 4, eps=1e-5)
        torch.testing.assert_close(fused.double(), exact, atol=2e-3, rtol=0)


def test_gradient_of_a_broadcast_upstream_gradient():
    # y.sum() sends back an expanded gradient with all strides 0: read as it is, not as a dense tensor
    x = torch.randn(2, 8, 2, 3, 3, device=DEVICE, requires_grad=True)
    (got,) = torch.autograd.grad(fused_norm.group_norm_act(x, 2, relu=True).sum(), x)
    (want,) = torch.autograd.grad(reference(x, 2, None, None, 1e-5, None, True).sum(), x)
    assert_same_function(got, want, terms=x[0].numel() // 2)


def test_without_triton_the_cpu_computes_the_same_with_pytorch(monkeypatch):
    monkeypatch.setattr(fused_norm, "load_kernels", lambda: False)  # as torch without Triton (macOS, Windows)
    x, residual = torch.randn(2, 8, 2, 3, 3), torch.randn(2, 8, 2, 3, 3)
    got = fused_norm.group_norm_act(x, 4, residual=residual, relu=True)
    torch.testing.assert_close(got, reference(x, 4, None, None, 1e-5, residual, True))


def test_impl_setting_is_checked_and_other_kinds_ignore_it():
    with pytest.raises(ConfigError, match="impl 'cuda' is not one of native, triton"):
        GroupNorm3d(16, 4, impl="cuda")
    assert isinstance(make_norm("bn", impl="triton")(16), nn.BatchNorm3d)  # one config switches gn ↔ bn
    assert make_norm("gn", num_groups=4, impl="triton")(16).impl == "triton"
    with pytest.raises(ValueError, match="both weight and bias"):
        fused_norm.group_norm_act(torch.zeros(1, 4, 1, 2, 2), 2, weight=torch.ones(4))
    with pytest.raises(ValueError, match="residual of shape"):
        fused_norm.group_norm_act(torch.zeros(1, 4, 1, 2, 2), 2, residual=torch.zeros(1, 4, 1, 2, 1))


def test_triton_impl_fuses_every_relu_and_residual_add_and_keeps_the_state_dict():
    native, fused = (
        tiny_i3d(impl="native", zero_init_residual=False, device=DEVICE),
        tiny_i3d(impl="triton", zero_init_residual=False, device=DEVICE),
    )
    assert not any(isinstance(m, nn.ReLU) for m in fused.modules())
    blocks = [m for m in fused.modules() if isinstance(m, FusedResBlock)]
    assert len(blocks) == 16 and all(b.branch2.norm_c.relu for b in blocks)
    # stem + 2 per bottleneck + 16 residual adds (done at build time; a second pass finds nothing left)
    assert sum(isinstance(m, GroupNorm3d) and m.relu for m in fused.modules()) == 1 + 2 * 16 + 16
    assert fuse_norm_activations(fused) == 0
    assert fused.state_dict().keys() == native.state_dict().keys()
    assert fuse_norm_activations(build_model("i3d", 50, num_classes=4, norm="bn", width=8)) == 0


@pytest.mark.slow  # the interpreter runs ~150 kernel launches per step
@pytest.mark.parametrize("fmt", ["contiguous"])  # channels_last_3d: the values and gradients tests above
def test_network_with_fused_kernels_trains_as_the_native_one(fmt):
    native, fused = (
        tiny_i3d(impl="native", memory_format=FORMATS[fmt], zero_init_residual=False, device=DEVICE),
        tiny_i3d(impl="triton", memory_format=FORMATS[fmt], zero_init_residual=False, device=DEVICE),
    )
    fused.load_state_dict(native.state_dict())
    x = torch.randn(2, 3, 4, 16, 16, device=DEVICE).contiguous(memory_format=FORMATS[fmt])
    y = torch.tensor([0, 3], device=DEVICE)
    results = []
    for net in (native, fused):
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        results.append((loss.detach(), [p.grad for p in net.parameters()]))
    (loss_n, grads_n), (loss_f, grads_f) = results
    terms = fan_in_sum(native) + x[0].numel()  # the convolutions' sums, and the largest GN group's statistics
    assert_same_function(loss_f, loss_n, terms)
    for g_f, g_n in zip(grads_f, grads_n, strict=True):
        assert_same_function(g_f, g_n, terms)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_fused_network_is_one_graph_under_bf16_autocast(fmt):
    net = tiny_i3d(impl="triton", memory_format=FORMATS[fmt], zero_init_residual=False, device=DEVICE)
    x = torch.randn(1, 3, 4, 16, 16, device=DEVICE).contiguous(memory_format=FORMATS[fmt])
    with torch.autocast(DEVICE, dtype=torch.bfloat16):
        explained = torch._dynamo.explain(net)(x)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("fmt", FORMATS)
def test_cuda_kernels_at_i3d_shapes_in_bf16(fmt):
    # res2 and res5 of the I3D-R50 at 4 clips of 32×224² (the compiled kernels, not the interpreter)
    torch.manual_seed(0)
    for shape in ((4, 256, 8, 56, 56), (4, 2048, 4, 7, 7)):
        x = (torch.randn(shape, device="cuda") * 4 + 1).to(torch.bfloat16)
        x = x.contiguous(memory_format=FORMATS[fmt]).requires_grad_()
        residual = torch.randn(shape, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        fused, expected, grads, expected_grads = run_both(x, 32, True, residual, True, device="cuda")
        torch.testing.assert_close(fused.float(), expected, atol=5e-2, rtol=2e-2)
        for got, want in zip(grads, expected_grads, strict=True):
            scale = want.float().abs().max()
            assert (got.float() - want.float()).abs().max() / scale < 2e-2


def test_fusing_a_native_network_keeps_its_function():
    # fuse_norm_activations works on any GroupNorm3d network: with impl native, GN then the add and ReLU
    native = tiny_i3d(impl="native", zero_init_residual=False, device=DEVICE).eval()
    fused = tiny_i3d(impl="native", zero_init_residual=False, device=DEVICE).eval()
    assert fuse_norm_activations(fused) == 1 + 2 * 16 + 16
    x = torch.randn(2, 3, 4, 24, 24, device=DEVICE)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), native(x))
