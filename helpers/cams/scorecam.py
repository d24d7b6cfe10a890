"""ScoreCAM :cite:p:`wang2020scorecam`, batched: pytorch-grad-cam's numbers, fewer passes.

The library runs one forward pass per channel and image. Here (same output, max abs difference
below 1e-4, see :mod:`helpers.cams.reference` and ``python -m tools.bench_cams``) the masked
images of several images and channels go through one forward pass, the score of an all-zero
mask (every flat channel's) is computed once, and on a walled rVGG the masked images run only
on the input rows the logits depend on (:mod:`helpers.masked_forward`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import masked_forward
from .library import weighted_sum
from .shared_pass import SharedPass


def run_scorecam(ps: SharedPass, chunk: int = 64, visible_rows: bool = True, **_opts):
    """ScoreCAM as pytorch-grad-cam computes it, batched.

    Masks: each channel upsampled with ``UpsamplingBilinear2d`` (``align_corners=True``) and
    min-max scaled with ``+1e-8``; scores: the target logit of the masked image; weights:
    their softmax over channels. A flat channel's mask is exactly zero, so its score is the
    logit of an all-zero image, computed once. With ``visible_rows`` (VGG-like networks, see
    :mod:`helpers.masked_forward`), a wall is used: a mask lying entirely where the logits
    cannot see scores as the all-zero image too (``unread_masks``), and the other masked images
    run on the input rows the logits depend on (``rows_share`` of the rows).
    """
    model, x = ps.model, ps.x
    a = ps.a.detach()
    n, channels = a.shape[:2]
    size = x.shape[-2:]
    flat = a.reshape(n, channels, -1)
    lo, hi = flat.min(dim=2).values, flat.max(dim=2).values
    live = (hi > lo).nonzero(as_tuple=False)  # (pairs, 2): image, channel
    n_live = len(live)
    scores = torch.empty(n, channels, device=a.device, dtype=torch.float32)
    fast = None
    if (
        visible_rows
        and n_live
        and masked_forward.supports_model(model)
        and size[0] % 16 == 0
    ):
        fast = masked_forward.VisibleRowsForward(model, (int(size[0]), int(size[1])))
    buffer = None
    with torch.no_grad():
        zero_logits = (
            fast.zero_logits if fast is not None else model(torch.zeros_like(x[:1]))[0]
        )
        scores[:] = zero_logits.float()[ps.targets][
            :, None
        ]  # flat channels, masks behind a wall
        unread = 0
        for start in range(0, n_live, chunk):
            pairs = live[start : start + chunk]
            # upsample, then min-max scale, in this order as the library does (for a nearly flat
            # channel the other order differs by far more than rounding)
            up = F.interpolate(
                a[pairs[:, 0], pairs[:, 1]][:, None],
                size=size,
                mode="bilinear",
                align_corners=True,
            )
            upf = up.reshape(len(pairs), -1)
            mins = upf.min(dim=1).values[:, None, None, None]
            maxs = upf.max(dim=1).values[:, None, None, None]
            masks = (up - mins) / (maxs - mins + 1e-8)
            if fast is not None:
                seen = ~fast.unread(masks)
                unread += int((~seen).sum())
                if not bool(seen.any()):
                    continue
                pairs, masks = pairs[seen], masks[seen]
                out = fast(x, masks, pairs[:, 0]).float()
            else:
                if buffer is None:
                    buffer = torch.empty(
                        (min(chunk, n_live),) + tuple(x.shape[1:]),
                        device=x.device,
                        dtype=x.dtype,
                    ).contiguous(memory_format=torch.channels_last)
                img = pairs[:, 0]
                masked = buffer[: len(pairs)]
                # one pass per run of pairs of the same image: masked[j] = x[i] * mask[j]
                bounds = torch.nonzero(torch.diff(img), as_tuple=False)[:, 0].tolist()
                begin = 0
                for end in bounds + [len(pairs) - 1]:
                    i = int(img[begin])
                    torch.mul(
                        x[i : i + 1],
                        masks[begin : end + 1],
                        out=masked[begin : end + 1],
                    )
                    begin = end + 1
                out = model(masked).float()
            scores[pairs[:, 0], pairs[:, 1]] = out.gather(
                1, ps.targets[pairs[:, 0]][:, None]
            )[:, 0]
    weights = torch.softmax(scores, dim=-1).cpu().numpy()
    extras = {
        "flat_channels": int(n * channels - n_live),
        "forward_images": int(n_live - unread),
        "unread_masks": int(unread),
        "rows_share": fast.share if fast is not None else 1.0,
    }
    return weighted_sum(weights, ps.A), extras
