"""What each training aid of the quick profile buys: the walled rVGG trained with the quick
recipe, and again with one deviation from the paper's recipe taken back at a time, for the same
number of steps; each run's accuracy on held-out objects above, straddling and below the wall.

``python -m helpers.train.ablation --out results/cpu/ablation/ablation.json`` trains the runs that are not
in the checkpoint cache (two at a time on a CPU, :func:`helpers.train.train_in_processes`) and
writes one JSON file with the command, the date, the machine and every run; chapter 04 reads it.
Run again, it reads every model from the cache and returns at once.

What is not ablated, and why: the width (1/16 of the paper's channels) and the synthetic world
are what make a CPU run possible at all; training on the visible rows
(:class:`helpers.masked_forward.VisibleRowsNet`) computes the same logits and gradients as the
full pass (a test compares them), so it changes the time, not what is learned.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


from .. import cli
from ..config import provenance
from .config import checkpoint_path, config_differences, training_config
from .rvgg import is_trained, train_in_processes, train_or_load

__all__ = ["ABLATIONS", "ablation_configs", "run_ablation", "main"]

#: The runs: a name, what it changes in the quick recipe (training settings), and why. Each
#: takes back one of the quick recipe's deviations from the paper's recipe, or (``added``) adds
#: an aid that was tried and left out of the recipe.
ABLATIONS: dict[str, dict[str, Any]] = {
    "quick recipe": {
        "changes": {},
        "why": "Adam, cosine schedule, pooled head, weight standardization",
    },
    "position tie": {
        "changes": {"tie_fraction": 0.5},
        "added": True,
        "why": "an aid added, not taken back: the first dense layer tied across positions for the first half "
        "of the steps (it starts pooled), so the convolutions learn before the head tells positions apart",
    },
    "no pooled head": {
        "changes": {"init": "torchvision"},
        "why": "torchvision's VGG initialization of the head (the paper's) instead of the same weights at every "
        "visible position",
    },
    "no weight standardization": {
        "changes": {"weight_standardization": False},
        "why": "plain convolution weights (the paper's)",
    },
    "paper's optimizer": {
        "changes": {
            "optimizer": "sgd",
            "lr": 0.03 * 16 / 256,
            "momentum": 0.9,
            "weight_decay": 1e-4,
            "schedule": "step",
            "lr_step_epochs": 30,
            "warmup_steps": 0,
        },
        "why": "SGD with momentum 0.9 and weight decay 1e-4, the paper's learning rate 0.03 at batch 256 "
        "scaled to batch 16 by the linear rule, divided by 10 every 30 epochs (so constant over "
        "so short a run), no warm-up",
    },
    "paper's dropout": {
        "changes": {"dropout": 0.5},
        "why": "dropout 0.5 in the dense layers, as in VGG16",
    },
}


def ablation_configs(
    profile: str | None = "quick", **overrides: Any
) -> dict[str, dict[str, Any]]:
    """The walled model's configuration of every run of :data:`ABLATIONS` (name -> config),
    with ``overrides`` (e.g. ``epochs=6``) applied to all of them.

    Raises:
        ValueError: when a run's configuration would not differ from the recipe's in exactly
            the settings it names (a change that is a no-op for the profile, say).
    """
    recipe = training_config(profile, walled=True, **overrides)
    configs = {}
    for name, run in ABLATIONS.items():
        config = training_config(
            profile, walled=True, **{**overrides, **run["changes"]}
        )
        changed = {line.split(":")[0] for line in config_differences(recipe, config)}
        expected = {
            f"train.{key}"
            for key, value in run["changes"].items()
            if recipe["train"][key] != value
        }
        if changed != expected or (run["changes"] and not changed):
            raise ValueError(
                f"ablation {name!r}: differs from the recipe in {sorted(changed)}, "
                f"expected {sorted(expected)}."
            )
        configs[name] = config
    return configs


def run_ablation(
    profile: str | None = "quick",
    device: str | None = None,
    processes: int | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Train (or load) every run of :func:`ablation_configs` and return ``{"runs": [...]}``, one
    dict per run: ``name``, ``changes``, ``why``, ``key``, ``checkpoint``, ``val_accuracy``,
    ``position_accuracy`` (``above``/``straddle``/``below``), ``train_seconds``, ``steps``,
    ``history``, ``from_cache``."""
    configs = ablation_configs(profile, **overrides)
    fresh = {name for name, config in configs.items() if not is_trained(config)}
    train_in_processes(configs, device=device, processes=processes)
    runs = []
    for name, config in configs.items():
        settings = {
            k: v for k, v in config["train"].items() if k in ABLATIONS[name]["changes"]
        }
        _, info = train_or_load(
            profile, walled=True, device=device, pair=False, **{**overrides, **settings}
        )
        history = info["history"]
        runs.append(
            {
                "name": name,
                "changes": ABLATIONS[name]["changes"],
                "why": ABLATIONS[name]["why"],
                "added": bool(ABLATIONS[name].get("added", False)),
                "key": info["key"],
                "checkpoint": str(checkpoint_path(config)),
                "val_accuracy": info["val_accuracy"],
                "position_accuracy": info["position_accuracy"],
                "train_seconds": info["train_seconds"],
                "steps": history[-1]["step"] if history else 0,
                "history": history,
                "from_cache": name not in fresh,
            }
        )
    return {
        "profile": configs["quick recipe"]["profile"],
        "overrides": overrides,
        "runs": runs,
    }


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.train.ablation [--out FILE] [--set KEY=VALUE ...]``."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers.train.ablation", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="trainings at a time (default: one per core)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for every run (e.g. --set epochs=6)",
    )
    parser.add_argument(
        "--out",
        default="results/cpu/ablation/ablation.json",
        help="the JSON file to write",
    )

    def command(args: argparse.Namespace) -> int:
        overrides = {}
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                parser.error(f"--set expects KEY=VALUE, got {item!r}")
            overrides[key.strip()] = _value(value)
        out = Path(args.out)
        cli.ensure_writable_folder(
            out.parent, "The folder of --out", "Pass --out a path you can write to."
        )
        t0 = time.perf_counter()
        result = run_ablation(
            args.profile, device=args.device, processes=args.processes, **overrides
        )
        result = {
            **provenance(
                "python -m helpers.train.ablation "
                + " ".join(sys.argv[1:] if argv is None else argv),
                args.device,
            ),
            "wall_seconds": round(time.perf_counter() - t0, 1),
            **result,
        }
        out.write_text(json.dumps(result, indent=1, default=str) + "\n")
        for run in result["runs"]:
            pos = run["position_accuracy"]
            print(
                f"{run['name']:28s} above {pos.get('above', float('nan')):.3f}  straddle "
                f"{pos.get('straddle', float('nan')):.3f}  below {pos.get('below', float('nan')):.3f}  "
                f"{run['train_seconds'] / 60:.1f} min"
            )
        print(f"written to {out}")
        return 0

    return cli.parse_and_run(parser, argv, command)


if __name__ == "__main__":
    sys.exit(main())
