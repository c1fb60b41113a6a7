"""The ``biodiscover`` command line: thin typer verbs over the workflow functions.

Each area registers its verbs from its own module (``cli_<area>.py``) so the
verbs stay next to the pipeline they call. ``main`` turns user errors into one
line and a non-zero exit code; only real bugs show a traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from storage.errors import BiodiscoverError

app = typer.Typer(
    name="biodiscover",
    help=(
        "Open-world species discovery for arthropod collections: name each specimen to the "
        "deepest confident rank, flag novel species, propose candidate new species, review "
        "and export them."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Modules that add verbs to ``app`` through a ``register(app)`` function.
COMMAND_MODULES: tuple[str, ...] = (
    "workflows.cli_data",
    "workflows.cli_synth",
    "workflows.cli_db",
    "workflows.cli_model",
    "workflows.cli_discovery",
    "workflows.cli_review",
    "workflows.cli_jobs",
)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages to stderr."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


INTERRUPTED = "interrupted: work committed so far is kept; re-run the same command to resume."


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: user errors become one line and exit code 2."""
    try:
        app(args=argv, prog_name="biodiscover", standalone_mode=True)
    except SystemExit as exc:  # click's own exits: --help, usage errors, success
        code = exc.code
        code = code if isinstance(code, int) else (0 if code is None else 1)
        if code == 130:  # typer turns Ctrl-C (KeyboardInterrupt) into a silent exit 130
            typer.echo(INTERRUPTED, err=True)
        return code
    except BiodiscoverError as exc:
        typer.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo(INTERRUPTED, err=True)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
