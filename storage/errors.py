"""User-facing errors: one clear line naming the file, record and problem.

Library code raises these; the CLI turns them into ``error: <message>`` and a
non-zero exit code without a traceback. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class BiodiscoverError(Exception):
    """Base of every error a user can cause and fix (bad input, wrong path, …)."""

    exit_code = 2


class Interrupted(BiodiscoverError):
    """Ctrl-C, with a message that says what it left (written, stored, nothing) and what a re-run needs, where the
    verb knows better than the general "interrupted … re-run" line. The CLI prints it without ``error:`` (a Ctrl-C
    is the user's choice, not a mistake) and exits 130, as for any Ctrl-C."""

    exit_code = 130


class StoppedAfterWork(Interrupted):
    """Ctrl-C once the work was done and stored (while its summary was counted or printed): nothing was
    interrupted and nothing needs re-running, which the general "interrupted … re-run" would get wrong (a re-run
    of triage triages the collection again, as a new run). The message says what is stored; the CLI prints it
    without ``error:``, and exits 130 as for any Ctrl-C."""

    exit_code = 130


class InputError(BiodiscoverError):
    """An input file is missing, unreadable, or not in a format we read."""


class DatabaseError(BiodiscoverError):
    """The database cannot be opened, is corrupt, newer than us, or refused a write."""


class StaleProposalError(DatabaseError):
    """A review targeted a proposal version that a newer run has replaced."""


class ModelBundleError(BiodiscoverError):
    """A model bundle is missing, incomplete, or from an incompatible version."""


class NotFittedError(BiodiscoverError, RuntimeError):
    """An estimator was asked to predict, search or save before ``fit`` (or ``load``).

    A RuntimeError too, so code written against the estimators' earlier behaviour still catches it;
    a BiodiscoverError, so a user who reaches it (a bundle missing its fitted state) sees one line.
    """
