"""The hooks an anymodal plugin may implement.

Hooks use the register-callback style: a plugin receives a ``register`` function and
calls it once per thing it provides. The plugin manager calls each plugin separately, so a
name registered twice is reported against the plugin that tried to take it.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT_NAME = "anymodal"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def anymodal_register_modalities(register: Any) -> None:
    """Register modalities.

    Args:
        register: call ``register(ModalitySpec(...))`` once per modality.
    """


@hookspec
def anymodal_register_encoders(register: Any) -> None:
    """Register encoders.

    Args:
        register: call ``register(EncoderSpec(...))`` once per encoder. The encoder's
            modality may come from another plugin.
    """


@hookspec
def anymodal_register_objectives(register: Any) -> None:
    """Register training objectives.

    Args:
        register: call ``register(ObjectiveSpec(...))`` once per objective.
    """


@hookspec
def anymodal_register_datasets(register: Any) -> None:
    """Register data set builders (``anymodal datasets build NAME OUT_DIR``).

    Args:
        register: call ``register(DatasetSpec(...))`` once per builder.
    """


@hookspec
def anymodal_register_doctor_checks(register: Any) -> None:
    """Register the checks ``anymodal doctor`` runs for this plugin's dependencies.

    Called when ``anymodal doctor`` runs (and at the end of ``make install``, as
    ``doctor --strict``). A check should load the dependency and exercise its compiled
    code once, so that a binary built for another torch is caught at install time.

    Args:
        register: call ``register(DoctorCheck(...))`` once per check.
    """


@hookspec
def anymodal_register_commands(register: Any) -> None:
    """Register commands of the ``anymodal`` command line (llm's ``register_commands``).

    Called when the command line is asked for a command that is not built in (so that
    ``anymodal --help`` and the built-in commands never load a plugin), and by
    ``anymodal plugins``. ``anymodal demo --digits`` is the command ``demo-digits`` that
    the ``anymodal-datasets`` plugin registers here.

    Args:
        register: call ``register(CommandSpec(...))`` once per command.
    """


@hookspec
def anymodal_on_step_end(step: int, metrics: dict[str, float], state: Any) -> None:
    """Called on the main process after every optimiser step.

    Args:
        step: the number of optimiser steps taken so far.
        metrics: the scalars logged at this step (loss, lr, logit scale...).
        state: an ``anymodal.training.TrainContext``: a frozen view of the run (step,
            epoch, config, accelerator, unwrapped model, optimiser, output folder, run id).
            To stop the run, send the process SIGTERM; the loop saves a checkpoint.
    """


@hookspec
def anymodal_on_eval_end(step: int, metrics: dict[str, float], state: Any) -> None:
    """Called on the main process after every evaluation.

    Args:
        step: the optimiser step at which the evaluation ran.
        metrics: the evaluation scalars (``val/loss``, ``val/audio->text/R@1``...).
        state: an ``anymodal.training.TrainContext`` (see ``anymodal_on_step_end``).
    """
