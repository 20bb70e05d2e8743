"""Data errors: each names the path (or field) at fault."""
from augbench.errors import UserError


class DataError(UserError):
    """A dataset cannot be found or read; the message names the path and how to fix it."""
