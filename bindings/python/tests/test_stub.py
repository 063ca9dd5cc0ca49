"""The type stub (_core.pyi) and the compiled module name the same things."""
import ast
import pathlib

import busi_infer
from busi_infer import _core

STUB = pathlib.Path(busi_infer.__file__).with_name("_core.pyi")


def stub_names():
    tree = ast.parse(STUB.read_text())
    top, members = set(), {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            top.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            top.add(node.target.id)
        if isinstance(node, ast.ClassDef):
            members[node.name] = {n.name for n in node.body
                                  if isinstance(n, ast.FunctionDef) and not n.name.startswith("__")}
    return top, members


def test_stub_matches_module():
    top, members = stub_names()
    module = {name for name in dir(_core) if not name.startswith("__") or name == "__version__"}
    assert top == module
    for cls, names in members.items():
        public = {n for n in vars(getattr(_core, cls)) if not n.startswith("__")}
        assert names == public, cls


def test_package_reexports_the_public_api():
    public = {name for name in dir(_core) if not name.startswith("_")} | {"__version__"}
    assert set(busi_infer.__all__) == public
    assert (STUB.parent / "py.typed").exists()


def test_docstrings():
    for name in busi_infer.__all__:
        obj = getattr(busi_infer, name)
        if callable(obj):
            assert obj.__doc__, name
