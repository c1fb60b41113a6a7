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


class OutputNotWritten(InputError):
    """An output that cannot be written (no room, a read-only file system, a file where a folder must be, a name
    too long …): ``cannot write OUT: REASON`` and what that left (``note``). ``out`` and ``reason`` are kept apart
    so a verb that wrote other outputs before this one can say which of them stay (:class:`PartlyDone`), where the
    note ("nothing of this export was kept") alone would deny them."""

    def __init__(self, out: object, reason: str, note: str = "") -> None:
        super().__init__(f"cannot write {out}: {reason}{note}")
        self.out, self.reason = out, reason


class PartlyDone(BiodiscoverError):
    """A verb wrote some of its outputs whole, then could not write the next: the message names those that stay
    and what to re-run. Exit 1 (done, in part), not 2: "nothing done" would be false, and the outputs written are
    refused by the same command again without --force (e34 attack E4)."""

    exit_code = 1


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
