"""Help a person can read: `augbench --help` lists every command with a one-line purpose, and each
`augbench train` flag says what it is (its field's comment in augbench/config.py) and its choices."""
import argparse
import dataclasses
import inspect
import os
import re
import subprocess
import sys

import pytest

from augbench import config, recipes
from augbench.cli import COMMANDS, build_parser
from augbench.config import config_comments
from augbench.config import RunConfig
from augbench.data.dataset import NAMES as DATASETS


@pytest.fixture
def columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps at the terminal's width


def test_top_help_lists_each_command_with_its_purpose(columns):
    r = subprocess.run([sys.executable, "-m", "augbench.cli", "--help"], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert "console entry point" not in text and "sub-command lives" not in text  # not a docstring
    description = text.split("\n\n")[1]
    assert description.rstrip().endswith(".")  # a whole sentence, not one cut off
    for name, (_, purpose) in COMMANDS.items():
        # the purpose on the command's own line, whole (one line at 80 columns)
        assert re.search(rf"^ +{re.escape(name)} +{re.escape(purpose)}$", text, re.M), (name, text)
    assert "data" in COMMANDS and "augbench data get cifar10" in " ".join(text.split())


def _train_actions() -> tuple[dict[str, argparse.Action], argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices["train"]._actions}, sub.choices["train"]


def test_train_flags_say_what_they_are_and_list_choices(columns):
    actions, train = _train_actions()
    for f in dataclasses.fields(RunConfig):
        help_ = actions[f.name].help
        assert help_ and not help_.startswith("default"), (f.name, help_)
    choices = {"method": config.METHODS, "backbone": config.BACKBONES, "optimizer": config.OPTIMIZERS,
               "backend": config.BACKENDS, "recipe": recipes.names(), "dataset": DATASETS}
    for name, values in choices.items():
        assert all(v in actions[name].help for v in values), (name, actions[name].help)
    assert "imagefolder:<path>" in actions["dataset"].help
    text = " ".join(train.format_help().split())
    assert "--subset N_PER_CLASS" in text and "per class" in actions["subset"].help
    assert "one of: simclr, byol, vicreg, barlow, simsiam" in text or all(m in text for m in config.METHODS)


def test_field_comments_come_from_config_source():
    """Every field with a comment on its line in config.py shows that comment in its flag's help."""
    comments = config_comments()
    src = inspect.getsource(RunConfig)
    by_regex = {}
    for line in src.splitlines():
        m = re.match(r"^    (\w+): [^#]*#\s*(.*)$", line)
        if m and not line.strip().startswith("#"):
            by_regex[m.group(1)] = m.group(2).strip()
    assert by_regex and comments == by_regex
    actions, _ = _train_actions()
    for name, comment in comments.items():
        if name == "policy":
            continue  # the flag takes a name or a YAML file, not the dict the field can hold: its own text
        assert comment.replace("%", "%%") in actions[name].help, name
