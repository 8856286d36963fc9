"""Bad input through the console, as a user types it: a non-zero exit, one line
``ltcl: error: ...`` that names the real key and the fix, no traceback, and no training step
(no checkpoint written anywhere under the log directory). Slow tier: one process per case.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

BIN = Path(sys.executable).parent
TINY = ["trainer.max_epochs=2", "trainer.enable_progress_bar=false", "model.backbone.width=8"]
GUIDE = [
    "method=guide",
    "ood=embedded",
    "ood.source.num_crops=200",
    "method.sampler.warmup_epochs=1",
]

# (id, command, arguments, text the error line must contain)
CASES = [
    ("temperature", "ltcl-train", ["method.temperature=0"], "method.temperature"),
    ("protocol", "ltcl-train", ["eval.protocols=[knnn]"], "eval.protocols"),
    ("seed", "ltcl-train", ["seed=-1"], "seed must be an integer >= 0"),
    ("split-seed", "ltcl-train", ["data.split.seed=-1"], "data.split.seed"),
    ("batch-1", "ltcl-train", ["data.global_batch_size=1"], "data.global_batch_size"),
    ("ratio-huge", "ltcl-train", ["data.split.imbalance_ratio=1e9"], "data.split.imbalance_ratio"),
    ("ratio-low", "ltcl-train", ["data.split.imbalance_ratio=0.5"], "data.split.imbalance_ratio"),
    ("epochs-0", "ltcl-train", ["trainer.max_epochs=0"], "trainer.max_epochs"),
    ("budget", "ltcl-train", [*GUIDE, "method.sampler.budget=100000"], "method.sampler.budget"),
    ("clusters", "ltcl-train", [*GUIDE, "method.sampler.num_clusters=100000"], "method.sampler.num_clusters"),
    ("dof", "ltcl-train", [*GUIDE, "method.sampler.dof=0"], "method.sampler.dof"),
    ("gamma", "ltcl-train", [*GUIDE, "method.sampler.gamma=-1"], "method.sampler.gamma"),
    ("guide-no-pool", "ltcl-train", ["method=guide"], "ood="),
    ("student-no-guide", "ltcl-train", ["method=student"], "method.guide_checkpoint"),
    ("cpu-procs", "ltcl-train", ["trainer.devices=64", "data.global_batch_size=128"],
     "trainer.devices=64"),
    ("scaling", "ltcl-train", ["optim.schedule.scaling=cubic"], "optim.schedule.scaling"),
    ("missing-ckpt", "ltcl-train", ["ckpt_path=/nonexistent/x.ckpt"], "ckpt_path=null"),
    ("truncated-ckpt", "ltcl-train", ["ckpt_path={truncated}"], "ckpt_path=null"),
    ("eval-truncated", "ltcl-eval", ["ckpt_path={truncated}"], "cannot be read"),
    ("guide-truncated", "ltcl-train", ["method=student", "method.guide_checkpoint={truncated}"],
     "cannot be read"),
    ("pipeline-no-pool", "ltcl-pipeline", ["ood=null"], "ood=tinyimagenet"),
    ("bad-batch-ratio", "ltcl-train", [*GUIDE, "ood.batch_ratio=0"], "ood.batch_ratio"),
    # the peers (issue "peers") and the sampler's switches
    ("prune-percent", "ltcl-train", ["method=sdclr", "method.prune_percent=1.0"], "method.prune_percent"),
    ("bcl-variant", "ltcl-train", ["method=bcl", "method.variant=X"], "method.variant"),
    ("bcl-ema", "ltcl-train", ["method=bcl", "method.loss_ema=1.0"], "method.loss_ema"),
    ("bcl-temperature", "ltcl-train", ["method=bcl", "method.temperature=-1"], "method.temperature"),
    ("colt-no-pool", "ltcl-train", ["method=colt"], "ood=tinyimagenet"),
    ("plus-colt-no-pool", "ltcl-train", ["method=sdclr", "+method/sampler=colt"], "ood=tinyimagenet"),
    ("strategy", "ltcl-train", [*GUIDE, "method.sampler.strategy=best"], "method.sampler.strategy"),
    ("tail-score", "ltcl-train", [*GUIDE, "method.sampler.tail_score=x"], "method.sampler.tail_score"),
    ("remainder", "ltcl-train", [*GUIDE, "method.sampler.budget_remainder=first"],
     "method.sampler.budget_remainder"),
    ("kmeans-inits", "ltcl-train", [*GUIDE, "method.sampler.kmeans_inits=0"], "method.sampler.kmeans_inits"),
    ("interval-0", "ltcl-train", [*GUIDE, "method.sampler.interval=0"], "method.sampler.interval"),
    ("domain-loss", "ltcl-train", [*GUIDE, "method.domain_loss=mse"], "domain_loss"),
    ("augment-on", "ltcl-train", ["data.augment_on=gpu"], "data.augment_on"),
    ("group-rule", "ltcl-train", ["data.group_rule=quarters"], "data.group_rule"),
    ("split-kind", "ltcl-train", ["data.split.kind=random"], "data.split.kind"),
    ("batch-divisible", "ltcl-train", ["trainer=ddp_cpu", "trainer.devices=2", "data.global_batch_size=33"],
     "data.global_batch_size"),
    ("unknown-peer", "ltcl-pipeline", ["stages.compare=[moco]"], "stages.compare"),
    ("total-epochs", "ltcl-pipeline", ["stages.total_epochs=1"], "stages.total_epochs"),
    ("guide-share", "ltcl-pipeline", ["stages.total_epochs=10", "stages.guide_share=1.5"], "stages.guide_share"),
    ("eval-missing-ckpt", "ltcl-eval", ["ckpt_path=/nonexistent/last.ckpt"], "does not exist"),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("case", "program", "args", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line_before_training(tmp_path, case, program, args, expected):
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(b"PK\x03\x04 not a whole checkpoint")
    args = [a.replace("{truncated}", str(truncated)) for a in args]
    env = {**os.environ, "WANDB_MODE": "disabled", "LTCL_LOG_DIR": str(tmp_path / "outputs")}
    env.pop("HYDRA_FULL_ERROR", None)
    tiny = [] if program == "ltcl-eval" else TINY  # ltcl-eval trains nothing
    done = subprocess.run(
        [str(BIN / program), *tiny, *args], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("ltcl: error: "), done.stderr[-2000:]
    assert expected in lines[-1]
    assert "Traceback" not in done.stderr
    assert not list((tmp_path / "outputs").rglob("*.ckpt"))  # no training step ran


# The same ltcl-train cases in-process, fast enough for `make test`: the error is raised before
# any training step (no checkpoint) and names the key.
FAST = [c for c in CASES if c[1] == "ltcl-train" and "{truncated}" not in " ".join(c[2])]


@pytest.mark.parametrize(("case", "program", "args", "expected"), FAST, ids=[c[0] for c in FAST])
def test_bad_input_fails_before_training_in_process(tmp_path, case, program, args, expected):
    from ltcl.errors import LtclError
    from ltcl.train import train
    from tests.helpers import compose_train

    with pytest.raises(LtclError) as error:
        train(compose_train(tmp_path, [*TINY, *args]))
    assert expected in str(error.value)
    assert not list(tmp_path.rglob("*.ckpt"))
