"""Errors a user can act on: the CLI prints their message on one line, without a traceback."""


class BenchError(Exception):
    """Base of every error whose message is meant for the user."""


class ConfigError(BenchError):
    pass


class DatasetError(BenchError):
    pass


class ServerError(BenchError):
    """The server could not be started or died; the message says why."""


class EndpointError(BenchError):
    """An endpoint (endpoint mode) that does not answer as an OpenAI-compatible server: bad input, not a verdict."""


class RecordError(ValueError):
    """A stored record whose values cannot be what its type says (a count that is text, a list that is not)."""


class CompareError(BenchError):
    """A results folder that cannot be compared."""


class LinkError(BenchError):
    """A symbolic link where bench would write: bench writes through no link it did not make (bad input)."""


class PortInUseError(ServerError):
    """A port bench was told to use (tracing.listen, server.port) is taken: bad input for the command, exit 2."""


class MissingPartError(BenchError):
    """An optional part a setting needs is not installed (Ray, the AWQ tool's venv): the message names the command
    that installs it. Bad input for the command, exit 2."""
