"""The shipped checkpoints: they load, and the classifier scores what its model card says."""
import json

from mae.checkpoints import load_own
from mae.loaders import DEFAULT_CHECKPOINT, DEFAULT_MAE_CHECKPOINT, load_model
from mae.metrics import reconstruction_mse, top1_accuracy
from mae.model import MAEClassifier, MaskedAutoencoder


def test_shipped_classifier_on_the_first_2000_test_images(fashion_mnist):
    model = load_model("default")
    assert isinstance(model, MAEClassifier) and model.arch.embed_dim == 192 and model.arch.depth == 6
    top1 = top1_accuracy(model, fashion_mnist["test"].head(2000))
    assert abs(top1 - 0.9315) <= 0.002  # 1,863 of 2,000 when shipped (fp32, this machine)


def test_shipped_mae_reconstructs_masked_patches(fashion_mnist):
    mae = load_model("default-mae")
    assert isinstance(mae, MaskedAutoencoder) and mae.arch.decoder_depth == 2
    mse = reconstruction_mse(mae, fashion_mnist["test"].head(1000), mask_ratio=0.75, seed=0)
    assert mse < 0.25  # predicting the mean of every masked patch gives ~1.0 in these units


def test_shipped_metadata_records_the_recipe_metrics():
    _, extra = load_own(DEFAULT_CHECKPOINT)
    assert extra["metrics"]["recipe"] == "finetune" and extra["metrics"]["test_top1"] > 0.91
    _, extra = load_own(DEFAULT_MAE_CHECKPOINT)
    assert extra["metrics"]["recipe"] == "pretrain"
    assert DEFAULT_CHECKPOINT.stat().st_size + DEFAULT_MAE_CHECKPOINT.stat().st_size <= 25 * 2**20
    json.dumps(extra)
