"""rVGG with its wall, the baseline, the small CNN of the theory, and the authors' weights.

rVGG (book/paper.md): torchvision's VGG16 layout without batch norm, the last max-pool and the
adaptive average pool removed, conv5_3 changed to 512 -> 256 channels (a 14x14 map on a
224x224 input), and a classifier ``Linear(256*14*14, 4096) - ReLU - Dropout - Linear(4096,
4096) - ReLU - Dropout - Linear(4096, classes)``. The *wall*: every weight of the first
``Linear`` that reads one of the lower ``wall_rows`` rows of the 14x14 map is zero.

The wall is structural: :class:`WalledLinear` multiplies its weight by a fixed 0/1 mask (a
buffer) in every forward pass, so no optimizer step and no loaded state dict can open it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import vgg as tv_vgg

from .config import IMAGE_SIZE, MAP_SIZE, WALL_ROWS, read_checkpoint_file
from .receptive_field import input_rows_reaching

__all__ = [
    "WalledLinear",
    "wall_mask",
    "RVGG",
    "rvgg",
    "rvgg_channels",
    "TheoryCNN",
    "theory_cnn",
    "AUTHORS_CONV_INDICES",
    "authors_to_rvgg_state_dict",
    "rvgg_to_authors_state_dict",
    "load_authors_weights",
    "wall_weights_zero",
    "check_image_batch",
    "rvgg_forward_flops",
]

#: VGG16 ("D") convolution widths; the paper's rVGG ends with 256 channels instead of 512.
_VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 256]
#: Indices of the 13 convolutions in the authors' flat ``nn.Sequential`` (and in ``features``).
AUTHORS_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
#: Index of the ReLU after conv5_3, the CAM target layer.
TARGET_LAYER_INDEX = 29
#: Index of the classifier in the authors' flat ``nn.Sequential``.
AUTHORS_CLASSIFIER_INDEX = 31


def wall_mask(channels: int, map_size: int = MAP_SIZE, wall_rows: int = WALL_ROWS) -> torch.Tensor:
    """The 0/1 mask over the flattened ``(channels, map_size, map_size)`` features.

    Entry ``c*map_size*map_size + r*map_size + w`` is 0 when row ``r`` is one of the lower
    ``wall_rows`` rows (``r >= map_size - wall_rows``), 1 otherwise. Shape ``(channels*map_size**2,)``.
    """
    if not 0 <= wall_rows <= map_size:
        raise ValueError(
            f"wall_rows must be between 0 (no wall) and map_size={map_size}, got {wall_rows}."
        )
    rows = torch.arange(map_size, device="cpu").view(1, map_size, 1).expand(channels, map_size, map_size)
    return (rows < map_size - wall_rows).to(torch.float32).reshape(-1).contiguous()


class WallError(ValueError):
    """A wall violation: weights under the wall that should be exactly zero are not.

    A ``ValueError``, so that ``except ValueError`` catches every refusal about the wall; raised
    by :class:`WalledLinear` when a state dict with an open wall is loaded into it."""


class WalledLinear(nn.Linear):
    """A ``nn.Linear`` whose inputs at masked positions are never read.

    ``forward`` uses ``where(mask, weight, 0)`` (``mask`` is a non-trainable buffer of shape
    ``(in_features,)``), so the effective weight on a masked input is exactly zero in every
    forward pass, whatever the stored weight. The stored weights under the wall are also
    zeroed at construction and on every ``load_state_dict`` (see ``on_open_wall``), so that a
    checkpoint saved from this layer has a closed wall too.

    Args:
        in_features, out_features, bias: as for ``nn.Linear``.
        mask: 0/1 tensor of shape ``(in_features,)``.
        on_open_wall: what loading a state dict with non-zero weights under the wall does:
            ``"error"`` (default) refuses it; ``"repair"`` zeroes them with a warning.
    """

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor, bias: bool = True,
                 on_open_wall: str = "error") -> None:
        super().__init__(in_features, out_features, bias=bias)
        mask = torch.as_tensor(mask, dtype=torch.float32, device="cpu").reshape(-1)
        if mask.numel() != in_features:
            raise ValueError(f"mask has {mask.numel()} entries, expected in_features={in_features}.")
        if not torch.all((mask == 0) | (mask == 1)):
            raise ValueError("mask must contain only 0 and 1.")
        if on_open_wall not in ("error", "repair"):
            raise ValueError(f"on_open_wall must be 'error' or 'repair', got {on_open_wall!r}.")
        self.register_buffer("mask", mask, persistent=False)
        self.on_open_wall = on_open_wall
        with torch.no_grad():
            self.weight.masked_fill_(self.mask == 0, 0.0)

    @property
    def effective_weight(self) -> torch.Tensor:
        """The weight the forward pass uses: ``weight`` where ``mask`` is 1, exactly 0 elsewhere
        (shape ``(out, in)``; a ``where``, not a product, so that even a NaN or an infinity
        stored under the wall is never read)."""
        return torch.where(self.mask.bool(), self.weight, torch.zeros((), dtype=self.weight.dtype,
                                                                      device=self.weight.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return F.linear(x, self.effective_weight, self.bias)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        key = prefix + "weight"
        if key in state_dict and state_dict[key].shape == self.weight.shape:
            w = state_dict[key]
            under = w.detach()[:, (self.mask == 0).to(w.device)]
            open_ = under != 0  # a NaN counts as non-zero
            if bool(open_.any()):
                n = int(open_.sum())
                largest = float(under.abs().nan_to_num(nan=float("inf")).max())
                if self.on_open_wall == "error":
                    raise WallError(
                        f"{key}: {n} of the {under.numel()} weights under the wall are "
                        f"non-zero (largest {largest:.3g}); expected exactly 0, since the model is "
                        "walled. This state does not have a closed wall: it is a baseline's, or it was "
                        "modified. Use the walled model's own checkpoint, or load it with "
                        "on_open_wall='repair' to zero them explicitly."
                    )
                import warnings

                warnings.warn(
                    f"{key}: zeroing {n} non-zero weights under the wall (largest "
                    f"{largest:.3g}) as requested by on_open_wall='repair'.",
                    stacklevel=3,
                )
                state_dict = dict(state_dict)
                state_dict[key] = torch.where(self.mask.bool().to(w.device), w, torch.zeros_like(w))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        with torch.no_grad():
            self.weight.masked_fill_(self.mask == 0, 0.0)

    def extra_repr(self) -> str:  # noqa: D102
        hidden = int((self.mask == 0).sum())
        return super().extra_repr() + f", hidden_inputs={hidden}"


def rvgg_channels(width: float = 1.0) -> list[int | str]:
    """The ``make_layers`` configuration of rVGG with every channel count scaled by ``width``."""
    if not (isinstance(width, (int, float)) and 0 < width <= 4):
        raise ValueError(f"width must be a number in (0, 4], got {width!r}.")
    return [v if v == "M" else max(1, int(round(v * width))) for v in _VGG16_CFG]


def check_image_batch(x: torch.Tensor, image_size: int = IMAGE_SIZE, channels: int = 3) -> None:
    """Raise a clear ``ValueError`` unless ``x`` has shape ``(N, channels, image_size, image_size)``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor of images, got {type(x).__name__}.")
    if x.dim() != 4:
        raise ValueError(
            f"expected a batch of shape (N, {channels}, {image_size}, {image_size}), got shape "
            f"{tuple(x.shape)}; add a batch dimension with x.unsqueeze(0) for a single image."
        )
    if x.shape[1] != channels:
        hint = (" For a grayscale image, repeat it: x.expand(-1, 3, -1, -1)." if x.shape[1] == 1
                else " For RGBA, drop the alpha channel: x[:, :3]." if x.shape[1] == 4 else "")
        raise ValueError(f"expected {channels} channels, got {x.shape[1]} (shape {tuple(x.shape)}).{hint}")
    if tuple(x.shape[2:]) != (image_size, image_size):
        raise ValueError(
            f"expected {image_size}x{image_size} images, got {x.shape[2]}x{x.shape[3]}; the wall "
            f"geometry (a {MAP_SIZE}x{MAP_SIZE} map) holds only at {image_size}x{image_size}. "
            "Resize first (e.g. torchvision.transforms.Resize(256) + CenterCrop(224))."
        )


class RVGG(tv_vgg.VGG):
    """torchvision's ``VGG`` with rVGG's features and classifier (see module docstring).

    Attributes:
        features: the 13 convolutions with ReLUs and 4 max-pools (no fifth pool).
        avgpool: ``nn.Identity`` (the adaptive pool is removed).
        classifier: ``WalledLinear`` (or ``nn.Linear`` when ``wall_rows == 0``), ReLU, Dropout,
            Linear, ReLU, Dropout, Linear.
        target_layer: the ReLU after conv5_3 (output ``(N, C, 14, 14)``), for CAM methods.
        wall_rows, width, image_size: the construction arguments.
    """

    def __init__(self, num_classes: int = 1000, width: float = 1.0, wall_rows: int = WALL_ROWS,
                 dropout: float = 0.5, image_size: int = IMAGE_SIZE, on_open_wall: str = "error") -> None:
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
        if image_size != IMAGE_SIZE:
            raise ValueError(
                f"rVGG is defined for {IMAGE_SIZE}x{IMAGE_SIZE} inputs (a {MAP_SIZE}x{MAP_SIZE} map); "
                f"got image_size={image_size}. Resize your images to {IMAGE_SIZE}."
            )
        cfg = rvgg_channels(width)
        features = tv_vgg.make_layers(cfg, batch_norm=False)
        # The CAM target layer must not be in place (hooks read its output).
        features[TARGET_LAYER_INDEX] = nn.ReLU(inplace=False)
        # torchvision's VGG.__init__ would first build (and initialise) its own 102M-parameter
        # classifier only for us to replace it: set the three parts directly instead.
        nn.Module.__init__(self)
        self.features = features
        self.avgpool = nn.Identity()
        channels = int(cfg[-1])
        hidden = max(1, int(round(4096 * width)))
        in_features = channels * MAP_SIZE * MAP_SIZE
        first = (WalledLinear(in_features, hidden, wall_mask(channels, MAP_SIZE, wall_rows),
                              on_open_wall=on_open_wall)
                 if wall_rows > 0 else nn.Linear(in_features, hidden))
        if not 0 <= wall_rows <= MAP_SIZE:
            raise ValueError(f"wall_rows must be in 0..{MAP_SIZE}, got {wall_rows}.")
        self.classifier = nn.Sequential(
            first, nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes),
        )
        self.width = width
        self.wall_rows = wall_rows
        self.image_size = image_size
        self.num_classes = num_classes
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's VGG initialisation; the wall is re-applied by WalledLinear's mask.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)
        first = self.classifier[0]
        if isinstance(first, WalledLinear):
            with torch.no_grad():
                first.weight.masked_fill_(first.mask == 0, 0.0)

    @property
    def target_layer(self) -> nn.Module:
        """The ReLU after conv5_3, whose output is the 14x14 map CAM methods explain."""
        return self.features[TARGET_LAYER_INDEX]

    @property
    def map_channels(self) -> int:
        """Channels of the target layer's output (256 at width 1)."""
        return int(self.features[AUTHORS_CONV_INDICES[-1]].out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of images ``x`` of shape ``(N, 3, 224, 224)``."""
        check_image_batch(x, self.image_size)
        return super().forward(x)


def rvgg(num_classes: int = 1000, width: float = 1.0, wall_rows: int = WALL_ROWS, **kwargs) -> RVGG:
    """Build rVGG (``wall_rows=9``, the paper's walled model) or its baseline (``wall_rows=0``).

    ``width`` scales every channel count and the 4096-unit dense layers; the depth, kernels and
    pooling, hence the wall geometry, do not change. See :class:`RVGG`.
    """
    return RVGG(num_classes=num_classes, width=width, wall_rows=wall_rows, **kwargs)


# --------------------------------------------------------------------------------------------
# The authors' flat layout
# --------------------------------------------------------------------------------------------

def authors_to_rvgg_state_dict(state: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """Rename a state dict of the authors' flat ``nn.Sequential`` to :class:`RVGG`'s names.

    ``"<i>.weight"`` (``i`` <= 28) becomes ``"features.<i>.weight"``; ``"31.<j>.*"`` becomes
    ``"classifier.<j>.*"``. A ``"module."`` prefix (DataParallel/DDP) is stripped.

    Raises:
        ValueError: on a key that belongs to neither part, naming it.
    """
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state.items():
        k = key[len("module."):] if key.startswith("module.") else key
        head, _, rest = k.partition(".")
        if not head.isdigit() or not rest:
            raise ValueError(
                f"Unexpected key {key!r} in the authors' state dict: expected '<index>.weight', "
                f"'<index>.bias' or '{AUTHORS_CLASSIFIER_INDEX}.<j>.<param>'. Is this a checkpoint "
                "in the authors' flat nn.Sequential layout?"
            )
        idx = int(head)
        if idx in AUTHORS_CONV_INDICES:
            out[f"features.{idx}.{rest}"] = value
        elif idx == AUTHORS_CLASSIFIER_INDEX:
            out[f"classifier.{rest}"] = value
        else:
            raise ValueError(
                f"Unexpected key {key!r}: index {idx} is neither a convolution "
                f"{AUTHORS_CONV_INDICES} nor the classifier ({AUTHORS_CLASSIFIER_INDEX})."
            )
    return out


def rvgg_to_authors_state_dict(state: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """The inverse of :func:`authors_to_rvgg_state_dict` (used by tests and exports)."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state.items():
        if key.startswith("features."):
            out[key[len("features."):]] = value
        elif key.startswith("classifier."):
            out[f"{AUTHORS_CLASSIFIER_INDEX}.{key[len('classifier.'):]}"] = value
        else:
            raise ValueError(f"Unexpected rVGG key {key!r}.")
    return out


def wall_weights_zero(weight: torch.Tensor, wall_rows: int = WALL_ROWS, map_size: int = MAP_SIZE,
                      chunk: int = 256) -> bool:
    """Whether every weight of a first dense layer that reads one of the lower ``wall_rows``
    rows of the ``map_size`` x ``map_size`` map is exactly zero (the mark of a walled checkpoint).

    The weight is read ``chunk`` output rows at a time, so that the full-width layer (4096 x
    50176) needs no second copy of itself. A NaN counts as non-zero.

    Args:
        weight: ``(out_features, channels * map_size**2)``, inputs flattened as
            ``(channels, rows, columns)`` (rVGG's flatten order).
        wall_rows: the number of hidden rows, ``1..map_size``.
        map_size: the side of the map.
        chunk: output rows read at once.

    Raises:
        ValueError: when ``weight`` is not 2-D with a multiple of ``map_size**2`` inputs, or
            ``wall_rows`` is not in ``1..map_size``.
    """
    if not 1 <= wall_rows <= map_size:
        raise ValueError(f"wall_rows must be in 1..{map_size}, got {wall_rows}.")
    area = map_size * map_size
    if weight.dim() != 2 or weight.shape[1] % area != 0:
        raise ValueError(
            f"expected a first dense layer weight of shape (out, channels*{area}), got "
            f"{tuple(weight.shape)}."
        )
    channels = weight.shape[1] // area
    first_hidden = map_size - wall_rows
    with torch.no_grad():
        for start in range(0, weight.shape[0], chunk):
            block = weight[start:start + chunk].reshape(-1, channels, map_size, map_size)
            if bool(block[:, :, first_hidden:, :].ne(0).any()):
                return False
    return True


#: The Google Drive folder of the authors' release (book/paper.md).
AUTHORS_DRIVE_FOLDER = "19LbSZcABEv3E0KB4KzlYQebjo8qDxr1S"
AUTHORS_DRIVE_URL = f"https://drive.google.com/drive/folders/{AUTHORS_DRIVE_FOLDER}"


def _authors_remedy() -> str:
    """What to do with a broken or mislabelled file of the authors' release."""
    return ("Delete it and download it again: helpers.data.download_authors_release() (needs a "
            f"network), or by hand from the authors' Google Drive folder {AUTHORS_DRIVE_URL}.")


def load_authors_weights(source: str | Path | Mapping[str, torch.Tensor], walled: bool = True,
                         on_open_wall: str = "error", map_location: str | torch.device = "cpu") -> RVGG:
    """Build rVGG from the authors' checkpoint (``params_vgg16_masked.pt`` or
    ``params_vgg16_baseline.pt``), read with ``torch.load(..., weights_only=True)`` (through
    :func:`helpers.config.read_checkpoint_file`).

    The width is read from the first convolution (64 channels: the paper's full width), the
    number of classes from the last layer; every other tensor must then have rVGG's shape.

    Args:
        source: a path to the checkpoint, or an already loaded state dict.
        walled: build the walled model (``True``) or the baseline (``False``).
        on_open_wall: ``"error"`` refuses a walled checkpoint whose wall weights are not zero;
            ``"repair"`` zeroes them with a warning.
        map_location: passed to ``torch.load``.

    Raises:
        FileNotFoundError: when the file is missing (says where to get it).
        helpers.config.CheckpointError: (a ``ValueError``) when torch cannot read the file
            (truncated, corrupt, not a checkpoint); the message says to delete it and download
            it again.
        ValueError: when the tensors do not have rVGG's shapes, or ``walled=False`` is asked of
            a checkpoint whose wall weights are all exactly zero (the walled model: pass
            ``walled=True``).
        WallError: (a ``ValueError``) when ``walled=True``, ``on_open_wall="error"`` and the checkpoint has
            non-zero weights under the wall (from ``load_state_dict``, "under the wall").
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(
                f"No checkpoint at {path}. Download the authors' params_vgg16_masked.pt / "
                "params_vgg16_baseline.pt (helpers.data.download_authors_release, needs a "
                "network) or copy them there by hand."
            )
        state = read_checkpoint_file(path, remedy=_authors_remedy(), map_location=map_location)
        if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
            state = state["state_dict"]
        what = f"The checkpoint {path}"
    else:
        state = source
        what = "The given state dict"
    if not isinstance(state, Mapping):
        raise ValueError(f"expected a state dict (a mapping of tensors), got {type(state).__name__}.")
    renamed = authors_to_rvgg_state_dict(state)
    for needed in ("features.0.weight", "classifier.6.weight"):
        if needed not in renamed:
            raise ValueError(f"The checkpoint has no {needed!r} tensor; it is not in rVGG's layout "
                             "(the authors' flat nn.Sequential).")
    dense = renamed.get("classifier.0.weight")
    if (not walled and isinstance(dense, torch.Tensor) and dense.dim() == 2 and dense.numel() > 0
            and dense.shape[1] % (MAP_SIZE * MAP_SIZE) == 0 and wall_weights_zero(dense)):
        raise ValueError(
            f"{what} was asked for as the baseline (walled=False), but every weight of its first "
            f"dense layer ({AUTHORS_CLASSIFIER_INDEX}.0.weight, {tuple(dense.shape)}) that reads the "
            f"lower {WALL_ROWS} rows of the {MAP_SIZE}x{MAP_SIZE} map is exactly zero: it is the "
            "walled model (params_vgg16_masked.pt), not the baseline, whose weights there are "
            "non-zero. Load it with walled=True; if the file is named params_vgg16_baseline.pt, the "
            "two checkpoints were swapped or mislabelled: " + _authors_remedy()
        )
    num_classes = int(renamed["classifier.6.weight"].shape[0])
    # The authors' checkpoints are full width (64 channels first); narrower ones in the same
    # layout (our quick profile exported with rvgg_to_authors_state_dict) load too.
    width = int(renamed["features.0.weight"].shape[0]) / 64
    model = rvgg(num_classes=num_classes, width=width, wall_rows=WALL_ROWS if walled else 0,
                 on_open_wall=on_open_wall)
    expected = model.state_dict()
    wrong = [f"{k}: checkpoint {tuple(v.shape)} vs rVGG {tuple(expected[k].shape)}"
             for k, v in renamed.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    missing = sorted(set(expected) - set(renamed))
    extra = sorted(set(renamed) - set(expected))
    if wrong or missing or extra:
        raise ValueError(
            "The checkpoint does not have rVGG's layout: "
            + "; ".join(filter(None, [
                ("shape mismatches: " + ", ".join(wrong[:5])) if wrong else "",
                ("missing: " + ", ".join(missing[:5])) if missing else "",
                ("unexpected: " + ", ".join(extra[:5])) if extra else "",
            ]))
            + ". Expected the authors' flat nn.Sequential of rVGG (conv5_3 with 256 channels, "
            "first dense layer 50176 -> 4096)."
        )
    result = model.load_state_dict(renamed, strict=True)
    del result
    return model.eval()


# --------------------------------------------------------------------------------------------
# The theory model
# --------------------------------------------------------------------------------------------

class TheoryCNN(nn.Module):
    """The masked CNN of the theory chapter (book/paper.md, "The theory model").

    ``(N, 1, 29, 29)`` -> ``Conv2d(1, V, 2, bias=False)`` -> ReLU (``target_layer``, 28x28) ->
    ``MaxPool2d(2)`` (14x14) -> flatten -> ``WalledLinear(V*14*14, classes, bias=False)`` whose
    weights on the lower ``hidden_rows`` of the 14 rows are zero. With ``sigma_w``/``sigma_W``
    the weights are i.i.d. ``N(0, sigma^2)`` (standard Gaussian by default).
    """

    def __init__(self, filters: int = 256, num_classes: int = 10, hidden_rows: int = 7,
                 sigma_w: float = 1.0, sigma_W: float = 1.0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if filters < 1 or num_classes < 1:
            raise ValueError(f"filters and num_classes must be positive, got {filters}, {num_classes}.")
        self.filters, self.num_classes, self.hidden_rows = filters, num_classes, hidden_rows
        self.conv = nn.Conv2d(1, filters, kernel_size=2, bias=False)
        self.relu = nn.ReLU(inplace=False)
        self.pool = nn.MaxPool2d(2)
        self.dense = WalledLinear(filters * 14 * 14, num_classes, wall_mask(filters, 14, hidden_rows),
                                  bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=generator) * sigma_w)
            self.dense.weight.copy_(torch.randn(self.dense.weight.shape, generator=generator) * sigma_W
                                    * self.dense.mask)

    @property
    def target_layer(self) -> nn.Module:
        """The ReLU after the convolution (28x28 maps): GradCAM is taken there."""
        return self.relu

    def visible_map_rows(self) -> list[int]:
        """Rows of the pooled 14x14 map that the dense layer reads (0..13-hidden_rows)."""
        return list(range(14 - self.hidden_rows))

    def unseen_rows(self, image_size: int = 29) -> list[int]:
        """Input rows (of the 29-row image) the logits cannot depend on, by receptive-field
        arithmetic through the convolution and the pooling (rows 15..28 with 7 hidden rows)."""
        if image_size != 29:
            raise ValueError(f"TheoryCNN is defined for 29x29 inputs, got image_size={image_size}.")
        seen = input_rows_reaching([self.conv, self.relu, self.pool], self.visible_map_rows(), image_size)
        return sorted(set(range(image_size)) - set(int(r) for r in seen))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, classes)`` of ``(N, 1, 29, 29)`` images."""
        check_image_batch(x, image_size=29, channels=1)
        return self.dense(torch.flatten(self.pool(self.relu(self.conv(x))), 1))


def theory_cnn(filters: int = 256, num_classes: int = 10, hidden_rows: int = 7, seed: int | None = None,
               sigma_w: float = 1.0, sigma_W: float = 1.0) -> TheoryCNN:
    """A :class:`TheoryCNN` at Gaussian initialization (reproducible with ``seed``)."""
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return TheoryCNN(filters, num_classes, hidden_rows, sigma_w, sigma_W, generator=gen)


def rvgg_forward_flops(width: float = 1.0, num_classes: int = 1000) -> float:
    """Floating-point operations (2 x multiply-accumulates) of one rVGG forward pass on one
    224x224 image; convolutions and dense layers only (ReLU and pooling are negligible).

    A training step costs about three times this (forward, and backward for inputs and weights).
    """
    macs, size, cin = 0, IMAGE_SIZE, 3
    for v in rvgg_channels(width):
        if v == "M":
            size //= 2
            continue
        macs += size * size * 9 * cin * int(v)
        cin = int(v)
    hidden = max(1, int(round(4096 * width)))
    macs += cin * MAP_SIZE**2 * hidden + hidden * hidden + hidden * num_classes
    return 2.0 * macs
