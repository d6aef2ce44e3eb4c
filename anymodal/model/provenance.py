"""Which plugin provided each part of a model: recorded at save, checked before load."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from anymodal.errors import PluginError
from anymodal.plugin_host.manager import get_plugin_manager

if TYPE_CHECKING:
    from anymodal.model.core import MultiModalModel

__all__ = ["check_plugins", "provenance"]


def provenance(model: MultiModalModel) -> dict[str, Any]:
    """Which plugin (distribution, version) provided each modality, encoder and objective.

    Args:
        model: the model being saved.
    """
    manager = get_plugin_manager()

    def entry(kind: str, name: str) -> dict[str, str]:
        info = manager.plugin_for(kind, name)
        return {"name": name, "plugin": info.name, "distribution": info.distribution,
                "version": info.version}

    modalities = {
        key: {"modality": entry("modalities", spec.name),
              "encoder": entry("encoders", model.encoder_names[key])}
        for key, spec in model.modalities.items()
    }
    objective = entry("objectives", model.config.objective.name)
    distributions = {objective["distribution"]: objective["version"]}
    for parts in modalities.values():
        for part in parts.values():
            distributions[part["distribution"]] = part["version"]
    return {"modalities": modalities, "objective": objective, "distributions": distributions}


def check_plugins(manifest: dict[str, Any], folder: Path) -> None:
    """Raise a :class:`PluginError` naming the distribution to install for a missing part.

    Args:
        manifest: the folder's ``anymodal.json``.
        folder: the model folder (named in the message).
    """
    manager = get_plugin_manager()
    needed = [("objective", "objectives", manifest["objective"])]
    for key, parts in manifest["modalities"].items():
        needed.append((f"modality {key!r}", "modalities", parts["modality"]))
        needed.append((f"encoder of {key!r}", "encoders", parts["encoder"]))
    for what, kind, part in needed:
        if part["name"] in getattr(manager, kind):
            continue
        dist = part["distribution"]
        failure = manager.failure_for(part["plugin"]) or manager.failure_for(dist)
        why = (f"its plugin failed to load: {failure.reason}" if failure
               else f"install it: pip install {dist}")
        raise PluginError(
            f"{folder} needs {what} {part['name']!r} from plugin {part['plugin']!r} "
            f"(distribution {dist} {part['version']}), which is not available; {why}"
        )
