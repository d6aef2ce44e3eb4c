"""Encoders of the text modality.

``transformer`` (``text_transformer_tiny``) needs only torch; ``minilm`` (``text_minilm``)
imports ``transformers`` when it is built.
"""
