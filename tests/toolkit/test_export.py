"""ONNX export, real int8 / int4 graphs, host latency and ONNX accuracy (tiny seeded models)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from evaluators.latency.measure.host import make_session, measure_latency_ms, onnx_top1
from mae.model import create_model, describe
from spaces.config import CompressionConfig, ConfigError
from toolkit.export import INT4_BLOCK_SIZE, export_onnx, linear_bits_for, linear_nodes, module_of, quantize_onnx
from toolkit.lowrank import apply_lowrank
from toolkit.prune import RemovedBranch, prune_model
from toolkit.quant import bake_fake_quant_, calibrate_activations_, prepare_fake_quant_, weight_qparams

TEST = "mae_vit_test_p7_28"
BLOCK0 = ["blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.0.mlp.fc1", "blocks.0.mlp.fc2"]


def _classifier() -> torch.nn.Module:
    m = create_model(TEST).eval()
    torch.nn.init.normal_(m.head.weight, std=0.5)  # MAE's 2e-5 head init would make logits ~0
    return m


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def _run(path, x: torch.Tensor) -> np.ndarray:
    return make_session(path, threads=1).run(None, {"images": x.numpy()})[0]


def _ops_by_module(path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for n in onnx.load(str(path)).graph.node:
        if n.name.startswith("/"):
            out.setdefault(module_of(n.name), set()).add(n.op_type)
    return out


def _config(model, bits: dict[int, dict[str, int]], act_bits: int = 32, **block_changes) -> CompressionConfig:
    """Identity config with ``bits[block][linear]`` weight bits and optional per-block changes."""
    base = CompressionConfig.identity(describe(model))
    blocks = []
    for i, b in enumerate(base.blocks):
        wb = {**b.weight_bits, **bits.get(i, {})}
        blocks.append(replace(b, weight_bits=wb, **block_changes.get(f"b{i}", {})))
    return replace(base, blocks=tuple(blocks), act_bits=act_bits)


def _simulated(model, config, calib):
    """What toolkit.quant scores: fake-quantized, calibrated, baked (in place)."""
    prepare_fake_quant_(model, config)
    calibrate_activations_(model, calib)
    bake_fake_quant_(model)
    return model


# ---- export --------------------------------------------------------------------------------------
def test_fp32_classifier_matches_pytorch_with_dynamic_batch(tmp_path):
    m = _classifier().train()
    path = export_onnx(m, tmp_path / "c.onnx")  # traced at batch 1, in eval mode
    assert m.training  # the caller's model is left as it was
    m.eval()
    x = _images(3, 1)
    with torch.no_grad():
        ref = m(x).numpy()
    assert np.allclose(_run(path, x), ref, atol=1e-4)
    names = set(linear_nodes(onnx.load(str(path))))
    assert names == {n for n, mod in m.named_modules() if isinstance(mod, torch.nn.Linear)}


@pytest.mark.usefixtures("needs_exact_ort_int8")
def test_mae_exports_encoder_on_visible_tokens_and_decoder(tmp_path):
    mae = create_model(TEST, kind="mae").eval()
    path = export_onnx(mae, tmp_path / "m.onnx", mask_ratio=0.75, mask_seed=3)
    x = _images(2, 2)
    out = _run(path, x)
    arch = mae.arch
    assert out.shape == (2, arch.num_patches, arch.patch_size ** 2 * arch.in_chans)
    # Same computation in PyTorch: visible tokens from the seeded permutation, MAE's own decoder.
    perm = torch.randperm(arch.num_patches, generator=torch.Generator().manual_seed(3))
    keep = int(arch.num_patches * 0.25)
    with torch.no_grad():
        vis = mae.embed_patches(x)[:, perm[:keep]]
        latent = mae.norm(mae.run_blocks(mae.prepend_cls(vis)))
        ref = mae.forward_decoder(latent, torch.argsort(perm).expand(2, -1)).numpy()
    assert np.allclose(out, ref, atol=1e-4)
    assert type(mae).__name__ == "MaskedAutoencoder" and not hasattr(mae, "ids_keep")  # untouched
    assert "decoder_blocks.0.mlp.fc1" in linear_nodes(onnx.load(str(path)))
    rep = quantize_onnx(path, tmp_path / "q.onnx", linear_bits={"decoder_blocks.0.mlp.fc1": 8, "blocks.1.attn.qkv": 4})
    assert {r.module for r in rep.nodes} == {"decoder_blocks.0.mlp.fc1", "blocks.1.attn.qkv"}
    assert np.abs(_run(tmp_path / "q.onnx", x) - ref).max() < 0.5


def test_removed_attention_and_low_rank_export(tmp_path):
    m = _classifier()
    cfg = _config(m, {}, b0={"heads": 0})
    cfg = replace(cfg, blocks=(cfg.blocks[0], replace(cfg.blocks[1], ranks={**cfg.blocks[1].ranks, "fc1": 4})))
    prune_model(m, cfg)
    apply_lowrank(m, cfg)
    assert isinstance(m.blocks[0].attn, RemovedBranch)
    path = export_onnx(m, tmp_path / "c.onnx")
    x = _images(2, 3)
    with torch.no_grad():
        assert np.allclose(_run(path, x), m(x).numpy(), atol=1e-4)
    names = set(linear_nodes(onnx.load(str(path))))
    assert {"blocks.1.mlp.fc1.first", "blocks.1.mlp.fc1.second"} <= names
    assert not any(n.startswith("blocks.0.attn") for n in names)
    bits = linear_bits_for(m, cfg)
    assert "blocks.1.mlp.fc1.first" in bits and "blocks.0.attn.qkv" not in bits


# ---- quantization --------------------------------------------------------------------------------
@pytest.mark.usefixtures("needs_exact_ort_int8")
def test_int8_dynamic_only_selected_linears_and_ort_weights_equal_simulation(tmp_path):
    m = _classifier()
    fp32 = export_onnx(m, tmp_path / "c.onnx")
    chosen = BLOCK0 + ["blocks.1.mlp.fc1"]
    rep = quantize_onnx(fp32, tmp_path / "q.onnx", linear_bits={n: 8 for n in chosen}, act_bits=32)
    graph = onnx.load(str(tmp_path / "q.onnx")).graph
    dq_outputs = {o for n in graph.node if n.op_type == "DynamicQuantizeLinear" for o in n.output}
    integer = {module_of(n.name) for n in graph.node if n.op_type == "MatMulInteger" and n.input[0] in dq_outputs}
    assert integer == set(chosen)  # exactly those, each fed by a DynamicQuantizeLinear
    still_float = set(linear_nodes(onnx.load(str(tmp_path / "q.onnx"))))
    assert still_float == set(linear_nodes(onnx.load(str(fp32)))) - set(chosen)
    assert rep.bytes_after < rep.bytes_before
    assert {r.module for r in rep.nodes if r.bits == 8} == set(chosen)
    # ORT's per-channel symmetric int8 weights are toolkit.quant's (bit-exact q and scale).
    q_model = onnx.load(str(tmp_path / "q.onnx"))
    inits = {i.name: numpy_helper.to_array(i) for i in q_model.graph.initializer}
    node = next(n for n in q_model.graph.node if n.op_type == "MatMulInteger" and module_of(n.name) == "blocks.0.mlp.fc1")
    q, scale = weight_qparams(m.blocks[0].mlp.fc1.weight, 8)
    assert np.array_equal(inits[node.input[1]].T, q.numpy())
    scale_name = node.input[1].replace("_quantized", "_scale")
    assert np.array_equal(inits[scale_name], scale.numpy())
    x = _images(4, 4)
    with torch.no_grad():
        assert np.abs(_run(tmp_path / "q.onnx", x) - m(x).numpy()).max() < 0.1


@pytest.mark.usefixtures("needs_exact_ort_int8")
def test_int8_dynamic_matches_simulation_at_batch_1(tmp_path):
    m = _classifier()
    cfg = _config(m, {0: {k: 8 for k in ("qkv", "proj", "fc1", "fc2")}, 1: {"fc1": 8}})
    sim = _simulated(m, cfg, [])
    fp32 = export_onnx(sim, tmp_path / "c.onnx")
    quantize_onnx(fp32, tmp_path / "q.onnx", linear_bits=linear_bits_for(sim, cfg), act_bits=32)
    with torch.no_grad():
        for seed in range(4):  # deployment is batch 1: DynamicQuantizeLinear ranges are per image
            x = _images(1, 20 + seed)
            assert np.allclose(_run(tmp_path / "q.onnx", x), sim(x).numpy(), atol=1e-4)
        # in a batch the simulation still takes one range per image, as batch-1 deployment does
        x = _images(3, 30)
        ref = np.concatenate([_run(tmp_path / "q.onnx", x[i:i + 1]) for i in range(3)])
        assert np.allclose(ref, sim(x).numpy(), atol=1e-4)


@pytest.mark.usefixtures("needs_exact_ort_int8")
@pytest.mark.parametrize("act_bits", [32, 8])
def test_int8_mae_keeps_the_float_shapes_so_ort_fuses_no_skip_layernorm(tmp_path, act_bits):
    # ORT's quantizer infers every shape; left in the graph they let ORT fuse the last residual Add and
    # norm / decoder_norm into SkipLayerNormalization, 2.4-7x slower on the CPU (benchmarks/onnx_skip_layernorm.py)
    mae = create_model(TEST, kind="mae").eval()
    path = export_onnx(mae, tmp_path / "m.onnx", mask_ratio=0.75)
    names = [n for n in linear_nodes(onnx.load(str(path))) if "blocks" in n]
    calib = [(_images(2, 7), None)] if act_bits == 8 else None
    quantize_onnx(path, tmp_path / "q.onnx", linear_bits={n: 8 for n in names}, act_bits=act_bits,
                  calib_batches=calib)
    q = onnx.load(str(tmp_path / "q.onnx"))
    assert list(q.graph.value_info) == list(onnx.load(str(path)).graph.value_info)
    assert any(n.op_type in ("MatMulInteger", "DequantizeLinear") for n in q.graph.node)  # it is int8
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(tmp_path / "q.onnx"), opts, providers=["CPUExecutionProvider"])
    ran = {n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node}
    assert "SkipLayerNormalization" not in ran and "LayerNormalization" in ran
    # the graph as ORT's quantizer leaves it would fuse (so the check above can fail)
    onnx.save(onnx.shape_inference.infer_shapes(q), str(tmp_path / "shaped.onnx"))
    opts.optimized_model_filepath = str(tmp_path / "opt2.onnx")
    ort.InferenceSession(str(tmp_path / "shaped.onnx"), opts, providers=["CPUExecutionProvider"])
    assert "SkipLayerNormalization" in {n.op_type for n in onnx.load(str(tmp_path / "opt2.onnx")).graph.node}


def test_int8_static_qdq_matches_simulation(tmp_path):
    m = _classifier()
    calib = [_images(16, 10), _images(16, 11)]
    cfg = _config(m, {0: {k: 8 for k in ("qkv", "proj", "fc1", "fc2")}}, act_bits=8)
    sim = _simulated(m, cfg, calib)
    fp32 = export_onnx(sim, tmp_path / "c.onnx")
    rep = quantize_onnx(fp32, tmp_path / "q.onnx", linear_bits=linear_bits_for(sim, cfg), act_bits=8,
                        calib_batches=[(x, None) for x in calib])
    assert {r.action for r in rep.nodes if r.bits == 8} == {"static int8 QDQ"}
    graph = onnx.load(str(tmp_path / "q.onnx")).graph
    producer = {o: n.op_type for n in graph.node for o in n.output}
    fed_by_dq = {module_of(n.name) for n in graph.node if n.op_type == "MatMul" and n.name.startswith("/")
                 and all(producer.get(i) == "DequantizeLinear" for i in n.input)}
    assert fed_by_dq == set(BLOCK0)  # input and weight both through QDQ, for exactly those
    x = _images(4, 5)
    with torch.no_grad():
        assert np.allclose(_run(tmp_path / "q.onnx", x), sim(x).numpy(), atol=1e-4)


@pytest.mark.parametrize("act_bits", [32, 8])
def test_int4_matmulnbits_matches_simulation(tmp_path, act_bits):
    m = _classifier()
    calib = [_images(16, 12)]
    cfg = _config(m, {0: {"fc1": 4, "fc2": 4}, 1: {"qkv": 4}}, act_bits=act_bits)
    sim = _simulated(m, cfg, calib)
    fp32 = export_onnx(sim, tmp_path / "c.onnx")
    rep = quantize_onnx(fp32, tmp_path / "q.onnx", linear_bits=linear_bits_for(sim, cfg), act_bits=act_bits,
                        calib_batches=calib)
    chosen = {"blocks.0.mlp.fc1", "blocks.0.mlp.fc2", "blocks.1.attn.qkv"}
    graph = onnx.load(str(tmp_path / "q.onnx")).graph
    nbits = {module_of(n.name): n for n in graph.node if n.op_type == "MatMulNBits"}
    assert set(nbits) == chosen
    assert all(onnx.helper.get_attribute_value(a) == INT4_BLOCK_SIZE
               for n in nbits.values() for a in n.attribute if a.name == "block_size")
    assert {r.block_size for r in rep.nodes if r.bits == 4} == {INT4_BLOCK_SIZE}
    assert rep.bytes_after < rep.bytes_before
    x = _images(3, 6)
    with torch.no_grad():
        assert np.allclose(_run(tmp_path / "q.onnx", x), sim(x).numpy(), atol=1e-4)


def test_int4_pads_a_partial_block(tmp_path):
    m = _classifier()
    cfg = _config(m, {0: {"fc2": 4}}, b0={"mlp_hidden": 40})  # fc2 in_features 40: 1.25 blocks of 32
    prune_model(m, cfg)
    sim = _simulated(m, cfg, [])
    fp32 = export_onnx(sim, tmp_path / "c.onnx")
    quantize_onnx(fp32, tmp_path / "q.onnx", linear_bits=linear_bits_for(sim, cfg))
    x = _images(2, 7)
    with torch.no_grad():
        assert np.allclose(_run(tmp_path / "q.onnx", x), sim(x).numpy(), atol=1e-4)


@pytest.mark.usefixtures("needs_exact_ort_int8")
def test_mixed_bits_with_int8_activations(tmp_path):
    m = _classifier()
    calib = [_images(16, 13)]
    cfg = _config(m, {0: {"qkv": 8, "proj": 4, "fc1": 16, "fc2": 32}, 1: {"qkv": 16, "fc1": 8, "fc2": 4}}, act_bits=8)
    sim = _simulated(m, cfg, calib)
    fp32 = export_onnx(sim, tmp_path / "c.onnx")
    rep = quantize_onnx(fp32, tmp_path / "q.onnx", linear_bits=linear_bits_for(sim, cfg), act_bits=8,
                        calib_batches=calib)
    actions = {r.module: r.action for r in rep.nodes}
    assert actions["blocks.0.attn.qkv"] == "static int8 QDQ" and actions["blocks.0.mlp.fc1"] == "fp16 weight + Cast"
    ops = _ops_by_module(tmp_path / "q.onnx")
    assert "Cast" in ops["blocks.1.attn.qkv"] and "MatMulNBits" in ops["blocks.1.mlp.fc2"]
    x = _images(3, 8)
    with torch.no_grad():
        assert np.allclose(_run(tmp_path / "q.onnx", x), sim(x).numpy(), atol=1e-4)


def test_fp16_halves_the_weights(tmp_path):
    m = _classifier()
    fp32 = export_onnx(m, tmp_path / "c.onnx")
    names = list(linear_nodes(onnx.load(str(fp32))))
    rep = quantize_onnx(fp32, tmp_path / "q.onnx", linear_bits={n: 16 for n in names})
    assert rep.bytes_after < 0.7 * rep.bytes_before
    x = _images(2, 9)
    with torch.no_grad():
        assert np.allclose(_run(tmp_path / "q.onnx", x), m(x).numpy(), atol=1e-2)


def test_bad_requests_raise_config_error(tmp_path):
    fp32 = export_onnx(_classifier(), tmp_path / "c.onnx")
    with pytest.raises(ConfigError, match="blocks.9.attn.qkv"):
        quantize_onnx(fp32, tmp_path / "q.onnx", linear_bits={"blocks.9.attn.qkv": 8})
    with pytest.raises(ConfigError, match="calib"):
        quantize_onnx(fp32, tmp_path / "q.onnx", linear_bits={"blocks.0.attn.qkv": 8}, act_bits=8)
    with pytest.raises(ConfigError, match="one of"):
        quantize_onnx(fp32, tmp_path / "q.onnx", linear_bits={"blocks.0.attn.qkv": 2})


# ---- measurement ---------------------------------------------------------------------------------
def test_latency_stats_and_top1(tmp_path):
    m = _classifier()
    path = export_onnx(m, tmp_path / "c.onnx")
    s = measure_latency_ms(path, repeats=7, warmup=1, batch=2)
    assert 0 < s.p10_ms <= s.median_ms <= s.p90_ms and s.mean_ms > 0 and s.batch == 2
    x = _images(10, 14)
    with torch.no_grad():
        y = m(x).argmax(1)
    assert onnx_top1(path, [(x[:6], y[:6]), (x[6:], y[6:])]) == 1.0
    assert onnx_top1(path, [(x.numpy(), ((y + 1) % 10).numpy())]) == 0.0


def test_int8_dynamic_default_model_runs_integer_kernels(tmp_path):
    """What makes int8 faster on a device, checked in the graph rather than timed (timing belongs to the
    benchmarks): every Linear of the default model is a MatMulInteger fed by a DynamicQuantizeLinear,
    no float Linear is left, the weights are int8 (about a quarter of the bytes) and it still runs."""
    m = create_model("mae_vit_tiny_p4_28").eval()
    fp32 = export_onnx(m, tmp_path / "t.onnx")
    names = list(linear_nodes(onnx.load(str(fp32))))
    rep = quantize_onnx(fp32, tmp_path / "q.onnx", linear_bits={n: 8 for n in names})
    q_model = onnx.load(str(tmp_path / "q.onnx"))
    graph = q_model.graph
    dq_outputs = {o for n in graph.node if n.op_type == "DynamicQuantizeLinear" for o in n.output}
    integer = {module_of(n.name) for n in graph.node if n.op_type == "MatMulInteger" and n.input[0] in dq_outputs}
    assert integer == set(names) and not linear_nodes(q_model)
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    weights = [inits[n.input[1]] for n in graph.node if n.op_type == "MatMulInteger"]
    assert len(weights) == len(names) and all(w.dtype == np.int8 for w in weights)
    assert rep.bytes_after < 0.35 * rep.bytes_before
    s = measure_latency_ms(tmp_path / "q.onnx", repeats=3, warmup=1)
    assert s.median_ms > 0 and s.batch == 1
