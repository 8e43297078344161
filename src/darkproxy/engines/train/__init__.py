"""Training a proxy on a ``darkproxy-dataset/1`` folder (``darkproxy train``).

AdamW with linear warm-up then cosine decay, loss in a perceptual encoding
(:func:`~darkproxy.colour.encodings.perceptual_loss_encode`), validation PSNR on
display-encoded images (linear -> clip [0, 1] -> sRGB curve), best weights
kept, TensorBoard logs, resumable checkpoints, mixed precision on CUDA.

Run folder::

    RUN/
      run.json           what the proxy is (arch, hparams, module, param space, ...)
      model.safetensors  best weights (by validation PSNR)
      metrics.json       best_val_psnr, best_step, steps, seconds, val_identity_psnr, ...
      history.jsonl      one line per logged step: step, loss, lr, val_psnr, elapsed
      checkpoint.pt      model + optimizer + scheduler + step (for --resume)
      tb/                TensorBoard event files

Every file is written atomically (temp file + ``os.replace``); ``history.jsonl``
is append-only and trimmed back to the checkpoint's step on resume.

Files: :mod:`.config` (options, resolved plan, result), :mod:`.arch` (which architecture),
:mod:`.batches` (pixel or crop batches), :mod:`.checkpoint` (weights, checkpoint, history),
:mod:`.validate` (validation PSNR), :mod:`.loop` (:func:`train`).
"""

from darkproxy.engines.train.arch import choose_arch, training_scales
from darkproxy.engines.train.batches import context_mask
from darkproxy.engines.train.checkpoint import save_weights
from darkproxy.engines.train.config import LOSSES, TrainConfig, TrainError, TrainResult, resolve_device
from darkproxy.engines.train.loop import loss_fn, lr_at, train
from darkproxy.engines.train.validate import validate

__all__ = [
    "LOSSES",
    "TrainConfig",
    "TrainError",
    "TrainResult",
    "choose_arch",
    "context_mask",
    "loss_fn",
    "lr_at",
    "resolve_device",
    "save_weights",
    "train",
    "training_scales",
    "validate",
]
