"""
The container image's entry point (C{Containerfile}): C{twistd --nodaemon
bitp2p}, its options taken from C{BITP2P_*} environment variables, then from
the container's arguments.

    podman run -e BITP2P_SEED=seed.example.org:5000 -e BITP2P_MAX_OUTBOUND=4 bitp2p
    podman run bitp2p --seed 10.0.0.5:5000 --log-level debug

Every option of C{twistd bitp2p} but C{--console} (a prompt wants a
terminal) has a variable: its name in capitals,
C{-} as C{_}, after C{BITP2P_} (C{--max-outbound} is C{BITP2P_MAX_OUTBOUND}).
An option given several times (C{--seed}, C{--addnode}, C{--connect},
C{--seednode}, C{--listen}) takes several values, separated by spaces or
commas. A flag (C{--no-seeds}, C{--tls}, ...) is set by C{1}, C{true} or
C{yes} and left out by C{0}, C{false}, C{no} or nothing. The variables come
first and the arguments after, so an argument wins over a variable for an
option given once, and adds to it for one given several times. A C{BITP2P_}
variable that names no option, or a flag with another value, ends the start
with one line (a misspelled option must not be dropped silently); the
options themselves are checked by the plugin, as on the command line.

This module owns that translation and nothing else. It must not know the
node: it knows the plugin's options only through L{bitp2p.ops.tap.Options}'s
declarations.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence

from bitp2p.ops.tap import Options

__all__ = ["PREFIX", "VariableError", "commandLine", "main", "optionArguments"]

PREFIX = "BITP2P_"
# The options given several times (an opt_ method each, appending).
REPEATED = ("seed", "addnode", "connect", "seednode", "listen")
# Not for a container: the prompt wants a terminal, help exits.
LEFT_OUT = ("console", "help")
TRUE = ("1", "true", "yes")
FALSE = ("", "0", "false", "no")


class VariableError(ValueError):
    """
    A C{BITP2P_} variable that cannot be an option; the message is one line.
    """


def _declared() -> tuple[set[str], set[str], set[str]]:
    """
    The plugin's flags, its options with one value, and those given several
    times, by their long names.
    """
    flags = {name for name, *_ in Options.optFlags} - set(LEFT_OUT)
    valued = {name for name, *_ in Options.optParameters}
    repeated = {name for name in REPEATED if hasattr(Options, "opt_" + name)}
    return flags, valued, repeated


def _variable(option: str) -> str:
    return PREFIX + option.upper().replace("-", "_")


def optionArguments(environ: Mapping[str, str]) -> list[str]:
    """
    The command-line options the C{BITP2P_} variables of C{environ} say:
    the flags, then the options given once, then those given several times,
    each group in the options' alphabetical order (so the same variables
    always give the same line).

    @raise VariableError: for a variable that names no option, or a
        flag whose value is neither true nor false.
    """
    flags, valued, repeated = _declared()
    names = {_variable(option): option for option in flags | valued | repeated}
    unknown = sorted(name for name in environ if name.startswith(PREFIX) and name not in names)
    if unknown:
        raise VariableError(
            f"{unknown[0]} names no option of twistd bitp2p (the variables are BITP2P_ and an"
            " option's name in capitals, - as _: BITP2P_MAX_OUTBOUND for --max-outbound)"
        )
    arguments: list[str] = []
    for option in sorted(flags):
        value = environ.get(_variable(option))
        if value is None or value.strip().lower() in FALSE:
            continue
        if value.strip().lower() not in TRUE:
            raise VariableError(
                f"{_variable(option)}={value!r}: --{option} is a flag, give 1, true or yes"
                " (or 0, false, no)"
            )
        arguments.append(f"--{option}")
    for option in sorted(valued):
        value = environ.get(_variable(option))
        if value is not None:
            arguments += [f"--{option}", value]
    for option in sorted(repeated):
        for value in re.split(r"[\s,]+", environ.get(_variable(option), "").strip()):
            if value:
                arguments += [f"--{option}", value]
    return arguments


def commandLine(environ: Mapping[str, str], argv: Sequence[str]) -> list[str]:
    """
    The C{twistd} command line the container runs: in the foreground, no
    pid file (one process per container), the variables' options, then
    C{argv}.
    """
    return ["twistd", "--nodaemon", "--pidfile=", "bitp2p", *optionArguments(environ), *argv]


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> None:
    """
    Run the node as the container's main process (twistd in this process,
    so that the container's stop signal reaches it and it saves its tables).
    """
    try:
        line = commandLine(os.environ if environ is None else environ, sys.argv[1:] if argv is None else argv)
    except VariableError as e:
        sys.stderr.write(f"bitp2p: {e}\n")
        raise SystemExit(1) from None
    from twisted.scripts.twistd import run

    sys.argv = line
    run()


if __name__ == "__main__":
    main()
