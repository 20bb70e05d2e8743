"""User-facing errors: the CLI prints the message (which names the field or file) and exits 2; and the
flags every command takes for them (``common_options``: --debug, --discard-corrupt)."""
import argparse


class UserError(ValueError):
    """Bad input from the user: a config field, a policy, a file, a dataset path."""


def read_yaml(path, what: str, error: type[UserError] = UserError):
    """yaml.safe_load of a file the user names; a missing file or bad YAML raises `error` naming
    the path and `what` it should have been (e.g. "policy file")."""
    from pathlib import Path

    import yaml

    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except (FileNotFoundError, IsADirectoryError):
        raise error(f"{path}: no such {what}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise error(f"{path}: not a valid YAML {what}: {e}") from None


def common_options(leaf: bool = False) -> argparse.ArgumentParser:
    """--debug and --discard-corrupt for every command; `leaf`: for a command's ACTION parsers too
    (no default there, so a flag given before the ACTION is kept)."""
    p = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if leaf else False
    p.add_argument("--debug", action="store_true", default=default, help="show the traceback of an error")
    p.add_argument("--discard-corrupt", action="store_true", default=default,
                   help="move a corrupt row, ledger or checkpoint aside into <results>/corrupt/ and go on")
    return p
