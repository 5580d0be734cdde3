"""The documentation keeps up with the code (in the style of sqlite-utils' test_docs.py).

Every command and option has ``--help`` text and is in the README (its command reference
is generated from ``--help`` by tools/cli_reference.py: rerun it after changing a
command), and every public function, class and method of the runtime has a docstring.
"""

import importlib
import importlib.util
import inspect
import pkgutil
from pathlib import Path

import click
import pytest

import edgerec
from edgerec.cli import ALIASES, main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
_spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "tools" / "cli_reference.py")
cli_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cli_reference)

COMMANDS = list(cli_reference.commands(main))
OPTIONS = [(path, param) for path, command in COMMANDS for param in command.params
           if isinstance(param, click.Option) and not param.hidden]
# The runtime's modules (the trainer and exporters need TensorFlow and are checked there).
RUNTIME = ["edgerec"] + [m.name for m in pkgutil.walk_packages(edgerec.__path__, "edgerec.")
                          if not m.name.startswith(("edgerec.trainer", "edgerec.exporters",
                                                    "edgerec.pipelines"))]


def _name(path) -> str:
    return "edgerec " + " ".join(path)


@pytest.mark.parametrize("path, command", COMMANDS, ids=[_name(p) for p, _ in COMMANDS])
def test_command_has_help_and_is_documented(path, command):
    assert (command.help or "").strip(), f"{_name(path)} has no --help text"
    assert f"### {_name(path)}\n" in README, f"{_name(path)} is not in the README's reference"


@pytest.mark.parametrize("path, option", OPTIONS,
                         ids=[f"{_name(p)} {o.opts[0]}" for p, o in OPTIONS])
def test_option_has_help_and_is_documented(path, option):
    assert option.help, f"{_name(path)} {option.opts[0]} has no help text"
    section = README.split(f"### {_name(path)}\n", 1)[-1].split("\n### ", 1)[0]
    for opt in option.opts:
        assert opt in section, f"{_name(path)} {opt} is not in its README section"


def test_readme_reference_is_generated_from_the_cli():
    assert cli_reference.current(README) == cli_reference.render(), (
        "README.md's command reference is stale: run .venv/bin/python tools/cli_reference.py")


@pytest.mark.parametrize("old, new", sorted(ALIASES.items()))
def test_old_command_names_still_work(old, new):
    from click.testing import CliRunner

    old_help = CliRunner().invoke(main, [old, "--help"])
    assert old_help.exit_code == 0 and old_help.output.replace(old, new, 1) == \
        CliRunner().invoke(main, [new, "--help"]).output


def _public(module):
    """(qualified name, object) of the public functions, classes and methods defined in it."""
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            yield f"{module.__name__}.{name}", obj
        elif inspect.isclass(obj):
            yield f"{module.__name__}.{name}", obj
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                func = getattr(member, "__func__", member)
                func = func.fget if isinstance(func, property) else func
                if inspect.isfunction(func):
                    yield f"{module.__name__}.{name}.{attr}", func


def _runtime_public():
    found = []
    for name in RUNTIME:
        try:
            module = importlib.import_module(name)
        except ImportError:  # an optional engine's dependency (pyarrow, ray, pyspark) is missing
            continue
        found += list(_public(module))
    return found


def test_every_public_function_has_a_docstring():
    public = _runtime_public()
    assert len(public) > 100  # the walk found the runtime
    missing = [name for name, obj in public if not _documented(obj)]
    assert not missing, "no docstring: " + ", ".join(missing)


def _documented(obj) -> bool:
    """A docstring of its own: not inherited, not the signature that dataclasses and
    NamedTuples write when there is none."""
    doc = (obj.__doc__ or "").strip()
    return bool(doc) and not (inspect.isclass(obj) and doc.startswith(obj.__name__ + "("))
