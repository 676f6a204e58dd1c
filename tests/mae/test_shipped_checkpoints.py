"""The shipped checkpoints, judged by what they do on real test images, not by what they say about
themselves: the classifier classifies, the MAE reconstructs masked patches far better than a model or a
guess that knows nothing."""
import torch

from mae.checkpoints import load_own
from mae.data import iterate_batches
from mae.loaders import shipped_checkpoints
from mae.metrics import reconstruction_mse, top1_accuracy
from mae.model import MAEClassifier, MaskedAutoencoder, create_model, masked_patch_loss

MASK_RATIO, MASK_SEED = 0.75, 0


def _shipped(spec: str):
    """The shipped model ``spec`` (``default`` / ``default-mae``), as ``--model spec`` loads it."""
    return load_own(shipped_checkpoints()[spec])[0]


def test_shipped_classifier_on_the_first_2000_test_images(fashion_mnist):
    model = _shipped("default")
    assert isinstance(model, MAEClassifier)
    top1 = top1_accuracy(model, fashion_mnist["test"].head(2000))
    assert top1 >= 0.90  # the model card: 91.83% on the whole test split (fp32)


def test_shipped_mae_reconstructs_masked_patches_far_better_than_baselines(fashion_mnist):
    mae = _shipped("default-mae")
    assert isinstance(mae, MaskedAutoencoder)
    split = fashion_mnist["test"].head(300)  # one batch of reconstruction_mse: every model sees the same mask
    mse = reconstruction_mse(mae, split, mask_ratio=MASK_RATIO, seed=MASK_SEED)

    # baseline 1: the same preset, untrained (seeded), scored on the same images with the same mask
    torch.manual_seed(0)
    untrained = create_model("mae_vit_tiny_p4_28", kind="mae")
    assert untrained.arch == mae.arch
    untrained_mse = reconstruction_mse(untrained, split, mask_ratio=MASK_RATIO, seed=MASK_SEED)

    # baseline 2: fill every masked patch with the mean of the image's visible pixels (same mask)
    x, _ = next(iterate_batches(split, len(split), shuffle=False))
    with torch.no_grad():
        _, _, mask = untrained(x, mask_ratio=MASK_RATIO, generator=torch.Generator().manual_seed(MASK_SEED))
    target = untrained.target(x)  # [N, L, P], the space reconstruction_mse scores in
    visible = (1 - mask).unsqueeze(-1)
    mean_visible = (target * visible).sum(dim=(1, 2)) / (visible.sum(dim=(1, 2)) * target.shape[-1])
    mean_mse = float(masked_patch_loss(mean_visible[:, None, None].expand_as(target), target, mask))

    assert mse < 0.5 * untrained_mse and mse < 0.5 * mean_mse, (mse, untrained_mse, mean_mse)
