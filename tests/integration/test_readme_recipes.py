"""The README's sweep, Optuna and SLURM recipes, run as written (slow tier).

Each command of the README section "Sweeps, Optuna searches and SLURM clusters" runs in a
subprocess with tiny-budget overrides appended. SLURM commands go to the fake sbatch
(tests/fake_slurm), which records the submission script without running the job (they ask
for GPUs this machine does not have); the test checks the script and stops the launcher.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import BIN, REPO_ROOT, TINY_GUIDE, TINY_RUN, console_env, run_console

SECTION = "### Sweeps, Optuna searches and SLURM clusters"
TINY = TINY_RUN


def readme_lines(heading: str) -> list[str]:
    """The lines of the first bash block after `heading` in the README, continuations joined
    and comments dropped: the commands as a user would type them."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = (line.split(" #")[0].strip() for line in block.replace("\\\n", " ").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def assert_recorded(args: list[str], results: Path) -> None:
    """Every method.* override of the command is the value the run recorded in its config."""
    recorded = json.loads(results.read_text())["config"]["method"]
    for arg in args:
        if arg.startswith("method."):
            key, value = arg.split("=", 1)
            stored = recorded[key.split(".", 1)[1]]
            assert (str(stored).lower() if isinstance(stored, bool) else str(stored)) == value


def readme_commands() -> list[list[str]]:
    return [shlex.split(line) for line in readme_lines(SECTION)]


COMMANDS = readme_commands()


def test_the_section_has_the_recipes_users_need():
    text = " ".join(" ".join(c) for c in COMMANDS)
    assert "hydra/launcher=slurm" in text and "hparams_search=" in text
    assert any(c[0] == "ltcl-pipeline" for c in COMMANDS)
    assert any(c[0] == "ltcl-report" for c in COMMANDS)


def env_for(tmp_path: Path, **extra) -> dict:
    return console_env(tmp_path, **extra)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(COMMANDS)), ids=[" ".join(c[:3]) for c in COMMANDS])
def test_readme_recipe_runs_as_written(tmp_path, index):
    command = COMMANDS[index]
    program = str(BIN / command[0])
    if command[0] == "ltcl-report":  # reports a sweep it first runs, as the README's order does
        sweep = ["-m", "data=embedded", "seed=0,1", *TINY]
        done = subprocess.run(
            [str(BIN / "ltcl-pipeline"), *sweep, "method.sampler.warmup_epochs=5"],
            cwd=tmp_path,
            env=env_for(tmp_path),
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        args = [a.replace("outputs/", f"{tmp_path}/outputs/") for a in command[1:]]
        done = run_console(command[0], args, tmp_path, cwd=tmp_path, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "pipeline" in done.stdout and "student" in done.stdout
        return
    args = [*command[1:], *TINY]
    if "hparams_search=stage1_few" in command:
        args.append("hydra.sweeper.n_trials=2")
    if "hydra/launcher=slurm" in command:
        proc = subprocess.Popen(
            [program, *args],
            cwd=tmp_path,
            env=env_for(tmp_path, FAKE_SLURM_RUN="0"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 300
            scripts: list[Path] = []
            while not scripts and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.3)
                scripts = sorted((tmp_path / "slurm").glob("sbatch_*.sh"))
            assert scripts, (
                f"nothing submitted: {proc.stderr.read()[-3000:] if proc.poll() is not None else ''}"
            )
            script = scripts[0].read_text()
        finally:
            proc.kill()
            proc.wait()
        assert "#SBATCH --partition=gpu" in script
        assert "submitit.core._submit" in script
        if "trainer.num_nodes=2" in command:
            assert "#SBATCH --nodes=2" in script and "#SBATCH --ntasks-per-node=4" in script
        if any(a.startswith("data.split.seed=0,1,2,3,4") for a in command):
            assert "#SBATCH --array=0-4" in script
        return
    done = run_console(command[0], args, tmp_path, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in (tmp_path / "outputs").rglob("results.json")]
    sweep_size = 3 if "method.temperature=0.1,0.2,0.5" in command else 2
    assert len(results) == sweep_size
    assert len({r["run_hash"] for r in results}) == sweep_size


# The peers' recipes: every ltcl-train line of the README's "Peers" section, with what this
# machine lacks swapped for tiny stand-ins (the embedded data and pool, the small net, the CPU)
# and "..." dropped; the method settings are kept exactly as written.
PEERS_SECTION = "### Peers: SDCLR, BCL, COLT"
STAND_INS = {
    "data": "data=embedded",
    "model": "model=small",
    "trainer": "trainer=cpu",
    "ood": "ood=embedded",
}
TINY_POOL = [
    "ood.source.num_crops=200",
    "method.sampler.warmup_epochs=0",
    "method.sampler.budget=100",
    "method.sampler.kmeans_iterations=5",
]


def peer_commands() -> list[list[str]]:
    commands = []
    for line in readme_lines(PEERS_SECTION):
        if not line.startswith("ltcl-train"):
            continue
        args = []
        for arg in shlex.split(line)[1:]:
            key = arg.split("=")[0]
            if arg == "..." or key == "trainer.max_epochs":
                continue
            args.append(STAND_INS.get(key, arg))
        commands.append(args)
    return commands


PEERS = peer_commands()


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(PEERS)), ids=[" ".join(c[:2]) for c in PEERS])
def test_readme_peer_recipe_runs(tmp_path, index):
    args = PEERS[index]
    samples_ood = any(a in ("method=colt", "+method/sampler=colt") for a in args)
    if samples_ood and "ood=embedded" not in args:
        args = [*args, "ood=embedded"]
    extra = TINY_POOL if samples_ood else []
    done = run_console("ltcl-train", [*args, *extra, *TINY, "eval.plots=false"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    results = list((tmp_path / "outputs").rglob("results.json"))
    assert len(results) == 1
    assert_recorded(args, results[0])


# The student's recipes: every "ltcl-train method=student ..." line of the README's stage-2
# block (the switches and variants), with "..." standing for the demo data and a tiny guide.
STUDENT_SECTION = "### Stage 2, the guided student"


def student_commands() -> list[list[str]]:
    return [
        [a for a in shlex.split(line)[1:] if a != "..."]
        for line in readme_lines(STUDENT_SECTION)
        if line.startswith("ltcl-train method=student ...")
    ]


STUDENTS = student_commands()


def test_the_student_block_lists_every_variant():
    text = " ".join(" ".join(c) for c in STUDENTS)
    for switch in ("method.density_k=", "method.positive_bank=", "method.distillation=backbone",
                   "method.repulsion_weights=false", "method.k_pos=0", "method.init=scratch"):  # fmt: skip
        assert switch in text


@pytest.fixture(scope="module")
def tiny_guide(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("guide")
    guide = ["data=embedded", *TINY_GUIDE, "method.sampler.budget=100", *TINY]
    done = run_console("ltcl-train", guide, where, cwd=where)
    assert done.returncode == 0, done.stderr[-2000:]
    return next((where / "outputs").rglob("last.ckpt"))


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(STUDENTS)), ids=[" ".join(c[1:3]) for c in STUDENTS])
def test_readme_student_recipe_runs(tmp_path, tiny_guide, index):
    args = STUDENTS[index]
    done = run_console(
        "ltcl-train",
        [*args, "data=embedded", f"method.guide_checkpoint={tiny_guide}", *TINY],
        tmp_path,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = list((tmp_path / "outputs").rglob("results.json"))
    assert len(results) == 1
    assert_recorded(args, results[0])


@pytest.mark.parametrize(
    "preset, student_k_pos, student_lambda_dl",
    [("method_tuned_medium_cpu", 5, 1.0), ("method_tuned_medium_plain_student_cpu", 0, 0.0)],
)
def test_readme_medium_preset_composes_as_written(
    tmp_path, preset, student_k_pos, student_lambda_dl
):
    """The README's medium-tier preset lines (section "The whole method") compose through the
    ltcl-pipeline console command: the re-tuned stage 1 on the medium model, with the method's
    student or the plain one (`--cfg job` prints the composed config without training; the
    line's data paths need the shared copy)."""
    line = next(
        cmd
        for cmd in readme_lines("### The whole method: `ltcl-pipeline`")
        if f"experiment={preset} " in cmd
    )
    args = shlex.split(line)
    assert args[0] == "ltcl-pipeline"
    out = subprocess.run(
        [str(BIN / args[0]), *args[1:], "--cfg", "job"],
        capture_output=True,
        text=True,
        env=console_env(tmp_path),
        timeout=120,
        check=True,
    ).stdout
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(out)
    assert cfg.method.beta == 0.0 and cfg.method.domain_loss == "supcon"
    assert cfg.model.backbone.width == 16 and cfg.stages.total_epochs == 30
    student = cfg.stages.student.method
    assert student.k_pos == student_k_pos and student.lambda_dl == student_lambda_dl
    assert student.repulsion_weights is (student_k_pos > 0)
    assert cfg.stages.one_schedule is True
    # the OOD candidate draw every campaign run used, so that the line reproduces them
    assert cfg.ood.candidates_per_round == 20000


# The campaign's recipes: the search line runs (tiny, slow tier); the script lines name scripts
# that exist, parse, and read every variable the line sets.
CAMPAIGN_SECTION = "### The effectiveness campaign: tune on validation, test on unseen splits"
CAMPAIGN = readme_lines(CAMPAIGN_SECTION)


def test_campaign_script_lines_set_only_variables_their_scripts_read():
    scripts = [line for line in CAMPAIGN if " bash benchmarks/" in f" {line}"]
    assert len(scripts) >= 4
    for line in scripts:
        words = shlex.split(line)
        at = words.index("bash")
        script = REPO_ROOT / words[at + 1]
        assert script.is_file(), line
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, script
        text = script.read_text()
        if "campaign_cifar10_lt_cpu.sh" in text and script.name != "campaign_cifar10_lt_cpu.sh":
            text += (REPO_ROOT / "benchmarks/campaign/campaign_cifar10_lt_cpu.sh").read_text()
        for word in words[:at]:
            assert "=" in word, f"{line}: {word!r} is not a VAR=value before bash"
            name = word.split("=", 1)[0]
            assert re.search(rf"\${{?{name}\b", text), f"{script.name} does not read {name}"
    python = [line for line in CAMPAIGN if line.startswith("python benchmarks/")]
    assert python and all((REPO_ROOT / shlex.split(line)[1]).is_file() for line in python)


@pytest.mark.slow
def test_campaign_search_runs_as_written_and_optimises_validation(tmp_path):
    """The README's search line, on the embedded data with a tiny budget and 2 trials: each
    trial trains its own pipeline, and the best value Optuna reports is the best student's
    *validation* kNN All, not its test number."""
    line = next(cmd for cmd in CAMPAIGN if "hparams_search=method_val" in cmd)
    swap = {"data=cifar10_lt_folder": "data=embedded", "ood=tinyimagenet": "ood=embedded",
            "stages.total_epochs=16": "stages.total_epochs=2"}  # fmt: skip
    args = [swap.get(a, a) for a in shlex.split(line)[1:]]
    assert set(swap.values()) <= set(args), "the README's search line changed: update the swap"
    tiny = [*TINY[1:], "hydra.sweeper.n_trials=2", "ood.source.num_crops=200",
            "method.sampler.kmeans_iterations=5", "method.sampler.refine_iterations=5"]  # fmt: skip
    done = run_console("ltcl-pipeline", [*args, *tiny], tmp_path, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "method_val.db").is_file()  # the study resumes from here
    multirun = tmp_path / "outputs" / "pipeline" / "multirun"
    students = [json.loads(p.read_text()) for p in multirun.glob("*/student/results.json")]
    assert len(students) == 2 and len({s["run_hash"] for s in students}) == 2
    best = yaml_load(multirun / "optimization_results.yaml")["best_value"]
    assert best == max(s["val_metrics"]["knn"]["all"] for s in students)
    assert best != max(s["metrics"]["knn"]["all"] for s in students)


def yaml_load(path: Path) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(path))
