"""The console's error path: Hydra's composition errors and ltcl's own as one line, exit 2."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException

from ltcl.cli.console import one_line, run_console
from ltcl.errors import ConfigError


def test_one_line_folds_hydra_option_lists_and_drops_the_search_path():
    message = (
        "In 'train': Could not find 'model/x'\n\nAvailable options in 'model':\n\tsmall\n"
        "\tcifar_resnet18\nConfig search path:\n\tprovider=hydra, path=pkg://hydra.conf"
    )
    assert one_line(Exception(message)) == (
        "In 'train': Could not find 'model/x'; Available options in 'model': small, cifar_resnet18"
    )


def test_one_line_keeps_sentences_and_drops_omegaconf_detail_lines():
    message = "Key 'x' is not in struct.\nTry +x=1\n    full_key: x\n    object_type=dict"
    assert one_line(Exception(message)) == "Key 'x' is not in struct. Try +x=1"


def _raising(error):
    def hydra_main():
        raise error

    return hydra_main


@pytest.fixture
def user_env(monkeypatch):
    """A user's shell: no HYDRA_FULL_ERROR (the test session sets it)."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.delenv("LTCL_USER_HYDRA_FULL_ERROR", raising=False)
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)


def test_a_retired_key_is_one_line_naming_the_one_way_now(user_env, capsys):
    """`ltcl-pipeline stages.simclr.enabled=true` (Hydra cannot override a key conf/ no longer
    has): the line names stages.compare=[simclr] instead of guessing a close key."""
    error = ConfigCompositionException(
        "Could not override 'stages.simclr.enabled'.\nTo append to your config use "
        "+stages.simclr.enabled=true\nKey 'simclr' is not in struct"
    )
    with pytest.raises(SystemExit) as exit_:
        run_console(_raising(error), "pipeline")
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("ltcl: error: stages.simclr.enabled is no longer a setting")
    assert "stages.compare=[simclr]" in lines[0] and "Did you mean" not in lines[0]


def test_a_misspelt_key_is_one_line_with_the_closest_real_key(user_env, capsys):
    error = ConfigCompositionException(
        "Could not override 'trainer.max_epoch'.\nTo append to your config use +trainer.max_epoch=3"
    )
    with pytest.raises(SystemExit) as exit_:
        run_console(_raising(error), "train")
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ltcl: error: Could not override")
    assert "Did you mean trainer.max_epochs?" in lines[0]


def test_an_unknown_group_option_is_one_line(user_env, capsys):
    error = MissingConfigException(
        "In 'train': Could not find 'method/moco'\n\nAvailable options in 'method':\n\tguide\n"
        "\tsimclr",
        missing_cfg_file="method/moco",
    )
    with pytest.raises(SystemExit):
        run_console(_raising(error), "train")
    err = capsys.readouterr().err.strip()
    assert err == (
        "ltcl: error: In 'train': Could not find 'method/moco'; Available options in "
        "'method': guide, simclr"
    )


def test_ltcl_errors_print_one_line_and_full_error_keeps_the_traceback(user_env, monkeypatch):
    with pytest.raises(SystemExit):
        run_console(_raising(ConfigError("method.beta must be >= 0")), "train")
    # HYDRA_FULL_ERROR=1 from the user: the exception itself, for the traceback
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    monkeypatch.delenv("LTCL_USER_HYDRA_FULL_ERROR")
    with pytest.raises(ConfigError, match="method.beta"):
        run_console(_raising(ConfigError("method.beta must be >= 0")), "train")


def test_other_exceptions_are_not_hidden(user_env):
    with pytest.raises(ZeroDivisionError):
        run_console(_raising(ZeroDivisionError("a bug")), "train")


def test_a_key_is_suggested_under_its_group_and_appends_are_allowed_only_where_read():
    from ltcl.run.config_checks import is_read_when_appended, suggest_keys

    keys = ["method.sampler.warmup_epochs", "method.sampler.budget", "trainer.max_epochs"]
    assert suggest_keys("sampler.warmup_epochs", keys) == ["method.sampler.warmup_epochs"]
    assert suggest_keys("method.sampler.budgett", keys) == ["method.sampler.budget"]
    assert suggest_keys("stages.foo", keys) == []
    assert is_read_when_appended("trainer.gradient_clip_val")  # Lightning checks its own
    assert is_read_when_appended("data.augment.crop_scale")  # an AugmentConfig field
    assert is_read_when_appended("optim.schedule.start_epoch")
    assert not is_read_when_appended("data.augment.crop_scal")
    assert not is_read_when_appended("sampler.budget")
    assert not is_read_when_appended("optim.schedule.warmup_epoch")
