"""AblationCAM :cite:p:`desai2020ablationcam`: pytorch-grad-cam's numbers, on the head alone.

The library re-runs the whole network for every ablated channel. Here (same output, max abs
difference below 1e-4, see :mod:`helpers.cams.reference`) only the layers after the target
layer run on the ablated activations
(:meth:`~helpers.cams.shared_pass.SharedPass.head`), in chunks of (image, channel) pairs.
"""

from __future__ import annotations

import numpy as np
import torch

from .library import weighted_sum
from .shared_pass import SharedPass


def run_ablationcam(ps: SharedPass, chunk: int = 256, **_opts):
    """AblationCAM as pytorch-grad-cam computes it, running only the layers after the target.

    Channel ``k`` of image ``i`` is set to 0 (the library's rule when the activations' minimum
    is 0, as after a ReLU; otherwise to ``min - 1e7``); weight ``(y - y_k) / y``. Where the
    original logit is exactly 0 the library divides by zero; we use ``y - y_k`` there.
    """
    head = ps.head()
    a = ps.a.detach()
    n, channels = a.shape[:2]
    orig = ps.target_logits().detach().float()
    mins = a.reshape(n, -1).min(dim=1).values
    values = torch.where(mins == 0, torch.zeros_like(mins), mins - 1e7)
    pairs = torch.cartesian_prod(
        torch.arange(n, device=a.device), torch.arange(channels, device=a.device)
    )
    ablated = torch.empty(n, channels, device=a.device, dtype=torch.float32)
    with torch.no_grad():
        for start in range(0, len(pairs), chunk):
            p = pairs[start : start + chunk]
            img, ch = p[:, 0], p[:, 1]
            batch = a[img].clone()
            batch[torch.arange(len(p), device=a.device), ch] = values[img][
                :, None, None
            ].to(batch.dtype)
            out = head(batch, img).float()
            ablated[img, ch] = out.gather(1, ps.targets[img][:, None])[:, 0]
    orig_np = orig.cpu().numpy().astype(np.float32)[:, None]
    abl = ablated.cpu().numpy().astype(np.float32)
    denom = np.where(orig_np == 0, np.float32(1), orig_np)
    weights = (orig_np - abl) / denom
    return weighted_sum(weights, ps.A), {"zero_logit_images": int((orig_np == 0).sum())}
