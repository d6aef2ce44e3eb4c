"""The model folder format: ``config.yaml``, ``model.safetensors``, ``anymodal.json``.

This module knows files, not models: it writes a config text, a module's tensors and a
manifest, and reads them back. Nothing is unpickled on load. Building a model from what is
read is :meth:`anymodal.model.MultiModalModel.from_pretrained`'s job, so that this module
never imports the model (no import circle).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save_model as _save_safetensors

from anymodal._version import __version__
from anymodal.errors import ConfigError

__all__ = [
    "CONFIG_FILE",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "WEIGHTS_FILE",
    "fingerprint",
    "read_manifest",
    "read_weights",
    "write_model_folder",
]

FORMAT_VERSION = 1
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "anymodal.json"


def fingerprint(config_yaml: str, state: Mapping[str, torch.Tensor]) -> str:
    """The one fingerprint: a short hash of the config text and every tensor.

    Equal for a model and its saved copy; an index records it to refuse another model.

    Args:
        config_yaml: the model's config as YAML text.
        state: the model's ``state_dict()``.
    """
    digest = hashlib.sha256(config_yaml.encode())
    for name, tensor in sorted(state.items()):
        digest.update(name.encode())
        raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        digest.update(raw.numpy().tobytes())
    return digest.hexdigest()[:16]


def write_model_folder(directory: str | os.PathLike[str], config_yaml: str,
                       module: torch.nn.Module, manifest: Mapping[str, Any]) -> Path:
    """Write a model folder beside ``directory`` under a temporary name, then move it in.

    Args:
        directory: the destination folder (replaced if it exists).
        config_yaml: the text of ``config.yaml``.
        module: the module whose tensors go to ``model.safetensors`` (shared storage kept once).
        manifest: the content of ``anymodal.json`` (``format_version`` is added here).
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        (staging / CONFIG_FILE).write_text(config_yaml)
        _save_safetensors(module, str(staging / WEIGHTS_FILE))
        body = {"format_version": FORMAT_VERSION, **manifest}
        (staging / MANIFEST_FILE).write_text(json.dumps(body, indent=2) + "\n")
        if target.exists():
            backup = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(backup)
            staging.rename(target)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``anymodal.json`` of a model folder, checked for presence and format.

    Args:
        directory: the model folder.
    """
    folder = Path(directory)
    path = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a model folder (no such directory)")
    for name in (CONFIG_FILE, WEIGHTS_FILE, MANIFEST_FILE):
        if not (folder / name).is_file():
            raise ConfigError(f"{folder} is not a complete model folder: {name} is missing")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ConfigError(
            f"{path}: format_version {version!r}, this anymodal ({__version__}) reads "
            f"{FORMAT_VERSION}"
        )
    return dict(manifest)


def read_weights(directory: str | os.PathLike[str],
                 map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of ``model.safetensors`` in a model folder.

    Args:
        directory: the model folder.
        map_location: the device the tensors are loaded onto.
    """
    return load_file(str(Path(directory) / WEIGHTS_FILE), device=str(map_location))
