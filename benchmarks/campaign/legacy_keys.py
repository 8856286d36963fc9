"""Study keys recorded before a method's settings moved into its method file, and their names now.

Shared by best_params.py (reading an old sweep's best parameters) and migrate_study_keys.py
(renaming the parameters of an old Optuna study so that new trials continue it).
"""

import re

LEGACY = [
    (r"^loss\.(beta_normalization|beta|lambda_dd|domain_loss)$", r"method.\1"),
    (
        r"^loss\.(delta|k_pos|lambda_dl|distillation|attraction_weights|repulsion_weights)$",
        r"stages.student.method.\1",
    ),
    (r"^sampler\.", "method.sampler."),
]


def current(key: str) -> str:
    """The override key that `key` (possibly a pre-refactor name) is called today."""
    for pattern, replacement in LEGACY:
        key = re.sub(pattern, replacement, key)
    return key
