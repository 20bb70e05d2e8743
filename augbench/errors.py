"""User-facing errors: the CLI prints the message (which names the field or file) and exits 2."""


class UserError(ValueError):
    """Bad input from the user: a config field, a policy, a file, a dataset path."""
