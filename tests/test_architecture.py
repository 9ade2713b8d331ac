"""The package layers (ARCHITECTURE.md): every import points down, the DAG imports only the top.

Parsed with ``ast`` (nothing is imported), so the check is fast and sees imports
inside functions too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# (module prefix, layer): a module may import its own package or any lower layer.
LAYERS = (
    ("encore.core", 0),
    ("validations", 1),
    ("encore.ingest", 2),
    ("spark_jobs", 3),
    ("encore.features", 3),
    ("training", 4),
    ("encore.nightly", 5),
    ("encore.deploy", 6),
    ("benchmarks", 7),
    ("encore.cli", 7),
)
OWN = tuple(prefix for prefix, _ in LAYERS)


def layer_of(module: str) -> tuple[str, int] | None:
    for prefix, layer in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return prefix, layer
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from encore.core import lake" imports encore.core.lake
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def package_files() -> list[Path]:
    files = []
    for top in ("encore", "spark_jobs", "training", "validations", "benchmarks"):
        files += sorted((ROOT / top).rglob("*.py"))
    return files


def upward_imports() -> list[str]:
    problems = []
    for path in package_files():
        module = module_name(path)
        own = layer_of(module)
        if own is None:
            if module not in ("encore", "encore.__main__"):
                problems.append(f"{module}: not in any layer")
            continue
        for line, target in imported_modules(path):
            theirs = layer_of(target)
            if theirs is None:
                if target.split(".")[0] in ("encore", "spark_jobs", "training", "validations", "benchmarks") \
                        and target not in ("encore", "encore.__main__"):
                    problems.append(f"{module}:{line} imports {target}, which is in no layer")
                continue
            if theirs[0] != own[0] and theirs[1] >= own[1]:
                problems.append(f"{module}:{line} ({own[0]}, layer {own[1]}) imports {target} "
                                f"({theirs[0]}, layer {theirs[1]})")
    return problems


def test_every_import_points_down():
    assert upward_imports() == []


def test_the_dag_imports_only_the_top():
    targets = [t for _, t in imported_modules(ROOT / "dags" / "encore_nightly.py") if t.split(".")[0] in
               ("encore", "spark_jobs", "training", "validations", "benchmarks")]
    assert targets and all(t.startswith("encore.nightly.") for t in targets), targets


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The checker itself: a core module importing training is reported."""
    fake = tmp_path / "encore" / "core"
    fake.mkdir(parents=True)
    bad = fake / "bad.py"
    bad.write_text("def f():\n    from training.train import train_model\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    problems = upward_imports()
    assert any("encore.core.bad:2" in p and "training.train.train_model" in p for p in problems)


@pytest.mark.parametrize("module", ["encore.core.config", "encore.core.lake", "encore.core.warehouse", "training.train"])
def test_core_and_training_do_not_load_pyspark(module):
    """The core and training never pull in PySpark themselves (Great Expectations and MLflow
    import it when installed, so the stages that use them are not checked here)."""
    code = f"import sys, {module}; print('pyspark' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
