"""Errors whose messages are meant for the user: they name the file and what was expected."""
from __future__ import annotations


class BrainITError(Exception):
    """Base class: the CLI prints the message and exits with status 2, the app shows it."""


class DataFormatError(BrainITError, ValueError):
    """A data file is missing, malformed, or has the wrong shape or values."""


class MissingWeightsError(BrainITError, FileNotFoundError):
    """Pretrained weights needed by a component are not on this machine."""


class CheckpointError(BrainITError, ValueError):
    """A checkpoint is missing, corrupt, or does not match the code's configuration."""


class UnknownSubjectError(BrainITError, KeyError):
    """A subject name that the dataset or run does not hold (a ``KeyError`` too, for dict-like use)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
