"""The open questions the paper leaves, answered by experiments that run in chapter 07
("Beyond the paper"), one file per question.

Every experiment is a function that returns plain data (dicts, lists of row dicts, NumPy
arrays); the chapter draws them.

* ``settings`` -- the experiments' sizes per profile (:data:`SETTINGS`, :func:`beyond_settings`);
* ``methods`` -- 1. every CAM method against the wall, judged by :func:`helpers.results.verdict`,
  and counted once (:func:`prediction_tally`, for chapters 06 and 07 alike); and
  :func:`measure_methods`, the measurement the other questions share;
* ``conv_wall`` -- 2. the wall moved from the dense weights to the activations;
* ``wall_height`` -- 3. several wall heights on the same features;
* ``resnet`` -- 4. a ResNet with a walled average pool (trained by
  :func:`helpers.train.train_or_load_resnet`);
* ``deep_gradcam`` -- 5. the theory model with more than one dense layer;
* ``conflict`` -- 6. conflicting stacks, class A above the wall and class B below it;
* ``upsampling`` -- 7. a HiResCAM whose zero region is the unseen strip and nothing more;
* ``samples`` -- the images the experiments are fed, synthetic or real, and the book's one rule
  for the example image a figure shows (:func:`example_image`).
"""

from .conflict import conflict_report
from .conv_wall import conv_wall_comparison, conv_wall_prediction
from .deep_gradcam import (
    deep_gradcam_monte_carlo,
    deep_gradcam_reduced,
    patches,
    twin_digit_image,
)
from .methods import (
    measure_methods,
    method_leak_report,
    outcome_reason,
    prediction_tally,
)
from .resnet import gap_gradcam_identity, resnet_report
from .samples import example_image, labelled_images, objects_above
from .settings import SETTINGS, BeyondSettings, beyond_settings
from .upsampling import (
    bilinear_matrix,
    energy_in_boxes,
    erf_kernels,
    fwhm,
    hirescam_repair_report,
    wall_aware_upsample,
)
from .wall_height import target_features, wall_height_sweep

__all__ = [
    "BeyondSettings",
    "SETTINGS",
    "beyond_settings",
    "measure_methods",
    # 1
    "method_leak_report",
    "prediction_tally",
    "outcome_reason",
    # 2
    "conv_wall_prediction",
    "conv_wall_comparison",
    # 3
    "target_features",
    "wall_height_sweep",
    # 4 (the training itself is helpers.train.train_or_load_resnet)
    "gap_gradcam_identity",
    "resnet_report",
    # 5
    "twin_digit_image",
    "patches",
    "deep_gradcam_reduced",
    "deep_gradcam_monte_carlo",
    # 6
    "conflict_report",
    # 7
    "bilinear_matrix",
    "erf_kernels",
    "wall_aware_upsample",
    "energy_in_boxes",
    "hirescam_repair_report",
    "fwhm",
    # the images
    "labelled_images",
    "objects_above",
    "example_image",
]
