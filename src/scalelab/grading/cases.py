"""The grading-case runner: prove that each exercise gives the right points to right and wrong answers.

A case file ``autograder/cases/<assignment>/<notebook>.toml`` lists cases (format in
autograder/README.md). Each case replaces one or more answer cells and states the points it expects
for the test cells it affects; every other test cell must keep its full points.

Running a whole notebook per case would cost minutes per notebook, so the runner starts from a
kernel in which the solution has run once (down to its last test cell), then for each case runs the
replacement answers, re-runs the test cells that can see them (below), scores them as nbgrader
does, and puts the solution's answers back. That kernel is either its own (``LiveNotebook``, for
``make cases``: it skips the demonstration cells, as grading does) or the one in which nbval has
just run the whole solution in ``make test`` (``LiveNotebook.attached``), so the suite runs each
solution once for both checks.

Which test cells a case re-runs: those of the exercises it replaces, and every later test cell that
reads a name the replaced cells bind, directly or through other cells that read such a name (a
later answer calling an earlier one). The names come from each cell's syntax tree; a cell that
can't be parsed makes the case re-run every later test cell, as before. A name a cell binds before
it reads it (a test cell's own ``_got``) is the cell's own, not a read of what another cell left.
Every other test cell keeps the solution's points: it never reads what the case changed. Cells that
are not answers or tests are not re-run: test cells should call the student's functions rather than
read variables computed by worked-example cells.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import symtable
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from jupyter_client import KernelManager
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbformat import NotebookNode

from scalelab.grading import course
from scalelab.grading.cells import is_answer, is_demonstration, is_test, nbgrader_meta

KINDS = ("wrong", "alternative")


@dataclass
class Case:
    name: str
    kind: str  # "wrong": a plausible mistake that must lose points; "alternative": another right answer
    answers: dict[str, str]  # answer-cell grade_id -> replacement source
    expect: dict[str, float]  # test-cell grade_id -> points; unlisted test cells expect full points
    why: str = ""


@dataclass
class CaseResult:
    case: Case
    expected: dict[str, float]
    actual: dict[str, float]
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and self.expected == self.actual

    def describe(self) -> str:
        diffs = [f"{g}: expected {self.expected[g]:g}, got {self.actual.get(g, float('nan')):g}"
                 for g in self.expected if self.expected[g] != self.actual.get(g)]
        return f"case {self.case.name!r} ({self.case.kind}): " + "; ".join(self.errors + diffs)


def cases_file(notebook: Path) -> Path:
    return course.root() / "autograder" / "cases" / notebook.parent.name / f"{notebook.stem}.toml"


def load_cases(path: Path) -> list[Case]:
    """Read and check a case file; errors name the case and the field."""
    data = tomllib.loads(path.read_text())
    cases = []
    for i, raw in enumerate(data.get("case", [])):
        name = raw.get("name", f"#{i + 1}")
        if raw.get("kind") not in KINDS:
            raise ValueError(f"{path}: case {name!r}: kind must be one of {KINDS}, got {raw.get('kind')!r}")
        if not raw.get("answers"):
            raise ValueError(f"{path}: case {name!r}: [case.answers] must replace at least one answer cell")
        cases.append(Case(name, raw["kind"], dict(raw["answers"]),
                          {k: float(v) for k, v in raw.get("expect", {}).items()}, raw.get("why", "")))
    return cases


def score(cell: NotebookNode) -> float:
    """nbgrader's points for an executed test cell, after the course's DemoteStderr step."""
    from nbgrader.utils import determine_grade

    from scalelab.grading.preprocessors import DemoteStderr

    scored, _ = DemoteStderr().preprocess_cell(copy.deepcopy(cell), {}, 0)
    points, _ = determine_grade(scored)
    return float(points)


def exercises(notebook: NotebookNode) -> dict[str, list[str]]:
    """answer grade_id -> the test cells below it, up to the next answer cell."""
    mapping: dict[str, list[str]] = {}
    current = None
    for cell in notebook.cells:
        if is_answer(cell):
            current = nbgrader_meta(cell)["grade_id"]
            mapping[current] = []
        elif is_test(cell) and current is not None:
            mapping[current].append(nbgrader_meta(cell)["grade_id"])
    return mapping


# cell magics whose body never runs as Python in the kernel, so it binds and reads no kernel names
OUTSIDE_THE_KERNEL = {"writefile", "mpirun", "bash", "sh", "html", "markdown", "latex", "javascript"}


@dataclass
class CellNames:
    """The module-level names a cell binds, reads at module level, and reads anywhere (as globals)."""

    bound: set[str]
    top_level_reads: set[str]
    read: set[str]


def _scopes(table: symtable.SymbolTable):
    for child in table.get_children():
        yield child
        yield from _scopes(child)


def cell_names(source: str) -> CellNames | None:
    """What a code cell binds and reads as globals, from Python's own scope analysis; None if unparsable.

    A parameter or local variable of a function is not a global: ``def f(p): return p`` reads no ``p``;
    nor is a name the cell surely binds before reading it: ``_got = f(); check(_got)`` reads no ``_got``.
    """
    from IPython.core.inputtransformer2 import TransformerManager

    magic = source.lstrip().startswith("%%") and source.lstrip()[2:].split(None, 1)[0]
    if magic and magic not in OUTSIDE_THE_KERNEL:
        return None  # e.g. %%time: the body runs in the kernel, but the parser sees only a string
    python = TransformerManager().transform_cell(source)
    try:
        top = symtable.symtable(python, "<cell>", "exec")
    except SyntaxError:
        return None
    symbols = top.get_symbols()
    bound = {s.get_name() for s in symbols if s.is_assigned() or s.is_imported() or s.is_namespace()}
    top_level_reads = {s.get_name() for s in symbols if s.is_referenced()}
    read = set(top_level_reads)
    for scope in _scopes(top):
        for symbol in scope.get_symbols():
            if symbol.is_global() and symbol.is_referenced():
                read.add(symbol.get_name())
            if symbol.is_declared_global() and symbol.is_assigned():
                bound.add(symbol.get_name())
    tree = ast.parse(python)
    early = _read_before_bound(tree.body, set())
    own, reread = bound - early, bound & early  # `x += 1` reads x, though symtable says only "assigned"
    inner = _comprehension_only_names(tree)  # Python 3.12 lists them as the module's (PEP 709)
    return CellNames(bound - inner, ((top_level_reads - own) | reread) - inner, ((read - own) | reread) - inner)


_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _comprehension_only_names(tree: ast.AST) -> set[str]:
    """Names bound as a comprehension's loop variable and used nowhere outside comprehensions."""
    targets, outside, todo = set(), set(), [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, _COMPREHENSIONS):
            for generator in node.generators:
                targets |= {n.id for n in ast.walk(generator.target) if isinstance(n, ast.Name)}
            todo.extend(n for n in ast.walk(node) if n is not node and isinstance(n, _COMPREHENSIONS))
            continue
        if isinstance(node, ast.Name):
            outside.add(node.id)
        todo.extend(ast.iter_child_nodes(node))
    return targets - outside


def _loads(node: ast.AST) -> set[str]:
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
        names.add(node.target.id)  # `x += 1` reads x first
    return names


def _stores(node: ast.AST) -> set[str]:
    """Module-level names a simple statement binds (not those inside the functions or classes it defines)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    names, todo = set(), [node]
    while todo:
        current = todo.pop()
        if isinstance(current, ast.Name) and isinstance(current.ctx, ast.Store):
            names.add(current.id)
        elif not isinstance(current, (ast.Lambda, *_COMPREHENSIONS)):
            todo.extend(ast.iter_child_nodes(current))
    return names


def _read_before_bound(statements: list[ast.stmt], bound: set[str]) -> set[str]:
    """Names the statements may read before they bind them, in execution order; `bound` grows with
    what is surely bound. Bodies that may not run (loops, branches, try) bind nothing for what follows;
    a function reads its globals where it is defined."""
    early: set[str] = set()
    for stmt in statements:
        if isinstance(stmt, (ast.For, ast.AsyncFor)):
            early |= _loads(stmt.iter) - bound
            early |= _read_before_bound(stmt.body, bound | _stores(stmt.target))
            early |= _read_before_bound(stmt.orelse, set(bound))
        elif isinstance(stmt, (ast.While, ast.If)):
            early |= _loads(stmt.test) - bound
            early |= _read_before_bound(stmt.body, set(bound)) | _read_before_bound(stmt.orelse, set(bound))
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                early |= _loads(item.context_expr) - bound
                if item.optional_vars is not None:
                    bound |= _stores(item.optional_vars)
            early |= _read_before_bound(stmt.body, bound)
        elif isinstance(stmt, ast.Try):
            for block in (stmt.body, *(h.body for h in stmt.handlers), stmt.orelse, stmt.finalbody):
                early |= _read_before_bound(block, set(bound))
        else:  # a simple statement (or match, …): reads first, then binds
            early |= _loads(stmt) - bound
            bound |= _stores(stmt)
    return early


def tests_to_rerun(notebook: NotebookNode, replaced: dict[int, str]) -> list[int]:
    """Indices of the test cells a case must re-run; `replaced` maps answer cell index -> new source.

    A name is touched when a replaced cell (its solution or its replacement) binds it or, at module
    level, reads it (it may change the object in place); then any cell that reads a touched name
    touches what it binds, until nothing changes. A later test cell re-runs when it reads a touched
    name or tests a replaced answer.
    """
    first = min(replaced)
    cells = [(i, c) for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
    later_tests = [i for i, c in cells if i > first and is_test(c)]
    parsed = {i: cell_names(c.source) for i, c in cells}
    touched: set[str] = set()
    for index, source in replaced.items():
        for names in (parsed[index], cell_names(source)):
            if names is None:
                return later_tests
            touched |= names.bound | names.top_level_reads
    if any(names is None for names in parsed.values()):
        return later_tests
    changed = True
    while changed:
        changed = False
        for i, names in parsed.items():
            if i not in replaced and names.read & touched and not names.bound <= touched:
                touched |= names.bound
                changed = True
    own = set()  # the test cells below each replaced answer, up to the next answer
    for j in replaced:
        for k in range(j + 1, len(notebook.cells)):
            if is_answer(notebook.cells[k]):
                break
            own.add(k)
    return [i for i in later_tests if i in own or parsed[i].read & touched]


def cells_grading_needs(notebook: NotebookNode) -> set[int]:
    """Code cells that grading must run: answers, tests, the untagged cells after the last test (closing
    cells that stop engines and remove scratch folders), cells that can't be parsed, and every cell that
    binds a name one of those reads further down, directly or through other such cells. Any other cell
    (a worked example, a timing loop) may carry the demonstration tag."""
    code = {i: c for i, c in enumerate(notebook.cells) if c.cell_type == "code"}
    names = {i: cell_names(c.source) for i, c in code.items()}
    last_test = max((i for i, c in code.items() if is_test(c)), default=len(notebook.cells))
    needed = {i for i, c in code.items() if is_answer(c) or is_test(c)
              or (not is_demonstration(c) and (i > last_test or names[i] is None))}
    changed = True
    while changed:
        changed = False
        for i in code.keys() - needed:  # a cell can only give names to the cells below it
            later_reads = set().union(*(names[j].read for j in needed if j > i and names[j] is not None))
            if names[i] is None or names[i].bound & later_reads:
                needed.add(i)
                changed = True
    return needed


def _test_cells_binding_shared_names(notebook: NotebookNode) -> set[int]:
    """Test cells that bind a name another cell reads (a table a later check uses), or can't be parsed."""
    names = {i: cell_names(c.source) for i, c in enumerate(notebook.cells) if c.cell_type == "code"}
    binders = set()
    for i, own in names.items():
        if is_test(notebook.cells[i]):
            others = set().union(*(n.read for j, n in names.items() if j != i and n is not None))
            if own is None or own.bound & others:
                binders.add(i)
    return binders


class LiveNotebook:
    """A solution notebook executed once in a kernel that stays up for the cases."""

    def __init__(self, path: Path, timeout: int = 300):
        self.path = path
        self.notebook = nbformat.read(path, as_version=4)  # pristine: nbclient replaces executed cells
        self.client = NotebookClient(
            copy.deepcopy(self.notebook), timeout=timeout, allow_errors=True,
            resources={"metadata": {"path": str(path.parent)}},
        )
        metas = [nbgrader_meta(c) for c in self.notebook.cells]
        self.index = {m["grade_id"]: i for i, m in enumerate(metas) if m.get("grade_id")}
        self.tests = [i for i, c in enumerate(self.notebook.cells) if is_test(c)]
        self.solution_points: dict[str, float] = {}
        self.full_points = {metas[i]["grade_id"]: float(metas[i]["points"]) for i in self.tests}
        self.cell_errors: list[str] = []
        self.shared_binders = _test_cells_binding_shared_names(self.notebook)

    def __enter__(self) -> LiveNotebook:
        self._kernel = self.client.setup_kernel()
        self._kernel.__enter__()
        self._execute(range(0, self.tests[-1] + 1 if self.tests else len(self.notebook.cells)))
        self._score_solution()
        return self

    @classmethod
    @contextlib.contextmanager
    def attached(cls, path: Path, km: KernelManager, outputs: dict[int, list],
                 timeout: int = 300) -> Iterator[LiveNotebook]:
        """The notebook in a kernel that has already run its solution, e.g. nbval's in `make test`.

        `outputs` maps the index of each cell that ran to what it output; the kernel keeps running
        afterwards (its owner runs the closing cells and shuts it down).
        """
        live = cls(path, timeout)
        for index, cell_outputs in outputs.items():
            live.client.nb.cells[index].outputs = cell_outputs
            if any(o.get("output_type") == "error" for o in cell_outputs):
                live.cell_errors.append(f"cell {index}: an error (see its own test)")
        live.cell_errors += [f"cell {i}: did not run" for i in live.tests if i not in outputs]
        live.client.km = km
        run_sync(live._connect)(km.get_connection_info())
        try:
            live._score_solution()
            yield live
        finally:
            live.client.kc.stop_channels()

    async def _connect(self, connection_info: dict) -> None:
        """A second client of a running kernel; nbclient drives it like a kernel of its own."""
        client = AsyncKernelClient()
        client.load_connection_info(connection_info)
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        self.client.kc = client

    def _score_solution(self) -> None:
        executed = self.client.nb.cells
        self.solution_points = {nbgrader_meta(executed[i])["grade_id"]: score(executed[i]) for i in self.tests}

    def _execute(self, indices) -> None:
        for i in indices:
            cell = self.client.nb.cells[i]
            if cell.cell_type == "code" and not is_demonstration(cell):  # as nbgrader grades it
                self.client.execute_cell(cell, i)
                error = next((o for o in cell.outputs if o.output_type == "error"), None)
                if error is not None:
                    self.cell_errors.append(f"cell {i}: {error.ename}: {error.evalue}")

    def finish(self) -> None:
        """Run the cells below the last test cell (the closing cells that stop Spark or Dask)."""
        if self.tests:
            self._execute(range(self.tests[-1] + 1, len(self.notebook.cells)))

    def __exit__(self, *exc) -> None:
        self._kernel.__exit__(*exc)

    def printed(self) -> str:
        """Everything the executed cells printed (stdout and stderr streams), in notebook order."""
        return "".join(o.get("text", "") for c in self.client.nb.cells for o in c.get("outputs", []))

    def _run(self, source: str, index: int) -> NotebookNode:
        cell = nbformat.v4.new_code_cell(source)
        self.client.execute_cell(cell, index)
        return cell

    def run_case(self, case: Case) -> CaseResult:
        errors = [f"no answer cell {g!r}" for g in case.answers if g not in self.index
                  or not is_answer(self.notebook.cells[self.index[g]])]
        unknown = [g for g in case.expect if g not in self.full_points]
        errors += [f"no test cell {g!r} in expect" for g in unknown]
        expected = {**self.full_points, **{g: p for g, p in case.expect.items() if g not in unknown}}
        if errors:
            return CaseResult(case, expected, {}, errors)
        rerun = tests_to_rerun(self.notebook, {self.index[g]: source for g, source in case.answers.items()})
        for grade_id, source in case.answers.items():
            self._run(source, self.index[grade_id])
        actual = dict(self.solution_points)
        for i in rerun:
            cell = copy.deepcopy(self.notebook.cells[i])
            self.client.execute_cell(cell, i)
            actual[nbgrader_meta(cell)["grade_id"]] = score(cell)
        for grade_id in case.answers:  # put the solution back for the next case
            restored = self._run(self.notebook.cells[self.index[grade_id]].source, self.index[grade_id])
            if any(o.output_type == "error" for o in restored.outputs):
                errors.append(f"restoring the solution of {grade_id!r} failed after this case")
        for i in rerun:  # a test cell that binds what other cells read gets its solution-time value back
            if i in self.shared_binders:
                self._run(self.notebook.cells[i].source, i)
        return CaseResult(case, expected, actual, errors)


def run_cases(notebook_path: Path, cases: list[Case] | None = None, timeout: int = 300):
    """Execute the solution once and run every case; returns (live notebook summary, results)."""
    cases = load_cases(cases_file(notebook_path)) if cases is None else cases
    with LiveNotebook(notebook_path, timeout) as live:
        results = [live.run_case(case) for case in cases]
        live.finish()
    return live, results
