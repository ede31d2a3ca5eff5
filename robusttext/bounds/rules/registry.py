"""The registry of bound rules: one entry per covered object, with the arguments it understands.

A rule is registered for the objects it covers, keyed by the object itself: a module class
(``nn.Linear``, matched by exact type, so a subclass with its own ``forward`` is traced through
instead), a function (``F.linear``, ``torch.add``, ``operator.add``) or a method name (``"add"``).
Each registration declares every parameter of that form in positional order and what values of
it the rule understands (an ``Arg``), and for modules the attributes that change what the module
computes. ``bind`` checks a traced call against the declaration: an unknown argument, a value
outside the declared ones, a bounded tensor where only a constant is understood or an in-place
write the engine cannot follow is refused with a message naming the operation, the argument and
the model line. Nothing undeclared reaches a rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.fx as fx

from robusttext.errors import RobustTextError

_MISSING = object()


@dataclass(frozen=True)
class Arg:
    """What values of one parameter a rule understands.

    ``bounded``: the parameter may be a tensor that depends on the perturbed input (else only
    constants). ``allowed``: the constant values understood (None: any). ``check``: or a
    predicate on the constant; ``expects`` says in words what it wants, for the refusal.
    """

    bounded: bool = False
    allowed: tuple | None = None
    check: object = None
    expects: str = ""

    def refusal(self, value) -> str | None:
        """Why ``value`` (a constant) is not understood, or None."""
        if self.allowed is not None and not any(_same(value, a) for a in self.allowed):
            wanted = self.expects or " or ".join(repr(a) for a in self.allowed)
            return f"robusttext bounds only {wanted}"
        if self.check is not None and not self.check(value):
            return f"robusttext bounds only {self.expects}"
        return None


def _same(value, allowed) -> bool:
    if isinstance(value, torch.Tensor) or isinstance(allowed, torch.Tensor):
        return False
    return type(value) is type(allowed) and value == allowed or (
        isinstance(value, (int, float)) and not isinstance(value, bool)
        and isinstance(allowed, (int, float)) and not isinstance(allowed, bool)
        and value == allowed)


DATA = Arg(bounded=True)  # a tensor operand, bounded or constant
ANY = Arg()  # any constant


def only(*values, expects: str = "") -> Arg:
    """A constant equal to one of ``values``."""
    return Arg(allowed=values, expects=expects)


def satisfies(check, expects: str) -> Arg:
    """A constant for which ``check(value)`` holds."""
    return Arg(check=check, expects=expects)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_int_or_ints(value) -> bool:
    if isinstance(value, (tuple, list)):
        return all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class Entry:
    """One registration: a rule for one covered object, with its declared parameters."""

    rule: object
    target: object
    params: dict  # name -> Arg, in positional order; a name starting with '*' takes the rest
    attrs: dict = field(default_factory=dict)  # module attribute -> Arg
    writes_input: object = False  # True, or the parameter/attribute whose True means in place
    hint: str = ""  # for refusals: what to use instead


_MODULES: dict = {}
_FUNCTIONS: dict = {}
_METHODS: dict = {}


def register(rule, *targets, params: dict | None = None, attrs: dict | None = None,
             writes_input=False, hint: str = "") -> None:
    """Register ``rule`` for each of ``targets`` (module classes, functions, method names)."""
    for target in dict.fromkeys(targets):  # aliases (F.relu_ is torch.relu_) once
        table = (_METHODS if isinstance(target, str) else
                 _MODULES if isinstance(target, type) else _FUNCTIONS)
        if target in table:
            raise AssertionError(f"two rules for {target!r}")
        table[target] = Entry(rule, target, dict(params or {}), dict(attrs or {}),
                              writes_input, hint)


def refuse_by_name(targets, hint: str) -> None:
    """Register a refusal: ``targets`` are known and not bounded; ``hint`` says what to use."""
    register(None, *targets, hint=hint)


def lookup(node: fx.Node, graph_module: fx.GraphModule) -> Entry | None:
    """The registration covering a call node, or None."""
    if node.op == "call_module":
        return _MODULES.get(type(graph_module.get_submodule(node.target)))
    if node.op == "call_function":
        try:
            return _FUNCTIONS.get(node.target)
        except TypeError:  # unhashable target
            return None
    if node.op == "call_method":
        return _METHODS.get(node.target)
    return None


def covered_modules() -> tuple:
    """The module classes with a rule (a bare one is traced inside a container)."""
    return tuple(t for t, e in _MODULES.items() if e.rule is not None)


def bind(entry: Entry, node: fx.Node, module, is_bounded, constant, describe, where) -> dict:
    """The node's arguments by parameter name, checked against the declaration.

    ``is_bounded(node)`` and ``constant(node)`` come from the propagation; ``describe()`` and
    ``where()`` give the operation's name and model line for a message (called only when one
    is raised: finding the line reads the file system). Raises a ``RobustTextError`` naming the
    operation, the argument and the model line for anything the rule does not declare.
    """

    def refuse(what: str):
        hint = f"; {entry.hint}" if entry.hint else ""
        raise RobustTextError(f"{describe()}: {what}{hint} (at {where()})")

    if entry.rule is None:
        refuse("robusttext has no bound rule for it")
    names = list(entry.params)
    specs = {name.lstrip("*"): spec for name, spec in entry.params.items()}
    values: dict = {}  # by bare name; a '*rest' parameter holds a tuple
    for i, value in enumerate(node.args):
        if i < len(names) and names[i].startswith("*"):
            values[names[i][1:]] = tuple(node.args[i:])
            break
        if i >= len(names):
            refuse(f"robusttext does not understand its positional argument {i} "
                   f"({_show(value)})")
        values[names[i]] = value
    for name, value in node.kwargs.items():
        if name not in entry.params:
            refuse(f"robusttext does not understand the argument {name}={_show(value)}")
        values[name] = value
    for name, value in values.items():
        spec = specs[name]
        flat = value if isinstance(value, (tuple, list)) else (value,)
        if any(isinstance(v, fx.Node) and is_bounded(v) for v in _flatten(flat)):
            if not spec.bounded:
                refuse(f"a {name} that depends on the perturbed input is not supported")
            continue
        reason = spec.refusal(fx.node.map_arg(value, constant))
        if reason is not None:
            refuse(f"{name}={_show(fx.node.map_arg(value, constant))}: {reason}")
    if module is not None:
        for name, spec in entry.attrs.items():
            reason = spec.refusal(getattr(module, name, None))
            if reason is not None:
                refuse(f"{name}={_show(getattr(module, name, None))}: {reason}")
    return values


def writes_input(entry: Entry, values: dict, module) -> bool:
    """True when this call writes its result into its first input."""
    flag = entry.writes_input
    if flag is True or flag is False:
        return flag
    if module is not None:
        return bool(getattr(module, flag, False))
    return values.get(flag) is True


def _flatten(values):
    for v in values:
        if isinstance(v, (tuple, list)):
            yield from _flatten(v)
        else:
            yield v


def _show(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"<tensor {tuple(value.shape)}>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
