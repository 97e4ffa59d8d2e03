"""Code that could change how the grader's cells run, found in the text of a submission before it runs.

A kernel runs the student's code, so nothing the kernel reports can prove by itself that a test cell ran
as the grader wrote it: an IPython input transformer registered in an answer cell sees (and can rewrite)
every later cell, secret lines included. What the grader can decide outside the kernel is which code
gets to run at all. Before a notebook runs, every code cell the student could have written (answer
cells, cells they added, given cells they changed) is read as Python, IPython's magics turned into the
calls IPython makes, and a cell is not run if it could:

* reach IPython's machinery or the interpreter's (``get_ipython`` beyond the magics listed below, tracing and
  audit hooks, frames, code objects, ``gc``, ``ctypes``, ``inspect``, ``linecache``...);
* hide what it does from this reading (``exec``, ``eval``, ``compile``, ``__import__``, ``importlib``, a
  computed attribute name, unpickling, importing a module that no installed package provides: a file
  the notebook wrote);
* start other programs (a shell command, ``subprocess``, ``os.system``...), whose code this reading
  can't see;
* replace what the grader's cells use: a module's attribute (``scalelab.checks.check_equal = ...``),
  or a name that the given cells define and the test cells call (``check_equal``, ``np``), unless it is
  bound again by the same import;
* make a wrong value pass a check: a class that defines ``__eq__``, ``__bool__``, ``__float__``...

Each finding names the rule and the code. The grader runs such a cell as a comment saying why (the
``SkipRiskyCells`` preprocessor), flags the submission in grades.csv, and the tests that needed the cell
fail as if it were missing. Nothing in the course's solutions, labs and grading cases matches
(tests/test_scan.py reads them all). This reading is a tripwire set outside the kernel, not a proof:
autograder/README.md, "Verdicts", says what it can't see.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import sys

import nbformat

from scalelab.grading.cells import is_test, label, nbgrader_meta

# Magics a cell may use. The code of those that run it in the kernel is read like the cell's own; in
# other processes (a .py file written, an MPI run) only what could reach the kernel's memory counts.
KERNEL_CODE_MAGICS = {"time", "timeit", "capture", "prun"}
OTHER_PROCESS_MAGICS = {"writefile", "mpirun"}
HARMLESS_MAGICS = {"matplotlib", "who", "whos", "who_ls", "pwd", "env", "precision", "pprint", "html", "markdown",
                   "latex", "svg"}
PLAIN_MAGICS = KERNEL_CODE_MAGICS | OTHER_PROCESS_MAGICS | HARMLESS_MAGICS
RISKY_NAMES = {
    "get_ipython": "reaches IPython's machinery",
    "exec": "runs code built at run time",
    "eval": "runs code built at run time",
    "compile": "builds code at run time",
    "__import__": "imports by a computed name",
    "globals": "reaches the notebook's namespace as a dictionary",
    "vars": "reaches a namespace as a dictionary",
    "breakpoint": "starts a debugger",
    "__module__": "disguises where a class was made",
    "__qualname__": "disguises where a class was made",
    "__builtins__": "changes Python's built-in functions",
}
RISKY_MODULES = {
    "IPython": "reaches IPython's machinery", "ipykernel": "reaches the kernel's machinery",
    "ctypes": "reaches the interpreter's memory", "cffi": "reaches the interpreter's memory",
    "gc": "reaches every object in the interpreter", "inspect": "reads frames and source code",
    "linecache": "reads the source of running cells", "traceback": "reads frames and source code",
    "importlib": "imports by a computed name", "runpy": "runs code from a file",
    "builtins": "changes Python's built-in functions", "code": "runs code built at run time",
    "codeop": "builds code at run time",
    "pickle": "unpickling runs code", "_pickle": "unpickling runs code", "marshal": "loads code objects",
    "dill": "unpickling runs code", "cloudpickle": "unpickling runs code", "shelve": "unpickling runs code",
    "subprocess": "starts other programs", "pty": "starts other programs", "unittest": "patches objects",
    "sitecustomize": "changes how Python starts", "pdb": "starts a debugger", "bdb": "traces execution",
}
RISKY_ATTRIBUTES = {
    "input_transformers_cleanup", "input_transformers_post", "ast_transformers", "set_custom_exc",
    "register_magic_function", "run_cell", "run_cell_async", "transform_cell", "settrace", "setprofile",
    "excepthook", "displayhook", "addaudithook", "_getframe", "modules", "meta_path", "path_hooks",
    "f_back", "f_globals", "f_locals", "f_code", "f_builtins", "tb_frame", "tb_next", "gi_frame",
    "gi_code", "cr_frame", "ag_frame", "co_consts", "co_code", "co_names", "__code__", "__globals__",
    "__closure__", "__builtins__", "__subclasses__", "__dict__", "__getattribute__", "__setattr__",
    "__delattr__", "__import__", "__loader__", "__traceback__", "__module__", "__qualname__",
    "read_pickle", "system", "popen", "execv", "execve", "execvp", "execvpe", "execl",
    "execle", "execlp", "execlpe", "spawnv", "spawnve", "spawnvp", "spawnl", "spawnle", "posix_spawn",
    "posix_spawnp", "CodeType", "FunctionType", "LambdaType", "MethodType", "ModuleType",
}
# Special methods a class made in the notebook could use to pass a check with a wrong value (a list whose
# __eq__ says True to anything); dataclasses and named tuples make their own, which compare honestly.
LYING_METHODS = {
    "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__len__", "__float__", "__int__",
    "__index__", "__abs__", "__sub__", "__rsub__", "__round__", "__hash__", "__contains__", "__getattr__",
    "__instancecheck__", "__subclasscheck__", "__array__", "__array_ufunc__", "__array_function__",
    "__array_priority__", "__class__",
}
# Attribute names that only a trick spells out in a string (a class made by type(name, bases, methods)):
# the special ones, and the hooks; not words such as "system" that a string holds for other reasons.
NAMED_IN_STRINGS = {name for name in LYING_METHODS | RISKY_ATTRIBUTES if name.startswith("_")} | {
    "input_transformers_cleanup", "input_transformers_post", "ast_transformers", "settrace", "setprofile",
    "excepthook", "f_back", "f_globals", "f_locals", "tb_frame", "co_code", "co_consts"}
ATTRIBUTE_FUNCTIONS = {"getattr", "setattr", "delattr", "hasattr"}


@functools.cache
def _installed(module: str) -> bool:
    """A module this Python finds without the notebook's folder: the standard library or a package."""
    if module in sys.builtin_module_names or module in sys.stdlib_module_names:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _python(source: str) -> ast.Module | None:
    """The cell as the Python IPython runs (magics become calls); None if it isn't valid Python."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return ast.parse(TransformerManager().transform_cell(source))
    except (SyntaxError, ValueError):
        return None  # it fails when it runs, before doing anything


def _magic(node: ast.Call) -> tuple[str, list[ast.expr]] | None:
    """`get_ipython().run_cell_magic(name, ...)` or `run_line_magic(name, ...)`: (name, arguments)."""
    func = node.func
    if (isinstance(func, ast.Attribute) and func.attr in {"run_cell_magic", "run_line_magic", "system",
                                                           "getoutput"}
            and isinstance(func.value, ast.Call) and isinstance(func.value.func, ast.Name)
            and func.value.func.id == "get_ipython" and not func.value.args):
        if func.attr in {"system", "getoutput"}:
            return "!", node.args
        if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            return node.args[0].value, node.args[1:]
    return None


def _text(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _root(node: ast.expr) -> str | None:
    """`a` of `a.b.c`."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _imports(tree: ast.AST) -> dict[str, str]:
    """Name -> what the module-level imports bind it to ("numpy", "scalelab.checks.check_equal")."""
    bound = {}
    for node in tree.body if isinstance(tree, ast.Module) else []:
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                bound[name] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return bound


def _bound_names(tree: ast.Module) -> set[str]:
    """Names a cell binds in the notebook's namespace: at module level, or declared global."""
    names = set(_imports(tree))
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            names.update(node.names)
    top_level = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    for statement in top_level:
        for node in ast.walk(statement):
            if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                names.add(node.id)
    return names


def _findings(tree: ast.Module, protected: dict[str, str], given_imports: dict[str, str]) -> list[str]:
    found: list[str] = []

    def say(node: ast.AST, why: str) -> None:
        found.append(f"line {getattr(node, 'lineno', '?')}: {why}")

    magic_names = set()  # the `get_ipython` of each magic's call
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (magic := _magic(node)):
            name, arguments = magic
            magic_names.add(id(node.func.value.func))
            if name == "!":
                say(node, "runs a shell command")
            elif name not in PLAIN_MAGICS:
                say(node, f"uses the magic %{name}")
            elif name not in HARMLESS_MAGICS:  # the code it runs, or the Python file it writes, is read too
                code = [_text(a) for a in arguments]  # [line] for %magic, [line, cell] for %%magic
                body = code[-1] if name != "writefile" or (code[0] or "").strip().endswith(".py") else None
                inner = _python(body) if body else None
                if inner and name in OTHER_PROCESS_MAGICS:  # runs in other processes: only what reaches ours
                    found += [f"in %{name}: line {n.lineno}: reaches the interpreter's memory"
                              for n in ast.walk(inner) if isinstance(n, (ast.Import, ast.ImportFrom))
                              and {(a.name if isinstance(n, ast.Import) else n.module or "").split(".")[0]
                                   for a in n.names} & {"ctypes", "cffi"}]
                elif inner:
                    found += [f"in %{name}: {f}" for f in _findings(inner, protected, given_imports)]
    imported = {**given_imports, **_imports(tree)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                names = [item.name] if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) else [
                    t.id for t in getattr(item, "targets", [getattr(item, "target", None)]) if isinstance(t, ast.Name)]
                for name in set(names) & LYING_METHODS:
                    say(item, f"gives a class {name}, which could make a wrong value pass a check")
        elif isinstance(node, ast.Attribute) and node.attr in LYING_METHODS:
            say(node, f"reaches {node.attr}, which could make a wrong value pass a check")
        elif isinstance(node, ast.Constant) and node.value in NAMED_IN_STRINGS:
            say(node, f"names {node.value} in a string")
        if isinstance(node, ast.Name) and node.id in RISKY_NAMES:
            if id(node) not in magic_names:
                say(node, f"{RISKY_NAMES[node.id]} ({node.id})")
        elif isinstance(node, ast.Attribute) and node.attr in RISKY_ATTRIBUTES:
            say(node, f"reaches Python's or IPython's machinery (.{node.attr})")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                top = module.split(".")[0]
                if isinstance(node, ast.ImportFrom) and node.level:
                    say(node, "imports a module from the notebook's folder")
                elif top in RISKY_MODULES:
                    say(node, f"{RISKY_MODULES[top]} (imports {module})")
                elif isinstance(node, ast.ImportFrom) and any(a.name in RISKY_ATTRIBUTES for a in node.names):
                    say(node, f"reaches Python's machinery or starts programs (from {module} import ...)")
                elif not _installed(top):
                    say(node, f"imports {top}, which no installed package provides (a file written at run time?)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ATTRIBUTE_FUNCTIONS:
            name = _text(node.args[1]) if len(node.args) > 1 else None
            if name is None:
                say(node, f"names an attribute at run time ({node.func.id})")
            elif name in RISKY_ATTRIBUTES:
                say(node, f"reaches Python's or IPython's machinery ({node.func.id} {name!r})")
            elif node.func.id in {"setattr", "delattr"} and _root(node.args[0]) in imported:
                say(node, f"changes the module {imported[_root(node.args[0])]} ({node.func.id})")
        elif isinstance(node, ast.keyword) and node.arg == "allow_pickle" and not (
                isinstance(node.value, ast.Constant) and not node.value.value):
            say(node.value, "unpickling runs code (allow_pickle)")
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                for part in ast.walk(target):
                    if isinstance(part, ast.Attribute) and isinstance(part.ctx, (ast.Store, ast.Del)) \
                            and _root(part) in imported:
                        say(node, f"changes the module {imported[_root(part)]} ({ast.unparse(part)})")
    non_imports = ast.Module(body=[n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))],
                             type_ignores=[])
    bound_otherwise = _bound_names(non_imports)
    for name in sorted(_bound_names(tree) & set(protected)):
        if name in bound_otherwise or _imports(tree).get(name) != protected[name]:
            say(tree.body[0], f"replaces {name}, which the grader's test cells use")
    return found


def trusted_sources(source: nbformat.NotebookNode | None) -> set[str]:
    """The text of the cells the course gave (the source notebook's code cells that are not answers)."""
    if source is None:
        return set()
    return {c.source.strip() for c in source.cells
            if c.cell_type == "code" and not (nbgrader_meta(c).get("solution") and not is_test(c))}


def _tools(tree: ast.Module) -> dict[str, str]:
    """The names a given cell binds by import (-> what they import), def or class (-> "")."""
    tools = dict.fromkeys((n.name for n in tree.body
                           if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))), "")
    return {**tools, **_imports(tree)}


def protected_names(source: nbformat.NotebookNode) -> tuple[dict[str, str], dict[str, str]]:
    """(the grader's tools: name -> what binds it, for the functions, classes and imports that the given
    cells define and the test cells use; every import of the given cells)."""
    given_imports: dict[str, str] = {}
    tools: dict[str, str] = {}
    used: set[str] = set()
    for cell in source.cells:
        tree = _python(cell.source) if cell.cell_type == "code" else None
        if tree is None:
            continue
        if is_test(cell):
            names = [n for n in ast.walk(tree) if isinstance(n, ast.Name)]
            own = {n.id for n in names if not isinstance(n.ctx, ast.Load)}
            used |= {n.id for n in names if isinstance(n.ctx, ast.Load)} - own
        if not nbgrader_meta(cell).get("solution"):
            given_imports.update(_imports(tree))
            tools.update(_tools(tree))
    return {name: how for name, how in tools.items() if name in used}, given_imports


def _restored(notebook: nbformat.NotebookNode) -> set[str]:
    """Grade ids of the cells nbgrader puts back from the source before grading: tests and locked cells."""
    return {nbgrader_meta(c)["grade_id"] for c in notebook.cells
            if nbgrader_meta(c).get("grade_id") and (is_test(c) or nbgrader_meta(c).get("locked"))}


def risky_cells(notebook: nbformat.NotebookNode, source: nbformat.NotebookNode | None) -> dict[int, list[str]]:
    """Cell index -> findings, for the code cells the student could have written that could change how
    the grader's cells run. Not read: the cells nbgrader restores from the source (tests, locked cells)
    and cells exactly as the course gave them. Without the source notebook, `notebook`'s own locked
    cells stand for it."""
    trusted = trusted_sources(source)
    given = source or nbformat.v4.new_notebook(cells=[c for c in notebook.cells if nbgrader_meta(c).get("locked")])
    restored = _restored(given)
    protected, given_imports = protected_names(given)
    risky = {}
    for index, cell in enumerate(notebook.cells):
        if (cell.cell_type != "code" or cell.source.strip() in trusted
                or nbgrader_meta(cell).get("grade_id") in restored):
            continue
        tree = _python(cell.source)
        findings = _findings(tree, protected, given_imports) if tree else []
        if findings:
            risky[index] = findings
    return risky


def not_run_note(findings: list[str]) -> str:
    """What a cell that is not run shows in the graded notebook and on the feedback page."""
    return "\n".join(["# Not run by the grader: this cell could change how grading runs.",
                      *(f"#   {finding}" for finding in findings),
                      "# The tests that need it fail. If your answer needs this code, ask your instructor."])


def describe(notebook: nbformat.NotebookNode, risky: dict[int, list[str]]) -> str:
    """One line for grades.csv: which cells were not run and the first reason for each."""
    parts = [f"{label(notebook.cells[index], index)} ({findings[0]})" for index, findings in risky.items()]
    return "cells not run, they could change how grading runs: " + ", ".join(parts)
