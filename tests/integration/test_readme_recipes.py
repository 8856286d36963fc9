"""The commands that the README and the docs pages show, run or composed as written.

Default tier: every command of every bash block in README.md and docs/ is accounted for:
each `ltcl-train` / `ltcl-pipeline` / `ltcl-eval` line composes through Hydra with its
overrides (a typo in a key or a config option fails), each `ltcl-report` line parses, each
`make` target exists, and each script a line runs exists and parses. A line of any other kind
fails the test until a test covers it.

Slow tier: the README's quick start, and the docs' sweep / Optuna / SLURM, peer, student and
campaign recipes, run in a subprocess with what this machine lacks swapped for tiny stand-ins
(the embedded data and OOD pool, the small net, the CPU) and tiny-budget overrides appended.
SLURM commands go to the fake sbatch (tests/fake_slurm), which records the submission script
and, unless told not to, runs the job's array tasks locally.
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

TINY = TINY_RUN
README = "README.md"
SWEEPS_PAGE = "docs/recipes/sweeps-slurm.md"
METHODS_PAGE = "docs/recipes/methods.md"
PIPELINE_PAGE = "docs/recipes/pipeline.md"
RESULTS_PAGE = "docs/results.md"
# The research record is a log of what ran (its commands are the scripts' own lines); the
# pages a user reads as instructions are the README and every other page of docs/.
RECORD = "docs/research_record.md"
SECTION = "## Sweeps, Optuna searches and SLURM clusters"


def command_lines(block: str) -> list[str]:
    """A bash block's lines as a user would type them: continuations joined, comments dropped."""
    lines = (line.split(" #")[0].strip() for line in block.replace("\\\n", " ").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def readme_lines(heading: str, page: str = README) -> list[str]:
    """The lines of the first bash block after `heading` in `page` (the README by default)."""
    text = (REPO_ROOT / page).read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    return command_lines(re.search(r"```bash\n(.*?)```", section, re.S).group(1))


def user_pages() -> list[str]:
    docs = sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "docs").rglob("*.md"))
    return [README, *(p for p in docs if p != RECORD)]


def every_command() -> list[tuple[str, str]]:
    """(page, line) for every line of every bash block of the pages a user reads."""
    found = []
    for page in user_pages():
        text = (REPO_ROOT / page).read_text(encoding="utf-8")
        for block in re.findall(r"```bash\n(.*?)```", text, re.S):
            for line in command_lines(block):
                found += [(page, part.strip()) for part in line.split(" && ")]
    return found


def assert_recorded(args: list[str], results: Path) -> None:
    """Every method.* override of the command is the value the run recorded in its config."""
    recorded = json.loads(results.read_text())["config"]["method"]
    for arg in args:
        if arg.startswith("method."):
            key, value = arg.split("=", 1)
            stored = recorded[key.split(".", 1)[1]]
            assert (str(stored).lower() if isinstance(stored, bool) else str(stored)) == value


def readme_commands() -> list[list[str]]:
    return [shlex.split(line) for line in readme_lines(SECTION, SWEEPS_PAGE)]


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


# The peers' recipes: every ltcl-train line of the methods page's peers section, with what
# this machine lacks swapped for tiny stand-ins (the embedded data and pool, the small net, the
# CPU) and "..." dropped; the method settings are kept exactly as written.
PEERS_SECTION = "## SimCLR and the peers: SDCLR, BCL, COLT"
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
    for line in readme_lines(PEERS_SECTION, METHODS_PAGE):
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
    samples_ood = any(
        a in ("method=colt", "+method/sampler=colt", "+method/sampler=colt_official") for a in args
    )
    if samples_ood and "ood=embedded" not in args:
        args = [*args, "ood=embedded"]
    extra = TINY_POOL if samples_ood else []
    done = run_console("ltcl-train", [*args, *extra, *TINY, "eval.plots=false"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    results = list((tmp_path / "outputs").rglob("results.json"))
    assert len(results) == 1
    assert_recorded(args, results[0])


# The student's recipes: every "ltcl-train method=student ..." line of the methods page's
# stage-2 block (the switches and variants), with "..." standing for the demo data and a tiny
# guide.
STUDENT_SECTION = "## Stage 2, the guided student"


def student_commands() -> list[list[str]]:
    return [
        [a for a in shlex.split(line)[1:] if a != "..."]
        for line in readme_lines(STUDENT_SECTION, METHODS_PAGE)
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
    "page, heading, preset, student_k_pos, student_lambda_dl",
    [
        (PIPELINE_PAGE, "## Presets", "method_tuned_medium_cpu", 5, 1.0),
        (README, "### A CPU", "method_tuned_medium_plain_student_cpu", 0, 0.0),
    ],
)
@pytest.mark.slow
def test_medium_preset_lines_compose_as_written(
    tmp_path, page, heading, preset, student_k_pos, student_lambda_dl
):
    """The medium-tier preset lines (the pipeline page's presets, the README's CPU quick start)
    compose through the ltcl-pipeline console command: the re-tuned stage 1 on the medium model,
    with the method's student or the plain one, at the recorded runs' batch (`--cfg job` prints
    the composed config without training; the line's data paths need the shared copy).
    The pipeline page's plain-student line is the README's without the sweep (checked below);
    tests/integration/test_configs.py checks the lines against the recorded runs."""
    line = next(cmd for cmd in readme_lines(heading, page) if f"experiment={preset} " in cmd)
    args = [a for a in shlex.split(line) if a != "-m"]
    assert args[0] == "ltcl-pipeline"
    args = [re.sub(r"^(data\.split\.seed=)(\d+),.*", r"\g<1>\2", a) for a in args]
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
    # the batch and the OOD candidate draw of every campaign run, so the line reproduces them
    assert cfg.data.global_batch_size == 256
    assert cfg.ood.candidates_per_round == 20000


def test_the_two_plain_student_lines_are_one_command():
    """The README's CPU quick start is the pipeline page's plain-student preset line over
    splits 1, 2, 3: one command, so one set of recorded numbers behind both."""
    preset = "experiment=method_tuned_medium_plain_student_cpu "
    (readme,) = [line for line in readme_lines("### A CPU") if preset in line]
    (page,) = [line for line in readme_lines("## Presets", PIPELINE_PAGE) if preset in line]
    readme_words = [w for w in shlex.split(readme) if w not in ("-m", "data.split.seed=1,2,3")]
    assert sorted(readme_words) == sorted(shlex.split(page))


# The campaign's recipes: the search line runs (tiny, slow tier); the script lines name scripts
# that exist, parse, and read every variable the line sets.
CAMPAIGN_SECTION = "## How to rerun"
CAMPAIGN = readme_lines(CAMPAIGN_SECTION, RESULTS_PAGE)


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
    """The results page's search line, on the embedded data with a tiny budget and 2 trials: each
    trial trains its own pipeline, and the best value Optuna reports is the best student's
    *validation* kNN All, not its test number."""
    line = next(cmd for cmd in CAMPAIGN if "hparams_search=method_val" in cmd)
    swap = {"data=cifar10_lt_folder": "data=embedded", "ood=tinyimagenet": "ood=embedded",
            "stages.total_epochs=16": "stages.total_epochs=2"}  # fmt: skip
    args = [swap.get(a, a) for a in shlex.split(line)[1:]]
    assert set(swap.values()) <= set(args), "the search line changed: update the swap"
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


# ---- every command a user can read: composed or checked (default tier) --------------------

HYDRA_APPS = {"ltcl-train": "train", "ltcl-pipeline": "pipeline", "ltcl-eval": "eval"}
NOT_OVERRIDES = {"-m", "--multirun", "...", "--help", "--cfg", "job"}


def hydra_overrides(words: list[str]) -> list[str]:
    """The overrides of a console command line as Hydra composes one job of it: flags and the
    "..." of a recipe dropped, a `<placeholder>` filled in, a sweep at its first value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = [re.sub(r"<[^>]*>", "x", w) for w in words if w not in NOT_OVERRIDES]
    one_job = []
    for override in OverridesParser.create().parse_overrides(args):
        if override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()))
            one_job.append(f"{override.get_key_element()}={first}")
        else:
            one_job.append(override.input_line)
    return one_job


def makefile_targets() -> set[str]:
    text = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-zA-Z_-]+):", text, re.M))


def check_line(line: str, compose) -> None:
    """Compose or check one command line; raises AssertionError (or Hydra's error) if broken."""
    words = shlex.split(line)
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value before the command
        words = words[1:]
    command, args = words[0], words[1:]
    if command in HYDRA_APPS:
        compose(HYDRA_APPS[command], hydra_overrides(args))
    elif command == "ltcl-report":
        from ltcl.cli.report import build_parser

        try:
            build_parser().parse_args(args)
        except SystemExit as exit:  # argparse's way of rejecting a flag
            raise AssertionError(f"ltcl-report rejects {args}") from exit
    elif command == "ltcl-pool":
        from ltcl.cli.pool import build_parser as pool_parser

        try:
            pool_parser().parse_args(args)
        except SystemExit as exit:
            raise AssertionError(f"ltcl-pool rejects {args}") from exit
    elif command == "make":
        assert set(args) <= makefile_targets(), f"no Makefile target {args}"
    elif command == "bash":
        script = REPO_ROOT / args[0]
        assert script.is_file(), f"{args[0]} does not exist"
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, f"{script} parses"
    elif command == "python":
        assert (REPO_ROOT / args[0]).is_file(), f"{args[0]} does not exist"
    elif command == "source":
        assert args == [".venv/bin/activate"], line
    elif command == "git":  # a checkout of a peer's official code, outside the project
        assert args[0] == "clone" and re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", args[1])
        assert not (REPO_ROOT / args[2]).resolve().is_relative_to(REPO_ROOT), line
    else:
        raise AssertionError(f"no test covers this kind of command: {line}")


def test_every_command_a_user_reads_composes_or_exists():
    """Every line of every bash block in the README and docs/ (the research record aside):
    Hydra apps compose with their overrides, ltcl-report parses, make targets and scripts
    exist. This is what keeps a renamed key or option from leaving a stale recipe."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from ltcl.conf import CONFIG_DIR

    commands = every_command()
    pages = {page for page, _ in commands}
    assert README in pages and len(pages) >= 8, pages
    failures = []
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):

        def compose_job(name: str, overrides: list[str]) -> None:
            compose(name, overrides=overrides, return_hydra_config=True)

        for page, line in commands:
            try:
                check_line(line, compose_job)
            except Exception as err:  # collect them all: one run names every stale line
                failures.append(f"{page}: {line}\n    {type(err).__name__}: {str(err)[:300]}")
    GlobalHydra.instance().clear()
    assert not failures, "\n".join(failures)


def test_a_stale_recipe_line_fails_the_check():
    """The check above is not vacuous: a mistyped key, option or target fails it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from ltcl.conf import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):

        def compose_job(name, overrides):
            compose(name, overrides=overrides, return_hydra_config=True)

        for bad in (
            "ltcl-train trainer.max_epoch=3",
            "ltcl-pipeline -m model=resnet99 data.split.seed=0,1",
            "ltcl-report outputs --metrix knn",
            "make demos",
            "bash benchmarks/no_such_script.sh",
            "curl http://example.org",
        ):
            with pytest.raises(Exception):  # noqa: B017 - any failure is the point
                check_line(bad, compose_job)
        check_line("ltcl-train -m data.split.seed=0,1 method=guide ood=embedded", compose_job)
    GlobalHydra.instance().clear()


# ---- the README's quick start, run as written with stand-ins (slow tier) -------------------

QUICK_STAND_INS = {
    "data": "data=embedded",
    "ood": "ood=embedded",
    "model": "model=small",
    "trainer": "trainer=cpu",
    "stages.total_epochs": "stages.total_epochs=2",
}
TINY_OOD = [
    "ood.source.num_crops=200",
    "method.sampler.warmup_epochs=0",
    "method.sampler.budget=100",
    "method.sampler.kmeans_iterations=5",
    "method.sampler.refine_iterations=5",
]


def quick_start(heading: str) -> list[list[str]]:
    return [shlex.split(line) for line in readme_lines(heading)]


def with_stand_ins(args: list[str]) -> list[str]:
    swapped = [QUICK_STAND_INS.get(a.split("=")[0], a) for a in args]
    assert swapped != args, "the quick start's line changed: update the stand-ins"
    return swapped


def test_the_quick_start_is_the_real_job():
    """The README's quick start trains the method on CIFAR-10-LT with the Tiny ImageNet pool,
    next to SimCLR, on one GPU, on SLURM with a split sweep and wandb, and on a CPU."""
    gpu, slurm, cpu = (quick_start(h) for h in ("### One GPU", "### A SLURM", "### A CPU"))
    for block in (gpu, slurm, cpu):
        (pipeline,) = [c for c in block if c[0] == "ltcl-pipeline"]
        assert {"data=cifar10_lt_folder", "ood=tinyimagenet"} <= set(pipeline)
    assert "trainer=gpu" in gpu[1] and "stages.compare=[simclr]" in gpu[1]
    assert {"hydra/launcher=slurm", "logger=wandb", "data.split.seed=1,2,3"} <= set(slurm[0])
    assert [c[0] for c in gpu] == ["source", "ltcl-pipeline", "ltcl-report"]
    assert [c[0] for c in slurm] == ["ltcl-pipeline", "ltcl-report"]


@pytest.mark.slow
def test_quick_start_one_gpu_runs_as_written(tmp_path):
    """The one-GPU block on the CPU with the stand-ins: guide -> student and SimCLR, then the
    report of the run directory, from the directory the user runs it in."""
    _, pipeline, report = quick_start("### One GPU")
    args = [*with_stand_ins(pipeline[1:]), *TINY_OOD, *TINY[1:]]
    done = run_console("ltcl-pipeline", args, tmp_path, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    stages = {p.parent.name for p in (tmp_path / "outputs" / "pipeline").rglob("results.json")}
    assert stages == {"guide", "student", "simclr"}
    done = run_console(report[0], report[1:], tmp_path, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert all(stage in done.stdout for stage in ("guide", "student", "simclr"))


@pytest.mark.slow
def test_quick_start_slurm_sweep_with_wandb_runs_as_written(tmp_path):
    """The SLURM block through the fake sbatch, which runs the array's tasks here: one job per
    split seed, each a whole pipeline logging to wandb (offline here), then the report."""
    pipeline, report = quick_start("### A SLURM")
    args = [*with_stand_ins(pipeline[1:]), *TINY_OOD, *TINY[1:]]
    done = run_console(
        "ltcl-pipeline", args, tmp_path, cwd=tmp_path, timeout=1500, WANDB_MODE="offline"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (script,) = [p.read_text() for p in (tmp_path / "slurm").glob("sbatch_*.sh")]
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=1440", "#SBATCH --array=0-2"):
        assert line in script, line
    multirun = tmp_path / "outputs" / "pipeline" / "multirun"
    students = [json.loads(p.read_text()) for p in multirun.rglob("student/results.json")]
    assert sorted(s["split_seed"] for s in students) == [1, 2, 3]
    assert len(list(multirun.rglob("wandb/offline-run-*"))) == 9  # guide, student, simclr x 3
    done = run_console(report[0], report[1:], tmp_path, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "student" in done.stdout and "simclr" in done.stdout


@pytest.mark.slow
def test_quick_start_cpu_runs_as_written(tmp_path):
    """The CPU block's preset sweep over splits 1, 2, 3 with the stand-ins (the preset's medium
    model kept, at a tiny width)."""
    (pipeline,) = quick_start("### A CPU")
    args = [*with_stand_ins(pipeline[1:]), *TINY_OOD, *TINY[1:]]
    done = run_console("ltcl-pipeline", args, tmp_path, cwd=tmp_path, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    multirun = tmp_path / "outputs" / "pipeline" / "multirun"
    students = [json.loads(p.read_text()) for p in multirun.rglob("student/results.json")]
    assert sorted(s["split_seed"] for s in students) == [1, 2, 3]
    assert all(s["config"]["method"]["k_pos"] == 0 for s in students)  # the plain student
    assert all(s["config"]["data"]["global_batch_size"] == 256 for s in students)
