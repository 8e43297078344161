"""A run's files on disk: best weights (safetensors), the resumable checkpoint, the history
trimmed back to a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from darkproxy.fsutil import atomic_path, write_bytes_atomic


def _torch_save_atomic(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_weights(path: Path, model: torch.nn.Module) -> None:
    """Model weights as safetensors (atomic)."""
    from safetensors.torch import save as st_save

    sd = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    write_bytes_atomic(Path(path), st_save(sd))


def checkpoint_config(run: Path) -> dict[str, Any] | None:
    """The training config ``RUN/checkpoint.pt`` was saved with (``asdict(TrainConfig)``), or ``None`` when there
    is no readable checkpoint: what a caller compares before resuming a run under other settings."""
    try:
        ckpt = torch.load(Path(run) / "checkpoint.pt", map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, ValueError):
        return None
    cfg = ckpt.get("config") if isinstance(ckpt, dict) else None
    return dict(cfg) if isinstance(cfg, dict) else None


def _trim_history(path: Path, step: int) -> None:
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    write_bytes_atomic(path, "".join(k + "\n" for k in keep).encode())
