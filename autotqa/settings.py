"""Build the one :class:`~autotqa.config.Config` a command runs with, from four layers.

Precedence, highest first:

1. command-line flags (``--engine``, ``--model``, ``--base-url``, ``--max-rounds`` ...);
2. ``AUTOTQA_*`` environment variables — the flat names in :data:`FLAT_ENV`
   (``AUTOTQA_ENGINE``, ``AUTOTQA_MODEL``, ``AUTOTQA_BASE_URL``, ``AUTOTQA_API_KEY``,
   ``AUTOTQA_MAX_ROUNDS``) or any field as ``AUTOTQA_<SECTION>__<FIELD>``
   (``AUTOTQA_ENGINE__N_CTX=4096``, ``AUTOTQA_EXECUTOR__ROW_CAP=200``);
3. the TOML file ``config.toml`` in the user config directory (``AUTOTQA_CONFIG`` names another
   file), with one table per section::

       [engine]
       kind = "openai"
       base_url = "http://127.0.0.1:8000/v1"
       [agents]
       max_rounds = 2

4. the defaults of :class:`~autotqa.config.Config`.

Every layer is merged first and validated once, so a bad value is reported against the layer it
came from: the file path and key, the environment variable, or the flag. A typo (an unknown key or
an ``AUTOTQA_X__Y`` that names no field) is an error too, not silently ignored.

>>> cfg = load_config({"agents.max_rounds": 5}, env={"AUTOTQA_ENGINE": "openai"}, path=None)
>>> (cfg.engine.kind, cfg.agents.max_rounds)
('openai', 5)
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import platformdirs
from pydantic import BaseModel, ValidationError

from .config import Config
from .errors import ConfigError

APP_NAME = "autotqa"
CONFIG_ENV = "AUTOTQA_CONFIG"

#: Short environment names for the settings people change most; every other field is reachable
#: as ``AUTOTQA_<SECTION>__<FIELD>``.
FLAT_ENV: Mapping[str, str] = MappingProxyType({
    "AUTOTQA_ENGINE": "engine.kind",
    "AUTOTQA_MODEL": "engine.model",
    "AUTOTQA_BASE_URL": "engine.base_url",
    "AUTOTQA_API_KEY": "engine.api_key",
    "AUTOTQA_MAX_ROUNDS": "agents.max_rounds",
})

_SECRET_FIELDS = frozenset({"engine.api_key"})


class FlagError(ConfigError):
    """A command-line flag has a bad value: a usage error (exit code 2), not a runtime one."""


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the TOML file is read from: ``$AUTOTQA_CONFIG`` or ``<user config dir>/config.toml``."""
    env = os.environ if env is None else env
    explicit = env.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def data_dir() -> Path:
    """The user data directory (chat history lives here); created on demand."""
    path = Path(platformdirs.user_data_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sections() -> dict[str, type[BaseModel]]:
    return {name: field.annotation for name, field in Config.model_fields.items()}  # type: ignore[misc]


def _check_path(dotted: str, source: str, error: type[ConfigError] = ConfigError) -> tuple[str, str]:
    section, _, name = dotted.partition(".")
    sections = _sections()
    if section not in sections:
        raise error(f"{source}: unknown section {section!r}",
                    hint=f"sections are: {', '.join(sorted(sections))}")
    fields = sections[section].model_fields
    if name not in fields:
        raise error(f"{source}: unknown setting {section}.{name}",
                    hint=f"{section} settings are: {', '.join(sorted(fields))}")
    return section, name


def read_toml(path: Path) -> dict[str, dict[str, Any]]:
    """Read the config file into ``{section: {field: value}}``; unknown keys are errors."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})", hint="fix the file or remove it") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}",
                          hint=f"check the file, or point {CONFIG_ENV} elsewhere") from None
    out: dict[str, dict[str, Any]] = {}
    for section, table in raw.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {section!r} must be a table like [{section}]",
                              hint=f"sections are: {', '.join(sorted(_sections()))}")
        for key, value in table.items():
            _check_path(f"{section}.{key}", str(path))
            out.setdefault(section, {})[key] = value
    return out


def _env_layer(env: Mapping[str, str]) -> dict[str, str]:
    """``{dotted path: raw string}`` with the variable each came from kept by the caller."""
    found: dict[str, str] = {}
    for var, dotted in FLAT_ENV.items():
        if env.get(var):
            found[var] = dotted
    for var in env:
        if not var.startswith("AUTOTQA_") or "__" not in var or not env[var]:
            continue
        section, _, name = var[len("AUTOTQA_"):].lower().partition("__")
        _check_path(f"{section}.{name}", f"environment variable {var}")
        found[var] = f"{section}.{name}"
    return found


def load_config(flags: Mapping[str, Any] | None = None, *, env: Mapping[str, str] | None = None,
                path: Path | None | str = "auto") -> Config:
    """Merge defaults < TOML file < environment < flags into a validated :class:`Config`.

    ``flags`` maps dotted paths (``"engine.kind"``) to values; ``None`` means "flag not given".
    ``path="auto"`` reads :func:`config_path`; ``None`` skips the file (tests, doctests).
    """
    return load_config_sources(flags, env=env, path=path)[0]


def effective_settings(config: Config, origin: Mapping[str, str]) -> list[tuple[str, Any, str]]:
    """Every setting as ``(dotted name, value, where it came from)``; secrets shown as ``***``.

    >>> cfg, origin = load_config_sources({"agents.max_rounds": 5}, env={"AUTOTQA_ENGINE": "openai"}, path=None)
    >>> [row for row in effective_settings(cfg, origin) if row[0] in ("engine.kind", "agents.max_rounds")]
    [('engine.kind', 'openai', 'environment variable AUTOTQA_ENGINE'), ('agents.max_rounds', 5, '--max-rounds')]
    """
    rows = []
    for section, model in _sections().items():
        values = getattr(config, section)
        for name in model.model_fields:
            dotted = f"{section}.{name}"
            value = getattr(values, name)
            shown = "***" if dotted in _SECRET_FIELDS and value else value
            rows.append((dotted, shown, origin.get(dotted, "default")))
    return rows


def load_config_sources(flags: Mapping[str, Any] | None = None, *, env: Mapping[str, str] | None = None,
                        path: Path | None | str = "auto") -> tuple[Config, dict[str, str]]:
    """:func:`load_config`, and where each value that is not a default came from.

    ``flags`` maps dotted paths (``"engine.kind"``) to values; ``None`` means "flag not given".
    ``path="auto"`` reads :func:`config_path`; ``None`` skips the file (tests, doctests).
    An explicitly named file (``$AUTOTQA_CONFIG``) that does not exist is an error; the default one
    is optional.
    """
    env = os.environ if env is None else env
    merged: dict[str, dict[str, Any]] = {}
    origin: dict[str, str] = {}  # dotted path -> where its value came from, for error messages

    if path == "auto":
        path = config_path(env)
        if not path.exists():
            if env.get(CONFIG_ENV):
                raise ConfigError(f"config file {path} does not exist (named by {CONFIG_ENV})",
                                  hint=f"create it or unset {CONFIG_ENV}")
            path = None
    if path is not None:
        path = Path(path)
        for section, table in read_toml(path).items():
            for key, value in table.items():
                merged.setdefault(section, {})[key] = value
                origin[f"{section}.{key}"] = f"{path} ({section}.{key})"

    for var, dotted in _env_layer(env).items():
        section, name = dotted.split(".")
        merged.setdefault(section, {})[name] = env[var]
        origin[dotted] = f"environment variable {var}"

    for dotted, value in (flags or {}).items():
        if value is None:
            continue
        section, name = _check_path(dotted, f"flag {dotted}", FlagError)
        merged.setdefault(section, {})[name] = value
        origin[dotted] = "--" + name.replace("_", "-") if name != "kind" else "--engine"

    try:
        return Config.model_validate(merged), origin
    except ValidationError as exc:
        raise _explain(exc, origin, merged) from None


def _explain(exc: ValidationError, origin: Mapping[str, str], merged: Mapping[str, Any]) -> ConfigError:
    """Name the first bad value by its source; a bad flag is a usage error (:class:`FlagError`)."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"][:2])
    source = origin.get(loc, loc)
    section, _, name = loc.partition(".")
    value = merged.get(section, {}).get(name)
    shown = "***" if loc in _SECRET_FIELDS else repr(value)
    message = f"{source}: {shown} is not valid for {loc} ({err['msg'].lower()})"
    hint = None
    if loc == "engine.kind":
        message = f"{source}: unknown engine {shown}"
        hint = "choose one of: local, openai, vllm"
    cls = FlagError if source.startswith("--") else ConfigError
    return cls(message, hint=hint)
