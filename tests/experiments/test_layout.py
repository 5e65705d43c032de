"""The shape of the experiments package: commands apart from the library."""

from __future__ import annotations

import ast
from pathlib import Path

import experiments

PACKAGE = Path(experiments.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    """Every module a source file imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = ".".join(("experiments", *path.relative_to(PACKAGE).parent.parts))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_nothing_outside_cli_imports_the_commands():
    sources = [p for p in PACKAGE.rglob("*.py") if "cli" not in p.relative_to(PACKAGE).parts]
    assert len(sources) > 20  # the walk found the package
    offenders = {
        str(p.relative_to(PACKAGE)): sorted(
            m for m in _imported_modules(p) if m.split(".")[:2] == ["experiments", "cli"]
        )
        for p in sources
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_every_command_is_a_module_of_cli():
    from experiments.cli import COMMANDS

    for name, (module, _) in COMMANDS.items():
        stem = name.replace("-", "_")  # ope-backtest is experiments/cli/ope_backtest.py
        assert module == f"experiments.cli.{stem}"
        assert (PACKAGE / "cli" / f"{stem}.py").is_file()


def test_no_module_is_over_600_lines_without_a_reason():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600
        and "over 600 lines" not in p.read_text(encoding="utf-8")[:3000]
    }
    assert long == {}
