"""Service settings from command-line options over environment variables, and the one line
that names where a bad value came from.

Every service command builds its settings the same way: the options given on the command line
override the ``LODESTAR_<SERVICE>_*`` environment (what the compose file sets). A bad value is
reported by the name the user typed: the option (``--port``) when it came from the command
line, the variable (``LODESTAR_GATEWAY_PORT``) when it came from the environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsError

S = TypeVar("S", bound=BaseSettings)

_FIELD_IN_SETTINGS_ERROR = re.compile(r'field "(\w+)"')


class SettingsInputError(ValueError):
    """A setting's value is refused: ``where`` names the option or variable, ``reason`` why."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"invalid {where}: {reason}")
        self.where = where
        self.reason = reason


def load_settings(
    cls: type[S], overrides: Mapping[str, Any] | None = None, options: Mapping[str, str] | None = None
) -> S:
    """``cls`` from the environment, with ``overrides`` (field → value; ``None`` = not given)
    on top. ``options`` names the command-line option of a field where it is not
    ``--field-name``. Raises :class:`SettingsInputError`."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        return cls(**given)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        field = str(first["loc"][0]) if first["loc"] else None
        if field is None:
            where = f"settings of {cls.__name__}"
        elif field in given:
            where = (options or {}).get(field, "--" + field.replace("_", "-"))
        else:
            where = env_name(cls, field)
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise SettingsInputError(where, f"{first['msg']}{more}") from None
    except SettingsError as exc:  # a complex value (a JSON list) that does not parse
        found = _FIELD_IN_SETTINGS_ERROR.search(str(exc))
        where = env_name(cls, found.group(1)) if found else "environment"
        raise SettingsInputError(where, "not valid JSON") from None


def env_name(cls: type[BaseSettings], field: str) -> str:
    """The environment variable of ``field`` (``LODESTAR_GATEWAY_PORT``)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    return (prefix + field).upper()
