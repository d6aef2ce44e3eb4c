"""Small helpers shared by the package.

Crash-safe writes (:mod:`anymodal.utils.atomic`), file checksums
(:mod:`anymodal.utils.checksums`) and the like.
"""
