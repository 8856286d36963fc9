"""Bad input through the console, as a user types it: a non-zero exit, one line
``ltcl: error: ...`` that names the real key and the fix, no traceback, and no training step
(no checkpoint written anywhere under the log directory). Slow tier: one process per case.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import REPO_ROOT

BIN = Path(sys.executable).parent
TINY = ["trainer.max_epochs=2", "trainer.enable_progress_bar=false", "model.backbone.width=8"]
GUIDE = [
    "method=guide",
    "ood=embedded",
    "ood.source.num_crops=200",
    "method.sampler.warmup_epochs=1",
    "method.sampler.budget=50",
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
    # a peer's own official setting is not silently replaced by a typed optim key, nor mixed
    # batches given a ratio they do not read
    ("bcl-own-decay", "ltcl-train", ["method=bcl", "optim.schedule.weight_decay=1e-3"],
     "set method.weight_decay"),
    ("colt-mix-ratio", "ltcl-train", [*GUIDE[1:], "method=colt", "method.sampler.warmup_epochs=0",
                                      "ood.batch_ratio=1.0"], "ood.batch_ratio=null"),
    ("projector-norms", "ltcl-train", ["method=sdclr", "method.pruned_projector_norms=both"],
     "method.pruned_projector_norms"),
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
    # Hydra cannot compose: one line with Hydra's own hint (and a spelling suggestion)
    ("unknown-model", "ltcl-train", ["model=nonexistent"], "Available options in 'model': cifar_resnet10_w16, cifar_resnet18"),
    ("unknown-method", "ltcl-train", ["method=moco"], "Available options in 'method'"),
    ("unknown-logger", "ltcl-train", ["logger=tensorboard"], "Available options in 'logger'"),
    ("unknown-sampler", "ltcl-train", ["method=sdclr", "+method/sampler=x"], "method/sampler"),
    ("unknown-search", "ltcl-train", ["hparams_search=x"], "Available options in 'hparams_search'"),
    ("key-typo", "ltcl-train", ["trainer.max_epoch=3"], "Did you mean trainer.max_epochs?"),
    ("key-moved", "ltcl-train", ["data.imbalance_ratio=50"], "Did you mean data.split.imbalance_ratio?"),
    ("key-typo-pipeline", "ltcl-pipeline", ["stages.studnt.epochs=2"], "stages.student.epochs"),
    ("override-syntax", "ltcl-train", ["seed=[1"], "override_grammar"),
    ("missing-value", "ltcl-train", ["data=imagefolder_lt"], "data.num_classes=..."),
    ("eval-no-ckpt", "ltcl-eval", [], "ckpt_path=<run dir>/checkpoints/last.ckpt"),
    # types and ranges that failed deep in torch / Lightning, or trained without complaint
    ("batch-str", "ltcl-train", ["data.global_batch_size=abc"], "data.global_batch_size"),
    ("workers", "ltcl-train", ["data.num_workers=-1"], "data.num_workers"),
    ("lr", "ltcl-train", ["optim.schedule.base_lr=-0.1"], "optim.schedule.base_lr"),
    ("lr-huge", "ltcl-train", ["optim.schedule.base_lr=1e6"], "is above 100, beyond any contrastive recipe"),
    ("lr-absurd", "ltcl-train", ["optim.schedule.base_lr=1e30"], "the loss would be NaN after the first step"),
    ("weight-decay", "ltcl-train", ["optim.schedule.weight_decay=-1"], "optim.schedule.weight_decay"),
    ("warmup", "ltcl-train", ["optim.schedule.warmup_epochs=-1"], "optim.schedule.warmup_epochs"),
    ("final-lr", "ltcl-train", ["optim.schedule.final_lr_ratio=2"], "optim.schedule.final_lr_ratio"),
    ("reference-batch", "ltcl-train", ["optim.schedule.reference_batch_size=0"],
     "optim.schedule.reference_batch_size"),
    ("momentum", "ltcl-train", ["optim.optimizer.momentum=1.5"], "optim.optimizer.momentum"),
    ("precision", "ltcl-train", ["trainer.precision=banana"], "trainer.precision"),
    ("devices-0", "ltcl-train", ["trainer.devices=0"], "trainer.devices"),
    ("nodes-0", "ltcl-train", ["trainer.num_nodes=0"], "trainer.num_nodes"),
    ("no-batches", "ltcl-train", ["trainer.limit_train_batches=0"], "trainer.limit_train_batches"),
    ("width", "ltcl-train", ["model.backbone.width=0"], "model.backbone.width"),
    ("out-dim", "ltcl-train", ["model.projector.out_dim=0"], "model.projector.out_dim"),
    ("ratio-str", "ltcl-train", ["data.split.imbalance_ratio=abc"], "data.split.imbalance_ratio"),
    ("seed-str", "ltcl-train", ["seed=abc"], "seed must be an integer"),
    ("val-per-class", "ltcl-train", ["data.split.val_per_class=100000"], "val_per_class"),
    ("n-max", "ltcl-train", ["data.split.n_max=0"], "data.split.n_max"),
    ("class-order", "ltcl-train", ["data.split.class_order=x"], "class_order 'x' is unknown"),
    ("num-classes", "ltcl-train", ["data.num_classes=2"], "data.num_classes"),
    ("crop-scale", "ltcl-train", ["+data.augment.crop_scale=[1.5,0.2]"], "crop_scale"),
    ("epochs-negative", "ltcl-train", ["trainer.max_epochs=-5"], "trainer.max_epochs"),
    # evaluation settings: checked before training, not after it
    ("probe-epochs", "ltcl-train", ["eval.linear_b.epochs=0"], "eval.linear_b.epochs"),
    ("probe-batch", "ltcl-train", ["eval.linear_b.batch_size=0"], "eval.linear_b.batch_size"),
    ("probe-lr-order", "ltcl-train", ["eval.linear_b.final_lr=1"], "eval.linear_b.final_lr"),
    ("probe-a-key", "ltcl-train", ["+eval.linear_a.lrr=3"], "eval.linear_a.lrr"),
    ("probe-a-milestones", "ltcl-train", ["eval.linear_a.milestones=[20,10]"], "eval.linear_a.milestones"),
    ("few-shot-subset", "ltcl-train", ["eval.few_shot.subsets=[10shot]"], "eval.few_shot.subsets"),
    ("few-shot-probe", "ltcl-train", ["eval.few_shot.probe.epochs=0"], "eval.few_shot.probe.epochs"),
    ("knn-k", "ltcl-train", ["eval.knn.k=0"], "eval.knn.k"),
    ("knn-temperature", "ltcl-train", ["eval.knn.temperature=0"], "eval.knn.temperature"),
    ("protocols-string", "ltcl-train", ["eval.protocols=knn"], "eval.protocols=[knn,linear_b]"),
    ("projection", "ltcl-train", ["eval.embedding_projection=umap"], "eval.embedding_projection"),
    ("eval-protocol", "ltcl-eval", ["ckpt_path=/nonexistent.ckpt", "eval.protocols=[foo]"], "eval.protocols"),
    # the methods' own settings
    ("beta", "ltcl-train", [*GUIDE, "method.beta=-1"], "method.beta"),
    ("beta-normalization", "ltcl-train", [*GUIDE, "method.beta_normalization=x"], "method.beta_normalization"),
    ("lambda-dd", "ltcl-train", [*GUIDE, "method.lambda_dd=-1"], "method.lambda_dd"),
    ("lambda-dd-str", "ltcl-train", [*GUIDE, "method.lambda_dd=abc"], "method.lambda_dd"),
    ("kmeans-iterations", "ltcl-train", [*GUIDE, "method.sampler.kmeans_iterations=0"],
     "method.sampler.kmeans_iterations"),
    ("colt-temperature", "ltcl-train", [*GUIDE, "method.sampler.colt_temperature=0"],
     "method.sampler.colt_temperature"),
    ("warmup-negative", "ltcl-train", [*GUIDE, "method.sampler.warmup_epochs=-1"], "method.sampler.warmup_epochs"),
    ("candidates", "ltcl-train", [*GUIDE, "ood.candidates_per_round=-5"], "ood.candidates_per_round"),
    ("delta-str", "ltcl-train", ["method=student", "method.guide_checkpoint={truncated}", "method.delta=abc"],
     "delta"),
    ("delta-below", "ltcl-train", ["method=student", "method.guide_checkpoint={truncated}", "method.delta=-2"],
     "delta must be >= -1"),  # and above 1 trains with guided positives off (docs/recipes/methods.md)
    ("compare-epochs", "ltcl-pipeline", ["stages.compare_epochs=0"], "stages.compare_epochs"),
    ("simclr-retired", "ltcl-pipeline", ["stages.simclr.enabled=true"], "stages.compare=[simclr]"),
    ("report-missing", "ltcl-report", ["/nonexistent/runs"], "does not exist"),
    # a hint never leads to a silently ignored setting; a split never trains on test images
    ("append-unread", "ltcl-train", ["method=guide", "ood=embedded", "+sampler.warmup_epochs=0",
                                     "+sampler.budget=100"], "did you mean method.sampler.warmup_epochs=0"),
    ("append-typo", "ltcl-train", [*GUIDE, "+method.sampler.budgett=100"],
     "did you mean method.sampler.budget=100"),
    ("append-schedule", "ltcl-train", ["+optim.schedule.warmup_epoch=3"], "optim.schedule.warmup_epochs=3"),
    ("hint-own-config", "ltcl-train", ["method=guide", "ood=embedded", "sampler.warmup_epochs=0"],
     "no such key. Did you mean method.sampler.warmup_epochs?"),
    # names a key the user's config has, and says what to do instead of tracing back
    ("folder-missing", "ltcl-train", ["data=cifar10_lt_folder", "paths.data_dir=/nonexistent",
                                      "paths.shared_data_dir=/nonexistent"], "data.train_source.root"),
    ("arrays-missing", "ltcl-train", ["data=cifar10_lt", "paths.data_dir=/nonexistent"],
     "data.train_source.root at the folder that holds cifar-10-batches-py/"),
    ("pool-missing", "ltcl-train", [*GUIDE[:1], "ood=tinyimagenet", "paths.data_dir=/nonexistent",
                                    "paths.shared_data_dir=/nonexistent"], "ood.source.root"),
    ("image-size", "ltcl-train", ["data=imagefolder_lt", "data.root=/nonexistent", "data.num_classes=3",
                                  "data.train_source.image_size=0"], "data.train_source.image_size"),
    ("search-brings-method", "ltcl-train", ["-m", "hparams_search=stage1_few", "hydra.sweeper.n_trials=1"],
     "needs an OOD pool: add ood="),
    ("slurm-no-sbatch", "ltcl-train", ["-m", "hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
     "sbatch and srun are not on PATH"),
    ("log-dir-not-writable", "ltcl-train", ["paths.log_dir=/sys/ltcl-logs"], "point LTCL_LOG_DIR"),
    ("non-ascii", "ltcl-train", ["data=imagefolder_lt", "data.root=/data/größe", "data.num_classes=3"],
     "must be quoted: 'data.root=\"/data/größe\"'"),
    ("wandb-offline-net", "ltcl-train", ["logger=wandb", "{wandb_online}"], "logger=wandb"),
    ("index-file-test-leak", "ltcl-train", ["data.split.kind=index_file", "+data.split.index_file={index_all}"],
     "of the 300 test images"),
]  # fmt: skip


@pytest.fixture(scope="module")
def earlier_runs(tmp_path_factory):
    """A log directory holding a finished run, as a user's would before the bad command."""
    logs = tmp_path_factory.mktemp("earlier") / "outputs"
    env = {**os.environ, "WANDB_MODE": "disabled", "LTCL_LOG_DIR": str(logs)}
    subprocess.run(
        [str(BIN / "ltcl-train"), *TINY, "trainer.max_epochs=1", "eval.protocols=[knn]"],
        cwd=REPO_ROOT, env=env, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return logs


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and mtime (but the run lock's, which any command may take)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file() and p.name != ".lock"
    }


@pytest.mark.slow
@pytest.mark.parametrize(("case", "program", "args", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line_before_training(
    tmp_path, earlier_runs, case, program, args, expected
):
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(b"PK\x03\x04 not a whole checkpoint")
    index_all = tmp_path / "index_all.npy"  # every other image of the source, test ones too
    np.save(index_all, np.arange(0, 1000, 2))
    args = [
        a.replace("{truncated}", str(truncated)).replace("{index_all}", str(index_all))
        for a in args
    ]
    logs = tmp_path / "outputs"
    shutil.copytree(earlier_runs, logs)
    before = _snapshot(logs)
    env = {**os.environ, "WANDB_MODE": "disabled", "LTCL_LOG_DIR": str(logs)}
    env.pop("HYDRA_FULL_ERROR", None)
    if "{wandb_online}" in args:  # online, with a key, and a server that cannot be reached
        args = [a for a in args if a != "{wandb_online}"]
        env.pop("WANDB_MODE")
        env.update(WANDB_API_KEY="0" * 40, WANDB_BASE_URL="http://127.0.0.1:9")
    tiny = [] if program in ("ltcl-eval", "ltcl-report") else TINY  # these train nothing
    flags = [a for a in args if a.startswith("-")]  # -m before the overrides, as typed
    done = subprocess.run(
        [str(BIN / program), *flags, *tiny, *[a for a in args if a not in flags]],
        cwd=REPO_ROOT, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    prefix = "ltcl-report" if program == "ltcl-report" else "ltcl"  # the report is no Hydra app
    assert lines and lines[-1].startswith(f"{prefix}: error: "), done.stderr[-2000:]
    assert expected in lines[-1]
    assert "Traceback" not in done.stderr
    # no training step ran, and nothing the earlier run wrote changed
    after = _snapshot(logs)
    assert not [name for name in set(after) - set(before) if name.endswith(".ckpt")]
    assert {name: after.get(name) for name in before} == before


# The same ltcl-train cases in-process, fast enough for `make test`: the error is raised before
# any training step (no checkpoint) and names the key.
# (Hydra's own composition errors happen before ltcl's code runs: console only.)
COMPOSITION = {
    "unknown-model",
    "unknown-method",
    "unknown-logger",
    "unknown-sampler",
    "unknown-search",
    "key-typo",
    "key-moved",
    "override-syntax",
    "missing-value",
    "bcl-own-decay",
}  # fmt: skip  (the last reads the typed overrides)
# An appended key is refused where Hydra's overrides are known (the console); the leak case
# needs its index file.
CONSOLE_ONLY = {
    "append-unread",
    "append-typo",
    "append-schedule",
    "hint-own-config",
    "index-file-test-leak",
    "search-brings-method",
    "slurm-no-sbatch",
    "log-dir-not-writable",
    "non-ascii",
    "wandb-offline-net",
    "folder-missing",
    "arrays-missing",
    "pool-missing",
}  # fmt: skip  (sweeps, Hydra's run directory, its lexer, the environment: console only)
FAST = [
    c
    for c in CASES
    if c[1] == "ltcl-train"
    and "{truncated}" not in " ".join(c[2])
    and c[0] not in COMPOSITION | CONSOLE_ONLY
]


@pytest.mark.parametrize(("case", "program", "args", "expected"), FAST, ids=[c[0] for c in FAST])
def test_bad_input_fails_before_training_in_process(tmp_path, case, program, args, expected):
    from ltcl.cli.train import train
    from ltcl.errors import LtclError
    from tests.helpers import compose_train

    with pytest.raises(LtclError) as error:
        train(compose_train(tmp_path, [*TINY, *args]))
    assert expected in str(error.value)
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.slow
def test_a_truncated_last_ckpt_on_restart_names_the_file_and_the_way_out(tmp_path, earlier_runs):
    """The same command again, after its last.ckpt was cut short (a full disk, a copy that
    stopped): one line naming the file and ckpt_path=null, and the file left as it was."""
    logs = tmp_path / "outputs"
    shutil.copytree(earlier_runs, logs)
    (last,) = logs.rglob("last.ckpt")
    last.write_bytes(last.read_bytes()[:1000])
    env = {**os.environ, "WANDB_MODE": "disabled", "LTCL_LOG_DIR": str(logs)}
    env.pop("HYDRA_FULL_ERROR", None)
    done = subprocess.run(
        [str(BIN / "ltcl-train"), *TINY, "trainer.max_epochs=1", "eval.protocols=[knn]"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("ltcl: error: ") and str(last) in line and "ckpt_path=null" in line
    assert len(last.read_bytes()) == 1000
