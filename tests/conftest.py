"""Shared fixtures: seeded RNGs, one thread (tests run beside each other on 2 cores), real data, the
shared ARM measurements, and no user-calibrated profiles."""
from __future__ import annotations

import os

import pytest
import torch

from evaluators.latency.fit.sources import arm_latency_dir
from mae.checkpoints import save_model
from mae.data import DEFAULT_FASHION_MNIST_DIR, load_fashion_mnist
from mae.model import create_model


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def fashion_mnist():
    """The real Fashion-MNIST splits (CI installs Debian's dataset-fashion-mnist)."""
    return load_fashion_mnist(os.environ.get("MAE_FASHION_MNIST_DIR", DEFAULT_FASHION_MNIST_DIR))


@pytest.fixture(scope="session")
def arm_dir():
    """``$MAE_ARM_LATENCY_DIR`` or ``../shared/arm-latency`` (CI has it there)."""
    d = arm_latency_dir()
    if not (d / "hat-raspberrypi").is_dir():
        pytest.skip(f"shared ARM measurements not found at {d} (set MAE_ARM_LATENCY_DIR)")
    return d


@pytest.fixture(autouse=True)
def _no_user_profiles(tmp_path_factory, monkeypatch):
    """Profiles a user calibrated into ~/.config/maec/profiles must not change what the tests see."""
    monkeypatch.setenv("MAE_LATENCY_PROFILES", str(tmp_path_factory.mktemp("user_profiles")))


def _ort_int8_is_exact() -> bool:
    """Whether ONNX Runtime's integer MatMul is exact on this CPU. On x86 CPUs with AVX2 but no VNNI,
    its u8 x s8 kernel adds pairs of products in saturating int16 (vpmaddubsw), so large activations
    clip (measured on this project's AMD EPYC VM: error 6.5e5 on sums of 1.7e6). ARM boards -- the
    target -- and VNNI / AVX-512 hosts are exact; there the export tests compare ORT with our
    simulation bit for bit. Probed by running the kernel, not by reading CPU flags."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    a = rng.integers(200, 256, (4, 64)).astype(np.uint8)
    b = rng.integers(100, 128, (64, 8)).astype(np.int8)
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "probe",
                              [helper.make_tensor_value_info("A", TensorProto.UINT8, [4, 64])],
                              [helper.make_tensor_value_info("Y", TensorProto.INT32, [4, 8])],
                              [numpy_helper.from_array(b, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return bool(np.array_equal(sess.run(None, {"A": a})[0], a.astype(np.int64) @ b.astype(np.int64)))


@pytest.fixture(scope="session")
def ort_int8_exact() -> bool:
    return _ort_int8_is_exact()


@pytest.fixture
def needs_exact_ort_int8(ort_int8_exact):
    """Skip a test that compares ORT's int8 output with the simulation where ORT's kernel saturates."""
    if not ort_int8_exact:
        pytest.skip("ONNX Runtime's int8 MatMul saturates on this CPU (AVX2 without VNNI); see tests/conftest.py")


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> str:
    """A classifier checkpoint of the test preset (random weights: the search and the CLIs do not care)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(create_model("mae_vit_test_p7_28"), path)
    return str(path)
