"""torch.compile of the network (`model.compile`): one graph, no break, for every norm kind and memory format under
bf16 autocast; compiled and eager training steps agree; a real fit with --model.compile true."""

import pytest
import torch
from conftest import data_args
from helpers import scalars
from nets import tiny_i3d
from numerics import assert_same_function, fan_in_sum

from videogn.cli import main
from videogn.errors import ConfigError
from videogn.train.module import VideoClassifier


@pytest.mark.slow
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last_3d])
@pytest.mark.parametrize("norm", ["gn", "bn", "ln"])
def test_one_graph_no_break_under_bf16_autocast(norm, memory_format):
    net = tiny_i3d(norm, memory_format=memory_format)
    x = torch.randn(2, 3, 4, 32, 32).contiguous(memory_format=memory_format)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        explained = torch._dynamo.explain(net)(x)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["native", "triton"])
def test_compiled_and_eager_steps_agree_in_bf16(impl):
    # the traced graph (AOT autograd's forward and backward, as inductor receives them) gives eager's outputs and
    # gradients within bf16 rounding; with impl triton the fused GN kernels (interpreted on the CPU) are custom ops
    # inside the compiled graph. The stem and res2 (GN, residual adds, shortcut): the whole network's graph is
    # checked above, and its training steps in a compiled fit below. backend aot_eager: the graph, not inductor's
    # code generation, is what is tested here
    net = torch.nn.Sequential(*tiny_i3d("gn", impl=impl).blocks[:2])
    compiled = torch.compile(net, fullgraph=True, dynamic=False, backend="aot_eager")
    x = torch.randn(2, 3, 4, 16, 16)
    results = []
    for forward in (net, compiled):
        net.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = forward(x)
        loss = out.float().square().mean()
        loss.backward()
        results.append((loss.detach(), [p.grad.float().clone() for p in net.parameters() if p.grad is not None]))
    (loss_e, grads_e), (loss_c, grads_c) = results
    torch.testing.assert_close(loss_c, loss_e, atol=2e-2, rtol=2e-2)
    assert len(grads_e) == len(grads_c) > 0
    for g_e, g_c in zip(grads_e, grads_c, strict=True):
        scale = g_e.abs().max().clamp_min(1e-3)
        assert (g_c - g_e).abs().max() / scale < 0.1  # bf16: ~3 significant digits per op


@pytest.mark.slow
def test_inductor_compiles_the_network():
    # the one test of inductor's code generation (cold on two cores: about a second per layer, so a forward of the
    # stem, res2, pool2 and res3: every kind of layer the network has, bottlenecks with strided shortcut convs among
    # them; the whole network's graph: the explain test above). pytorchvideo's NumPy strides once made inductor fail
    # on those shortcuts (models/resnet._plain_int_geometry)
    net = torch.nn.Sequential(*tiny_i3d("gn").blocks[:4]).eval()
    compiled = torch.compile(net, fullgraph=True, dynamic=False)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        eager, fused = net(x), compiled(x)
    # float32, fused and reordered sums: a few units of rounding per layer
    assert_same_function(fused, eager, terms=fan_in_sum(net))


def test_compile_mode_settings_are_checked():
    with pytest.raises(ConfigError, match="needs model.compile true"):
        VideoClassifier(compile_mode="reduce-overhead")
    with pytest.raises(ConfigError, match="not a torch.compile mode"):
        VideoClassifier(compile=True, compile_mode="fast")


def test_cuda_graph_mode_refuses_a_batch_of_another_size():
    model = VideoClassifier(compile=True, compile_mode="reduce-overhead")
    model.compiled.net, model.compiled.batch = (lambda clips: clips), 8  # as after a first step of 8 clips
    with pytest.raises(ConfigError, match="compile_mode reduce-overhead.*got 6 clips after 8"):
        model.train_forward(torch.zeros(6, 3, 4, 32, 32))


@pytest.mark.slow
def test_fit_with_compile_gives_the_eager_first_loss(synthetic_set, tmp_path, monkeypatch):
    from torch._dynamo.utils import counters

    # the fit's compiled training steps, through aot_eager (inductor's code generation: the test above)
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: real_compile(model, backend="aot_eager", **kwargs))
    losses, compiled_frames = {}, {}
    for name, flags in {"eager": [], "compiled": ["--model.compile", "true"]}.items():
        counters.clear()
        main(
            [
                "fit",
                *data_args(synthetic_set, tmp_path / name),
                "--trainer.max_steps",
                "2",
                "--trainer.limit_val_batches",
                "0",
                "--data.num_workers",
                "0",
                "--data.clips_per_gpu",
                "2",
                "--model.net.dropout",
                "0",
                "--checkpoint_every_n_steps",
                "0",
                *flags,
            ]  # fmt: skip
        )
        losses[name] = dict(scalars(tmp_path / name)["train/loss"])[0]
        compiled_frames[name] = counters["stats"]["unique_graphs"]
    assert compiled_frames == {"eager": 0, "compiled": 1}  # the training steps ran the compiled network
    assert losses["compiled"] == pytest.approx(losses["eager"], rel=1e-4, abs=1e-5)

    # norm statistics read res5's features by a hook: their steps (0 and 2) run uncompiled, the others compiled
    counters.clear()
    flags = ["--trainer.max_steps", "3", "--trainer.limit_val_batches", "0", "--data.num_workers", "0"]
    flags += ["--data.clips_per_gpu", "2", "--model.compile", "true", "--norm_stats_every_n_steps", "2"]
    main(["fit", *data_args(synthetic_set, tmp_path / "stats"), *flags])
    logged = scalars(tmp_path / "stats")
    assert [step for step, _ in logged["norm/res5_last_input/p99"]] == [0, 2]
    assert [step for step, _ in logged["train/loss"]] == [0, 1, 2]
    assert counters["stats"]["unique_graphs"] == 1  # step 1 compiled
