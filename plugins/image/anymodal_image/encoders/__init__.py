"""Encoders of the image modality.

``vit`` (``image_vit_tiny``), ``cnn`` (``image_cnn_small``), ``timm_model`` (``image_timm``,
needs the ``timm`` extra), ``hf`` (``image_hf``) and ``open_clip_tower``
(``image_open_clip``).
"""
