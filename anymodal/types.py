"""The specs plugins register, and the batch shape every part agrees on.

A batch is a plain dict::

    {"audio": <collated audio>, "text": <collated text>, ...,
     "present": {"audio": BoolTensor[B], "text": BoolTensor[B]},
     "ids": list[str]}            # optional

The collated value of a modality holds only the rows whose ``present`` is True, in row
order: a missing item is a False in ``present``, never a zero tensor pretending to be data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: importing anymodal must not import torch
    import torch

__all__ = [
    "IDS_KEY",
    "PRESENT_KEY",
    "Batch",
    "CommandSpec",
    "DatasetSpec",
    "DoctorCheck",
    "EncoderSpec",
    "ModalitySpec",
    "ObjectiveSpec",
]

Batch = dict[str, Any]
PRESENT_KEY = "present"
IDS_KEY = "ids"


@dataclass(frozen=True)
class ModalitySpec:
    """How one modality is read, prepared and batched.

    Args:
        name: the modality's registry name (``"audio"``).
        load: ``load(source) -> raw``; reads a path, bytes, string or array and raises
            :class:`anymodal.DataError` naming the source on bad input.
        transform: ``transform(raw, train: bool) -> item``; ``train`` turns augmentation on.
        collate: ``collate(list[item]) -> batch value`` consumed by this modality's encoders.
        synthesize: ``synthesize(n, generator, labels=None) -> list[item]``: ``n`` ready
            items (already transformed) made without any file. Item ``i`` belongs to class
            ``labels[i] % num_classes`` when ``labels`` is given, so that several modalities
            synthesised from the same labels form matching tuples.
        default_encoder: the encoder name used when a recipe names none.
        num_classes: how many classes ``synthesize`` distinguishes.
        config_cls: a dataclass of the modality's options (sample rate, frame count...).
        configure: ``configure(config) -> ModalitySpec``: the spec with those options bound.
            Required when ``config_cls`` is given.
        description: one line for ``anymodal plugins``.
        config: the options instance bound into the functions (``None`` for a modality
            without options); encoders read their bound params from it (see
            :attr:`EncoderSpec.binds`).
        prepare: ``prepare(raw) -> prepared``: the deterministic prefix of ``transform``
            (``None``: none declared). ``transform`` accepts ``prepared`` in place of ``raw``
            and, from the same random state, returns the same item; the sample cache stores
            ``prepared``, so later epochs run only the random rest of the transform.
    """

    name: str
    load: Callable[[Any], Any]
    transform: Callable[[Any, bool], Any]
    collate: Callable[[list[Any]], Any]
    synthesize: Callable[..., list[Any]]
    default_encoder: str
    num_classes: int = 1
    config_cls: type | None = None
    configure: Callable[[Any], ModalitySpec] | None = None
    description: str = ""
    config: Any = None
    prepare: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class EncoderSpec:
    """A named encoder of one modality.

    Args:
        name: ``<modality>_<arch>[_<size>]``, e.g. ``audio_ast_tiny``.
        modality: the modality it encodes.
        factory: ``factory(config) -> nn.Module`` whose ``forward(batch) -> Tensor[B, width]``
            and which has an int attribute ``width``.
        config_cls: the dataclass of its hyper-parameters; ``create_encoder`` validates
            the user's params against it.
        description: one line for ``anymodal plugins``.
        binds: encoder param -> option of its modality (``{"in_dim": "dim"}``): when the
            encoder is built for a configured modality, each param is set from the option,
            so that a recipe never states one value twice.
    """

    name: str
    modality: str
    factory: Callable[[Any], torch.nn.Module]
    config_cls: type
    description: str = ""
    binds: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ObjectiveSpec:
    """A named training objective.

    Args:
        name: registry name (``"clip"``, ``"symile"``...).
        factory: ``factory(config) -> nn.Module`` with
            ``forward(embeddings, logit_scale, present=None) -> dict`` (``"loss"`` is the
            scalar) and ``score(query, candidates, logit_scale, missing=None) -> Tensor[Q,
            C]``; subclassing :class:`anymodal.objectives.Objective` gives ``forward`` and
            lets the objective declare the ``query_rule`` retrieval reads.
        config_cls: the dataclass of its parameters.
        description: one line for ``anymodal plugins``.
    """

    name: str
    factory: Callable[[Any], torch.nn.Module]
    config_cls: type
    description: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    """A named builder of a data set on disk (files plus a manifest).

    Args:
        name: registry name (``"digits"``).
        build: ``build(out_dir: Path, config) -> Path``: writes the files and returns the
            manifest; calling it again on a complete ``out_dir`` must be (nearly) free.
        config_cls: the dataclass of its options (limit, modalities, seed...).
        description: one line for ``anymodal datasets list``.
    """

    name: str
    build: Callable[..., Any]
    config_cls: type
    description: str = ""


@dataclass(frozen=True)
class DoctorCheck:
    """A check that ``anymodal doctor`` runs: load a dependency and exercise its compiled code.

    Importing a package proves little (torchaudio imports and then fails at the first
    feature it computes), so ``run`` should do one small real computation.

    Args:
        name: what is checked, as shown in the report (``"torchaudio"``, ``"ffmpeg"``).
        run: performs the check; returns a short detail (version, what was computed) or
            raises. A ``ModuleNotFoundError`` for a package that is not installed at all,
            or a ``FileNotFoundError`` (a system tool not on PATH), reports the check as
            *missing*; any other exception as *broken*.
        fix: the command that fixes a failure (``"make install"``, ``"apt-get install ..."``).
        packages: the distributions involved; their installed versions are printed with a
            failure, and a missing one decides whether the check is *missing*.
        required: whether ``doctor --strict`` fails when the check is *missing* (a *broken*
            check always fails it: something installed does not work).
    """

    name: str
    run: Callable[[], str]
    fix: str = ""
    packages: tuple[str, ...] = ()
    required: bool = True


@dataclass(frozen=True)
class CommandSpec:
    """A command that a plugin adds to the ``anymodal`` command line.

    The command line loads plugins only for a command that is not built in, so a plugin
    command costs nothing to the others; its ``run`` should import what it needs.

    Args:
        name: the subcommand (``anymodal NAME``); a built-in command's name is refused.
        run: ``run(args: argparse.Namespace) -> int | None``: does the work; the int is
            the exit status. Raise an :class:`anymodal.AnymodalError` for a clean message.
        configure: ``configure(parser: argparse.ArgumentParser) -> None`` adds the
            command's arguments.
        help: one line for ``anymodal --help`` and ``anymodal plugins``.
        description: the paragraph of ``anymodal NAME --help`` (default: ``help``).
    """

    name: str
    run: Callable[[Any], int | None]
    configure: Callable[[Any], None] | None = None
    help: str = ""
    description: str = ""
