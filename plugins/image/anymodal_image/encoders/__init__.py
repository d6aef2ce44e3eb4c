"""Encoders of the image modality: ``vit`` (``image_vit_tiny``), ``cnn``
(``image_cnn_small``) and ``timm_model`` (``image_timm``, needs the ``timm`` extra)."""
