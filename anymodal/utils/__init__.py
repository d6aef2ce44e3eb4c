"""Small helpers shared by the package: crash-safe writes (:mod:`anymodal.utils.atomic`),
file checksums (:mod:`anymodal.utils.checksums`) and the like. Nothing here imports torch."""
