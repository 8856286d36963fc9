"""Print an Optuna sweep's best parameters as Hydra overrides, one per line.

python benchmarks/campaign/best_params.py <sweep dir>/optimization_results.yaml [--only PREFIX ...]
"""

import argparse

from legacy_keys import current
from omegaconf import OmegaConf

parser = argparse.ArgumentParser()
parser.add_argument("results")
parser.add_argument("--only", nargs="*", default=None, help="keep keys with these prefixes")
args = parser.parse_args()
best = OmegaConf.load(args.results)
for key, value in best.best_params.items():
    key = current(key)
    if args.only is None or any(key.startswith(p) for p in args.only):
        print(f"{key}={'null' if value is None else value}")
