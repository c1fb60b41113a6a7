"""The ``biodiscover`` command line: thin typer verbs over the workflow functions.

``biodiscover.cli`` is the composition root: the only package that imports both
``workflows`` (pipelines) and ``tui`` (the review app). Each area's verbs live in
their own module (``cli/<area>.py``) and are attached here by ``register(app)``;
the imports are static so the layering check sees every edge. ``main`` turns user
errors into one line and a non-zero exit code; only real bugs show a traceback.
"""

from __future__ import annotations

import errno
import io
import logging
import sys

import typer

from biodiscover.cli import data, db, discovery, jobs, model, review, synth
from biodiscover.storage.errors import BiodiscoverError, Interrupted

app = typer.Typer(
    name="biodiscover",
    help=(
        "Open-world species discovery for arthropod collections: name each specimen to the "
        "deepest confident rank, flag novel species, propose candidate new species, review "
        "and export them."
    ),
    epilog=(
        "Exit codes: 0 success; 1 done, but validate or run set rows aside (run: this run, not a skipped "
        "collection's earlier run; or a run's collection failed), "
        "export wrote some of its outputs and one error: line says which and what failed, or db check found a "
        "problem; 2 nothing done: one error: line says why (a wrong path, a malformed file, an "
        "unusable database or option); 130 interrupted (Ctrl-C): re-run the same command to go on (one that lands "
        "after the work was stored says so, and that there is nothing to re-run)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages to stderr."),
) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s") if verbose else _ConsoleFormatter())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler])


class _ConsoleFormatter(logging.Formatter):
    """``warning: …``: a warning on stderr reads as the product's own ``error:`` lines do.

    Why: "WARNING biodiscover.storage.db.runs: run 1 was left running by a dead process" stood among `run`'s own
    lines in the logger's format (e31 review F14); ``--verbose`` keeps the logger's name for whoever debugs."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname.lower()}: {record.getMessage()}"
        return f"{line}\n{self.formatException(record.exc_info)}" if record.exc_info else line


for _verbs in (data, synth, db, model, discovery, review, jobs):
    _verbs.register(app)


#: true for every verb: ingested specimens, completed runs and a batch's finished collections stay; the step
#: that was running is marked failed or interrupted and stored nothing of its own results
INTERRUPTED = ("interrupted: finished steps are kept and the interrupted one is marked as such; "
               "re-run the same command to go on from there.")
#: verbs with no steps to keep: what an interrupted run of them left behind
INTERRUPTED_BY_VERB = {
    "build-reference": ("interrupted: the bundle is written only once the engine is fitted, so there is none "
                        "unless 'bundle written' was printed; re-run the same command to build it (into a bundle "
                        "already there, its encoders are kept and its reference replaced)."),
}


def _interrupted(argv: list[str] | None) -> str:
    """The interrupt message for the verb on the command line (the general one when it has no other)."""
    args = sys.argv[1:] if argv is None else argv
    verb = next((a for a in args if not a.startswith("-")), None)
    return INTERRUPTED_BY_VERB.get(verb or "", INTERRUPTED)


_USER_OS_ERRORS = (errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.EROFS)
#: click's user-error base class, as typer carries it (its own copy of click since typer 0.2x, click before)
_CLICK_ERROR: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _usage_line(exc: Exception) -> str:
    """A click usage error (missing or malformed option, unknown command) as the house's one ``error:`` line,
    with where the help is; the bare program name, which click raises as a usage error too, gets its help."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":  # `biodiscover` alone: the help (typer's rich help is drawn
        return message.rstrip()  # as the error is made, leaving its message empty)
    message = " ".join(message.split())
    message = message[:1].lower() + message[1:] if message[1:2].islower() else message
    where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return f"error: {message}{where}"


def _own_path_checks(typer_app: typer.Typer) -> None:
    """Leave 'is this path readable' to the verbs, which say why in one ``error:`` line.

    Click's own check answers an unreadable file with a usage box (several lines,
    "Try --help"), as if the command line were wrong; it is a permission problem.

    Also the one place options are shaped for help: an on/off flag takes no value, so its
    help shows none (typer labelled every flag ``<bool>``, as if it wanted one).
    """
    import inspect

    from typer.models import OptionInfo, ParameterInfo

    callbacks = [c.callback for c in typer_app.registered_commands]
    if typer_app.registered_callback is not None:  # the root's own options (--verbose)
        callbacks.append(typer_app.registered_callback.callback)
    for callback in callbacks:
        if callback is None:
            continue
        for param in inspect.signature(callback).parameters.values():
            if isinstance(param.default, ParameterInfo):
                param.default.readable = False
                flag = isinstance(param.default.default, bool) or param.annotation in (
                    bool, "bool", "Optional[bool]", "bool | None")  # annotations are strings here
                if isinstance(param.default, OptionInfo) and flag and param.default.metavar is None:
                    param.default.metavar = ""
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _own_path_checks(group.typer_instance)


_own_path_checks(app)


def _whole_option_names() -> None:
    """Help tables that shorten the help text, never an option's name.

    Typer draws each command's options as a rich table whose columns all may shrink; at 80 columns rich shrank
    the widest ones down to the name column's width and then all of them together, so ``build-reference``'s
    help read ``--calibration-k…`` and ``train``'s ``--pretrain-epoc…`` — a name the user cannot type (e31
    review F20). Here a column whose cells are single words (option names, short names, the required star, a
    one-word type) never shrinks; the others (types with a range, the help) wrap into the room left."""
    from rich.table import Table
    from rich.text import Text
    from typer import rich_utils

    class WholeNames(Table):
        def add_row(self, *renderables: object, **kwargs: object) -> None:
            super().add_row(*renderables, **kwargs)  # type: ignore[arg-type]
            rows = getattr(self, "_words", [])
            rows.append([isinstance(r, (str, Text)) and len(str(r).split()) <= 1 for r in renderables])
            self._words = rows
            for k, column in enumerate(self.columns):
                column.no_wrap = all(row[k] for row in rows if k < len(row))

    rich_utils.Table = WholeNames  # type: ignore[misc]


_whole_option_names()


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: user errors become one line and exit code 2."""
    # Redirected to a file or pipe, Python buffers stdout in blocks: lines would appear only at exit and
    # out of order with stderr's. One line at a time, always.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    try:
        # not standalone: click's usage errors come here, to be said in one line (standalone, typer draws them
        # as a boxed panel under a usage line); --help and typer.Exit come back as their exit code
        rv = app(args=argv, prog_name="biodiscover", standalone_mode=False)
        code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
        if code == 130:  # typer turns Ctrl-C (KeyboardInterrupt) into a silent exit 130
            typer.echo(_interrupted(argv), err=True)
        return code
    except SystemExit as exc:  # a verb's own sys.exit
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except _CLICK_ERROR as exc:
        typer.echo(_usage_line(exc), err=True)
        return int(getattr(exc, "exit_code", 2))
    except typer.Abort:  # a confirmation answered no, or end of input at a prompt
        typer.echo("aborted: nothing was done", err=True)
        return 1
    except BiodiscoverError as exc:
        said = "" if isinstance(exc, Interrupted) else "error: "  # a Ctrl-C is no error
        typer.echo(said + " ".join(str(exc).splitlines()), err=True)  # one line, always
        return exc.exit_code
    except OSError as exc:
        # permissions, a full disk or a read-only file system are the user's to fix, not bugs
        if isinstance(exc, PermissionError) or exc.errno in _USER_OS_ERRORS:
            where = f"{exc.filename}: " if exc.filename else ""
            typer.echo(f"error: {where}{exc.strerror or exc} (check the permissions and free space of the file "
                       "and its folder)", err=True)
            return 2
        raise
    except KeyboardInterrupt:
        typer.echo(_interrupted(argv), err=True)
        return 130
    return 0
