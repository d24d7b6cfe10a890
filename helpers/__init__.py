"""Helpers of the executable book "CAM-Based Methods Can See through Walls", replicated.

One module per idea (see README.md): ``config`` (profiles, device, seeds, cache), ``models``
(rVGG, its wall, the theory CNN, the authors' weights), ``wall`` (unseen rows and checks),
``theory``, ``data``, ``train``, ``cams``, ``metrics``, ``evaluate``, ``plots``.
"""

__version__ = "0.1.0"
