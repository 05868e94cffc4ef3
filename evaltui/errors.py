"""Errors a user can act on. The CLI prints them as one line; the UI as a notice."""


class EvaltuiError(Exception):
    """A problem the user can fix; its message is one readable sentence."""


class ProjectLocked(EvaltuiError):
    """Another process holds the project file."""


class SchemaError(EvaltuiError):
    """The project file was made by a newer evaltui, or is not an evaltui project."""


class InvalidInput(EvaltuiError):
    """An imported file (or a value given on the command line) is not valid."""


class NotFound(EvaltuiError):
    """A rubric, case, session or rater named by the user does not exist."""


class DiskFull(EvaltuiError):
    """The disk holding the project (or a file being written) is full; the failed write stored nothing."""


class ProjectDamaged(EvaltuiError):
    """The project file, or the WAL beside it, is damaged or does not belong to it."""


class WriteRefused(EvaltuiError):
    """Writing a file would replace one that must be kept (a project, another kind, no --force)."""
