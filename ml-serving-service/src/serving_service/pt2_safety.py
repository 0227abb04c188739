"""Refuse pt2 archives whose loading would unpickle or run code, before torch reads them.

`torch.export.load` (torch 2.13, `torch/export/pt2_archive/_package.py` and
`torch/_export/serde/serialize.py`) runs code from the file in these places, each refused here:
- a weights or constants payload with `"use_pickle": true`: `torch.load(weights_only=False)`;
- constants named `custom_obj_*` (torchbind pickle) or `opaque_obj_*` (`pickle.loads`);
- legacy members (`data/weights/<model>.pt`, `data/constants/<model>.pt`) and archives
  without `archive_format` = `pt2` (the pre-2.7 zip path): torch tries `weights_only=True`
  and falls back to `weights_only=False`;
- `data/aotinductor/` (a compiled shared library, loaded and run);
- the sample inputs (`data/sample_inputs/<model>.pt`, a torch.save pickle in every archive):
  torch's same fallback, so their pickle may name only tensor-rebuilding globals (checked
  opcode by opcode with `pickletools`, nothing is unpickled here);
- the graph (`models/model.json`): node targets resolve to any callable under `torch`
  (`torch.os.system` included) and run at the first forward pass, so only `torch.ops.aten`,
  `torch.ops.prims`, `math` and arithmetic operators are accepted; symbolic shapes go
  through `sympy.sympify` (which evaluates) and guards become Python code, so both must be
  plain arithmetic on shape symbols (checked on their syntax tree).
Any member this list does not name (`*.pkl` included) is refused too. The caller loads the
very bytes checked here (no second read of the file).
"""

from __future__ import annotations

import ast
import io
import json
import pickletools
import re
import zipfile
from typing import Any


class UnsafeArchive(Exception):
    """The archive asks for pickle or code; the message says which member and why."""


_MEMBERS = re.compile(
    r"archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
    r"|\.format_version|\.storage_alignment|models/model\.json"
    r"|data/weights/model_weights_config\.json|data/weights/weight_\d+"
    r"|data/constants/model_constants_config\.json|data/constants/tensor_\d+"
    r"|data/sample_inputs/model\.pt|extra/[^/]+"
)
_PAYLOAD = {"weights": re.compile(r"weight_\d+"), "constants": re.compile(r"tensor_\d+")}
_INNER = re.compile(
    r"data\.pkl|data/\d+|byteorder|version|\.format_version|\.storage_alignment"
    r"|\.data/version|\.data/serialization_id"
)
_GLOBALS = re.compile(
    r"torch\._utils _rebuild_tensor_v2|torch\._utils _rebuild_parameter"
    r"|collections OrderedDict|torch [A-Za-z0-9]*Storage"
)
_CODE_OPCODES = {"INST", "OBJ", "STACK_GLOBAL", "EXT1", "EXT2", "EXT4", "PERSID"}
_TARGET = re.compile(
    r"torch\.ops\.(aten|prims)\.\w+(\.\w+)?|math\.\w+"
    r"|_operator\.(getitem|add|sub|mul|truediv|floordiv|mod|pow|neg|eq|ne|lt|le|gt|ge|and_|or_)"
)
# Names a symbolic shape may use: sympy's constructors of torch's serialized expressions,
# torch's shape functions, and shape symbols (s0, u3, ...).
_SYMPY_CALLS = frozenset(
    re.findall(
        r"\w+",
        "Symbol Integer Rational Float Add Mul Pow Mod FloorDiv CeilDiv CleanDiv Max Min Abs "
        "Eq Ne Lt Le Gt Ge And Or Not PythonMod IntTrueDiv FloatTrueDiv ToFloat TruncToInt "
        "RoundToInt CeilToInt FloorToInt Piecewise ExprCondPair",
    )
)
_SYMBOL = re.compile(r"[a-z]+\d+")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
_GUARD_METHODS = frozenset({"size", "stride"})
_ARITHMETIC = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.Constant, ast.keyword,
    ast.operator, ast.unaryop, ast.cmpop, ast.boolop, ast.Load,
)  # fmt: skip


def check_pt2(data: bytes) -> None:
    """Raise `UnsafeArchive` unless loading `data` with torch.export.load runs no pickle/code."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnsafeArchive(f"model.pt2 is not a pt2 (zip) archive: {exc}") from exc
    root = names[0].split("/", 1)[0] if names else ""
    members = {}
    for name in names:
        prefix, _, rest = name.partition("/")
        if prefix != root or not _MEMBERS.fullmatch(rest):
            raise UnsafeArchive(f"model.pt2 holds '{name[:200]}', which torch may unpickle or run")
        members[rest] = name
    if "archive_format" not in members or archive.read(members["archive_format"]) != b"pt2":
        raise UnsafeArchive("model.pt2 has no archive_format 'pt2' (torch's legacy pickle path)")
    if "models/model.json" not in members:
        raise UnsafeArchive("model.pt2 has no models/model.json")
    for kind in _PAYLOAD:
        config_name = f"data/{kind}/model_{kind}_config.json"
        if config_name in members:
            _check_payloads(kind, _json(archive.read(members[config_name]), config_name))
    if "data/sample_inputs/model.pt" in members:
        _check_torch_save(archive.read(members["data/sample_inputs/model.pt"]))
    _check_program(_json(archive.read(members["models/model.json"]), "models/model.json"))


def _json(raw: bytes, name: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnsafeArchive(f"model.pt2's {name} is not JSON: {exc}") from exc


def _check_payloads(kind: str, config: Any) -> None:
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise UnsafeArchive(f"model.pt2's {kind} config has no 'config' object")
    for fqn, meta in entries.items():
        path = meta.get("path_name") if isinstance(meta, dict) else None
        if not isinstance(path, str) or meta.get("use_pickle") is not False:
            raise UnsafeArchive(f"model.pt2 stores {kind[:-1]} '{fqn[:100]}' as a pickle")
        if not _PAYLOAD[kind].fullmatch(path):
            raise UnsafeArchive(
                f"model.pt2 stores {kind[:-1]} '{fqn[:100]}' as '{path[:100]}' "
                "(custom or opaque objects are unpickled)"
            )


def _check_torch_save(data: bytes) -> None:
    """The sample inputs: a torch.save zip whose pickle rebuilds tensors and nothing else."""
    try:
        inner = zipfile.ZipFile(io.BytesIO(data))
        names = inner.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl")]
        for name in names:
            if not _INNER.fullmatch(name.partition("/")[2]):
                raise UnsafeArchive(f"model.pt2's sample inputs hold '{name[:200]}'")
        if len(pickles) != 1:
            raise UnsafeArchive("model.pt2's sample inputs are not one torch.save pickle")
        ops = list(pickletools.genops(inner.read(pickles[0])))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise UnsafeArchive(f"model.pt2's sample inputs are not a torch.save file: {exc}") from exc
    for opcode, arg, _ in ops:
        if opcode.name in _CODE_OPCODES:
            raise UnsafeArchive(f"model.pt2's sample inputs use pickle opcode {opcode.name}")
        if opcode.name == "GLOBAL" and not _GLOBALS.fullmatch(str(arg)):
            raise UnsafeArchive(f"model.pt2's sample inputs unpickle '{str(arg)[:100]}'")


def _check_program(program: Any) -> None:
    if not isinstance(program, dict):
        raise UnsafeArchive("model.pt2's models/model.json is not an object")
    for guard in program.get("guards_code") or []:
        _check_expression(guard, "guard", guards=True)
    for key in program.get("range_constraints") or {}:
        _check_expression(key, "symbolic shape")
    _walk(program)


def _walk(value: Any) -> None:
    if isinstance(value, dict):
        target = value.get("target")
        if isinstance(target, str) and "inputs" in value and not _TARGET.fullmatch(target):
            raise UnsafeArchive(f"model.pt2's graph calls '{target[:100]}', not a torch operator")
        expr = value.get("expr_str")
        if isinstance(expr, str):
            _check_expression(expr, "symbolic shape")
        for item in value.values():
            _walk(item)
    elif isinstance(value, list):
        for item in value:
            _walk(item)


def _check_expression(text: Any, what: str, guards: bool = False) -> None:
    """Arithmetic on shape symbols only: what sympify or a guard function would evaluate."""
    try:
        tree = ast.parse(str(text), mode="eval")
    except SyntaxError as exc:
        raise UnsafeArchive(f"model.pt2 has a {what} that is not an expression") from exc
    for node in ast.walk(tree):
        if _allowed(node, guards):
            continue
        raise UnsafeArchive(f"model.pt2 has a {what} that is not plain arithmetic: {text!s:.100}")


def _allowed(node: ast.AST, guards: bool) -> bool:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str):
            return bool((_IDENTIFIER if guards else _SYMBOL).fullmatch(node.value))
        return isinstance(node.value, (int, float, bool))
    if isinstance(node, _ARITHMETIC):
        return True
    if isinstance(node, ast.Name):
        return node.id in _SYMPY_CALLS or bool(_SYMBOL.fullmatch(node.id)) or node.id == "L"
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            return func.id in _SYMPY_CALLS
        return guards and isinstance(func, ast.Attribute) and func.attr in _GUARD_METHODS
    if isinstance(node, ast.Attribute):
        return guards and node.attr in _GUARD_METHODS
    return guards and isinstance(node, ast.Subscript)
