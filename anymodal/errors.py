"""The exceptions anymodal raises on purpose.

Every message names the thing at fault (a plugin, a config key, a file) and what was
expected, so that a user can act on it without reading a traceback.
"""

from __future__ import annotations

__all__ = ["AnymodalError", "ArtifactError", "ConfigError", "DataError", "PluginError"]


class AnymodalError(Exception):
    """Base class of every error anymodal raises deliberately."""


class PluginError(AnymodalError):
    """A plugin failed to import, registered a name already taken, or is missing."""


class ConfigError(AnymodalError):
    """A config key is unknown, has the wrong type, or names something that does not exist."""


class ArtifactError(AnymodalError):
    """A saved artefact (model folder, index, checkpoint) is missing, damaged or foreign.

    The message names the file at fault and what was expected.
    """


class DataError(AnymodalError):
    """An input item (file, bytes, string, tensor) cannot be loaded or is invalid.

    Args:
        source: the item at fault (a path, an index, a short description).
        problem: what is wrong, and what was expected.
    """

    def __init__(self, source: object, problem: str | None = None) -> None:
        # One argument is a whole message: that is how a DataLoader worker's exception is
        # re-created in the main process.
        self.source = source
        self.problem = problem if problem is not None else str(source)
        super().__init__(str(source) if problem is None else f"{source}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[object, str | None]]:
        return (type(self), (self.source, self.problem))
