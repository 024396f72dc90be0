"""The package's layering, read from the source with ``ast`` (issue 20 §1, §8, acceptance 1).

Three rules, checked on every module of ``stages`` and ``threedgp_cli`` (every ``import`` statement, including the
lazy ones inside functions):

1. **Stages stand side by side.** A stage package (``stages.prep``, ``stages.train``, ``stages.eval``,
   ``stages.export``, ``stages.demo``, ``stages.doctor``) imports only itself and the shared layers
   (``stages.data``, ``stages.nn``, ``stages.metrics``, ``stages.ops``, ``stages.common``), never another stage.
2. **``stages.common`` is the floor.** It imports no other ``stages`` package.
3. **No private reach-ins.** No module imports a private name (``_x``, not a dunder) defined in another module,
   neither as ``from m import _x`` nor as an attribute of an imported module (``m._x``, ``pkg._mod._state``).
   A private *module* (``stages.ops._build``, ``stages.ops._impl``, ...) is package-internal by decision: modules
   of the package that holds it may import it and use its public names; modules elsewhere may not import it at all.
   Only first-party names count (``torch._C`` is torch's business).

On the tree before issue 20 (commit 9eb18c0) these rules found, among others: ``stages.eval.image_sets`` importing
``stages.prep.sources.folder``, ``stages.prep.decode`` and the private ``stages.prep.sources.units._zip_bytes``;
``stages.export.pipeline`` importing ``stages.eval`` (``snapshots``, ``resolve_device``); ``stages.ops.selfcheck``
reading ``stages.ops._build._state``; ``stages.export.report`` importing ``_esc`` from ``svg_plot``; and
``stages.prep.toy.simple`` importing ``_hsv``, ``_rot_x``, ... from ``stages.prep.toy.sampling``. The tree this test
arrived on also had ``stages.common.checkpoint`` importing ``stages.nn.config`` and ``stages.nn.build`` lazily (the
model checks, now :mod:`stages.nn.checkpoints`). Tests are not scanned: white-box tests may reach into privates.
:func:`find_violations` takes the source root, so the same check can be pointed at an old checkout
(``git archive 9eb18c0 stages threedgp_cli | tar -x -C /tmp/old``, then ``find_violations(Path("/tmp/old"))``).
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("stages", "threedgp_cli")
STAGES = ("prep", "train", "eval", "export", "demo", "doctor")
SHARED = ("data", "nn", "metrics", "ops", "common")


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(root: Path, dotted: str) -> bool:
    """Whether ``dotted`` names a first-party module or package under ``root``."""
    base = root.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module that ``from <node.module> import ...`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _first_party(dotted: str) -> bool:
    return dotted.split(".")[0] in PACKAGES


def _imports(tree: ast.AST, module: str, is_package: bool, root: Path) -> Iterator[tuple[int, str, dict]]:
    """(line, imported dotted name, bindings) for every import; names imported ``from`` a module are
    ``module.name``. ``bindings`` maps local names bound to first-party modules to their dotted names."""
    bindings: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bindings[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    bindings[top] = top
                yield node.lineno, alias.name, bindings
        elif isinstance(node, ast.ImportFrom):
            source = _resolve_from(module, is_package, node)
            for alias in node.names:
                target = f"{source}.{alias.name}"
                if _is_module(root, target):
                    bindings[alias.asname or alias.name] = target
                yield node.lineno, target, bindings


def _private_parts(root: Path, dotted: str) -> tuple[str | None, str | None]:
    """(the innermost private module on the path, the first private non-module name) of a first-party dotted name."""
    parts = dotted.split(".")
    private_module = None
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if _is_module(root, prefix):
            if _is_private(parts[i - 1]):
                private_module = prefix
            continue
        return private_module, (prefix if _is_private(parts[i - 1]) else None)
    return private_module, None


def _attribute_chains(tree: ast.AST, bindings: dict[str, str]) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of ``a.b.c`` attribute chains rooted at a name bound to a first-party module."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        attrs, base = [], node
        while isinstance(base, ast.Attribute):
            attrs.append(base.attr)
            base = base.value
        if isinstance(base, ast.Name) and base.id in bindings:
            yield node.lineno, ".".join([bindings[base.id], *reversed(attrs)])


def _check_name(root: Path, module: str, line: int, dotted: str) -> Iterator[str]:
    """The private-name rule (3) for one first-party dotted name used by ``module``."""
    private_module, private_name = _private_parts(root, dotted)
    if private_module is not None:
        owner = private_module.rsplit(".", 1)[0]
        if module != owner and not module.startswith(owner + "."):
            yield f"{module}:{line}: imports the private module {private_module} from outside {owner}"
    if private_name is not None and private_name.rsplit(".", 1)[0] != module:
        yield f"{module}:{line}: uses the private name {private_name}"


def _check_layer(module: str, line: int, dotted: str) -> Iterator[str]:
    """Rules 1 and 2 for one import of ``module``."""
    parts, mine = dotted.split("."), module.split(".")
    if parts[0] != "stages" or mine[0] != "stages" or len(parts) < 2 or len(mine) < 2:
        return
    if mine[1] in STAGES and parts[1] in STAGES and parts[1] != mine[1]:
        yield f"{module}:{line}: stage {mine[1]} imports stage {dotted}"
    if mine[1] == "common" and parts[1] != "common":
        yield f"{module}:{line}: stages.common imports {dotted}, which is above it"


def module_violations(root: Path, path: Path) -> list[str]:
    """Every rule broken by the module at ``path`` (one line each, ``module:line: what``)."""
    module = _module_name(root, path)
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[str] = []
    bindings: dict[str, str] = {}
    for line, dotted, bindings in _imports(tree, module, path.name == "__init__.py", root):
        found.extend(_check_layer(module, line, dotted))
        if _first_party(dotted):
            found.extend(_check_name(root, module, line, dotted))
    for line, dotted in _attribute_chains(tree, bindings):
        found.extend(_check_name(root, module, line, dotted))
    return sorted(set(found))


def find_violations(root: Path = ROOT) -> list[str]:
    """Every rule broken by any module of ``PACKAGES`` under ``root``."""
    found: list[str] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            found.extend(module_violations(root, path))
    return found


def test_no_layering_violations():
    assert find_violations() == []


def test_the_checker_sees_each_rule(tmp_path):
    """Each rule fires on a small tree that breaks it (so an empty result above is not a blind checker)."""
    files = {
        "stages/__init__.py": "",
        "stages/common/__init__.py": "",
        "stages/common/bad.py": "def f():\n    from stages.nn import layers\n",
        "stages/nn/__init__.py": "",
        "stages/nn/layers.py": "_secret = 1\n",
        "stages/ops/__init__.py": "",
        "stages/ops/_build.py": "_state = {}\n",
        "stages/ops/selfcheck.py": "from stages.ops import _build\nx = _build._state\n",
        "stages/eval/__init__.py": "from stages.prep import decode\nfrom stages.nn.layers import _secret\n",
        "stages/prep/__init__.py": "",
        "stages/prep/decode.py": "",
        "stages/export/__init__.py": "import stages.ops._build\n",
        "threedgp_cli/__init__.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = "\n".join(find_violations(tmp_path))
    assert "stages.common.bad:2: stages.common imports stages.nn.layers" in found
    assert "stages.ops.selfcheck:2: uses the private name stages.ops._build._state" in found
    assert "stages.eval:1: stage eval imports stage stages.prep.decode" in found
    assert "stages.eval:2: uses the private name stages.nn.layers._secret" in found
    assert "stages.export:1: imports the private module stages.ops._build from outside stages.ops" in found
    assert "stages.ops.selfcheck:1" not in found  # a private module inside its own package is allowed
