"""Keeping a ``Protocol`` seam honest without a type checker.

An object handed its builder typed as a small Protocol must read nothing
of it beyond the protocol (a new use is then added there, where it is
visible), and the builder must really have every member the protocol
declares.  These helpers read both sides: the protocol's members, what a
class reads of one of its collaborators (from its source), and the
attributes a class's instances get in its methods.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from typing import Protocol


def protocol_members(proto: type) -> set[str]:
    """Attributes and methods a protocol declares, its bases' included."""
    names: set[str] = set()
    for klass in proto.__mro__:
        if klass in (object, Protocol) or not getattr(
                klass, "_is_protocol", False):
            continue
        names |= set(klass.__dict__.get("__annotations__", {}))
        names |= {n for n, v in klass.__dict__.items()
                  if callable(v) and not n.startswith("_")}
    return names


def _class_node(module_name: str, class_name: str) -> ast.ClassDef:
    tree = ast.parse(inspect.getsource(importlib.import_module(module_name)))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return node
    raise AssertionError(f"{module_name} has no class {class_name}")


def uses(module_name: str, class_name: str, name: str) -> set[str]:
    """Members the class reads of its collaborator ``name``:
    ``self.<name>.X``, and ``<name>.X`` where ``<name>`` is a parameter or
    a local alias of ``self.<name>``."""
    used = set()
    for node in ast.walk(_class_node(module_name, class_name)):
        if not isinstance(node, ast.Attribute):
            continue
        value = node.value
        if isinstance(value, ast.Name) and value.id == name:
            used.add(node.attr)
        elif (isinstance(value, ast.Attribute) and value.attr == name
              and isinstance(value.value, ast.Name)
              and value.value.id == "self"):
            used.add(node.attr)
    return used


def instance_attributes(cls: type) -> set[str]:
    """``self.X = ...`` targets in the methods of ``cls`` and its bases."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is object:
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                targets = [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and isinstance(
                        target.value, ast.Name) and target.value.id == "self":
                    names.add(target.attr)
    return names


def missing_members(proto: type, cls: type) -> set[str]:
    """Members of ``proto`` that ``cls`` lacks."""
    return protocol_members(proto) - (set(dir(cls)) |
                                      instance_attributes(cls))


def different_parameters(proto: type, cls: type,
                         strict: bool = True) -> list[str]:
    """Methods of ``proto`` whose parameters ``cls`` names otherwise
    (``strict``: the same names in the same order; else ``cls`` takes at
    least the protocol's, as a wider real method does)."""
    differ = []
    for name in sorted(protocol_members(proto)):
        wanted = next((k.__dict__[name] for k in proto.__mro__
                       if name in k.__dict__), None)
        have = getattr(cls, name, None)
        if not inspect.isfunction(wanted) or not inspect.isfunction(have):
            continue
        want = list(inspect.signature(wanted).parameters)
        got = list(inspect.signature(have).parameters)
        if want != got if strict else not set(want) <= set(got):
            differ.append(name)
    return differ
