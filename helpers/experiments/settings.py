"""How big each experiment of chapter 07 ("Beyond the paper") is, in each profile.

:data:`SETTINGS` holds one :class:`BeyondSettings` per profile (the quick profile uses fewer
images than the paper's 100 and a few methods for the per-model measurements; the chapter says
so where it matters); :func:`beyond_settings` picks the current profile's. The walled ResNet
of question 4 is sized with its training, :data:`helpers.train.RESNET_SETTINGS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..cams import METHODS
from ..config import Profile, get_profile

__all__ = ["BeyondSettings", "SETTINGS", "beyond_settings"]


@dataclass(frozen=True)
class BeyondSettings:
    """Sizes of the chapter's experiments in a profile.

    Attributes:
        methods: CAM methods measured per model (Opti-CAM is left out of the per-model
            measurements: about 10 s per image on 2 CPU cores; Table 1 has it).
        eval_images: stacked images per measurement (questions 2, 4, 6).
        sweep_heights: wall heights (hidden map rows) of question 3.
        sweep_methods: methods of the wall-height sweep.
        sweep_images: stacked images per wall height.
        probe_images: images whose features train each wall height's classifier.
        probe_epochs: epochs of that training.
        theory_filters, theory_hidden, theory_models, theory_depths: question 5.
        repair_images: images of question 7; erf_images: Gaussian inputs that measure the effective
            receptive fields there.
        batch_size: images per CAM pass.
    """

    methods: tuple[str, ...]
    eval_images: int
    sweep_heights: tuple[int, ...]
    sweep_methods: tuple[str, ...]
    sweep_images: int
    probe_images: int
    probe_epochs: int
    theory_filters: int
    theory_hidden: int
    theory_models: int
    theory_depths: tuple[int, ...]
    repair_images: int
    erf_images: int = 4
    batch_size: int = 25


_METHODS_QUICK = (
    "gradcam",
    "gradcampp",
    "xgradcam",
    "scorecam",
    "ablationcam",
    "eigencam",
    "hirescam",
    "layercam",
    "gradcamelementwise",
    "fullgrad",
    "eigengradcam",
    "kpcacam",
    "fem",
    "randomcam",
)

SETTINGS: dict[str, BeyondSettings] = {
    "quick": BeyondSettings(
        methods=_METHODS_QUICK,
        eval_images=20,
        sweep_heights=(0, 3, 6, 9, 11, 13),
        sweep_methods=(
            "gradcam",
            "gradcampp",
            "xgradcam",
            "scorecam",
            "eigencam",
            "hirescam",
            "layercam",
        ),
        sweep_images=12,
        probe_images=512,
        probe_epochs=10,
        theory_filters=256,
        theory_hidden=256,
        theory_models=1000,
        theory_depths=(1, 2, 3),
        repair_images=32,
        erf_images=4,
        batch_size=25,
    ),
    "full": BeyondSettings(
        methods=tuple(
            k for k in METHODS if k in _METHODS_QUICK + ("opticam",)
        ),  # registry order
        eval_images=100,
        sweep_heights=(0, 3, 6, 9, 11, 12, 13),
        sweep_methods=_METHODS_QUICK,
        sweep_images=100,
        probe_images=4000,
        probe_epochs=10,
        theory_filters=256,
        theory_hidden=1024,
        theory_models=20000,
        theory_depths=(1, 2, 3, 4),
        repair_images=100,
        erf_images=16,
        batch_size=50,
    ),
}


def beyond_settings(profile: str | Profile | None = None) -> BeyondSettings:
    """The :class:`BeyondSettings` of a profile (``None``: ``$CAMWALLS_PROFILE``)."""
    return SETTINGS[get_profile(profile).name]
