"""Print an Optuna sweep's best parameters as Hydra overrides, one per line.

python benchmarks/best_params.py <sweep dir>/optimization_results.yaml [--only PREFIX ...]
"""

import argparse
import re

from omegaconf import OmegaConf

parser = argparse.ArgumentParser()
parser.add_argument("results")
parser.add_argument("--only", nargs="*", default=None, help="keep keys with these prefixes")
args = parser.parse_args()
# Studies recorded before the configs moved a method's settings into its method file.
LEGACY = [
    (r"^loss\.(beta_normalization|beta|lambda_dd|domain_loss)$", r"method.\1"),
    (
        r"^loss\.(delta|k_pos|lambda_dl|distillation|attraction_weights|repulsion_weights)$",
        r"stages.student.method.\1",
    ),
    (r"^sampler\.", "method.sampler."),
]


def current(key: str) -> str:
    for pattern, replacement in LEGACY:
        key = re.sub(pattern, replacement, key)
    return key


best = OmegaConf.load(args.results)
for key, value in best.best_params.items():
    key = current(key)
    if args.only is None or any(key.startswith(p) for p in args.only):
        print(f"{key}={'null' if value is None else value}")
