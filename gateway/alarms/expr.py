"""A small, safe expression language for combined alarm conditions.

    sump.sump_level > 4.0 and not sump.pump1_running and not sump.pump2_running
    gas-r1.ch4 >= 0.8 and fan-1.running == false

Grammar (parsed by hand; nothing is ever passed to ``eval``)::

    expr  := or
    or    := and ("or" and)*
    and   := not ("and" not)*
    not   := "not" not | cmp
    cmp   := atom (("<" | "<=" | ">" | ">=" | "==" | "!=") atom)?
    atom  := NUMBER | "true" | "false" | NAME | "(" expr ")"
    NAME  := device.point, or `device.point` in backquotes for names that
             start with a digit

Values are looked up as the latest reading of the point. The logic is
three-valued: a point without a usable reading (never read, comm loss, bad)
is *unknown*, and an unknown that decides the result makes the whole
expression unknown (``None``), so a combined alarm neither raises nor clears
on missing data. ``false and unknown`` is false, ``true or unknown`` true.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from drivers.types import Value

Lookup = Callable[[str, str], Value | None]
Tri = bool | None


class ExprError(ValueError):
    """An expression that cannot be parsed; ``pos`` is the 0-based offset."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(f"{message} (at character {pos + 1})")
        self.pos = pos


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w.-])
    | (?P<name>[A-Za-z_][\w-]*\.[\w-]+)
    | `(?P<quoted>[^`]+\.[^`]+)`
    | (?P<word>[A-Za-z_]\w*)
    | (?P<op><=|>=|==|!=|<|>)
    | (?P<paren>[()])
    )""",
    re.VERBOSE,
)
_WORDS = frozenset({"and", "or", "not", "true", "false"})


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # num, name, word, op, paren, end
    text: str
    pos: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    i = 0
    while i < len(text):
        if text[i:].strip() == "":
            break
        m = _TOKEN.match(text, i)
        if m is None or m.end() == i:
            j = i + len(text[i:]) - len(text[i:].lstrip())
            raise ExprError(f"unexpected {text[j]!r}", j)
        kind = m.lastgroup or ""
        value = m.group(kind)
        pos = m.start(kind)
        if kind == "quoted":
            kind = "name"
        if kind == "word" and value not in _WORDS:
            raise ExprError(
                f"unknown word {value!r}: write a point as device.point, or use and/or/not/true/false",
                pos,
            )
        out.append(_Tok(kind, value, pos))
        i = m.end()
    out.append(_Tok("end", "", len(text)))
    return out


# -- the tree -------------------------------------------------------------------
# Each node is a closure over its children: evaluation walks Python functions,
# no code is generated.

Node = Callable[[Lookup], Value | None]


def _truth(v: Value | None) -> Tri:
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    return bool(v)


_CMP: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def _number(v: Value | None) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float) and not (isinstance(v, float) and math.isnan(v)):
        return float(v)
    return None


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.names: list[tuple[str, str]] = []

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise ExprError("empty expression", 0)
        node = self.or_()
        tok = self.peek()
        if tok.kind != "end":
            raise ExprError(f"unexpected {tok.text!r}: expected and/or or the end", tok.pos)
        return node

    def or_(self) -> Node:
        parts = [self.and_()]
        while self.peek().text == "or" and self.peek().kind == "word":
            self.take()
            parts.append(self.and_())
        if len(parts) == 1:
            return parts[0]

        def any_(look: Lookup) -> Tri:
            unknown = False
            for p in parts:
                t = _truth(p(look))
                if t is True:
                    return True
                unknown |= t is None
            return None if unknown else False

        return any_

    def and_(self) -> Node:
        parts = [self.not_()]
        while self.peek().text == "and" and self.peek().kind == "word":
            self.take()
            parts.append(self.not_())
        if len(parts) == 1:
            return parts[0]

        def all_(look: Lookup) -> Tri:
            unknown = False
            for p in parts:
                t = _truth(p(look))
                if t is False:
                    return False
                unknown |= t is None
            return None if unknown else True

        return all_

    def not_(self) -> Node:
        if self.peek().kind == "word" and self.peek().text == "not":
            self.take()
            inner = self.not_()

            def neg(look: Lookup) -> Tri:
                t = _truth(inner(look))
                return None if t is None else not t

            return neg
        return self.cmp()

    def cmp(self) -> Node:
        left = self.atom()
        if self.peek().kind != "op":
            return left
        op = self.take().text
        right = self.atom()
        if self.peek().kind == "op":
            raise ExprError("chained comparison: join two comparisons with and", self.peek().pos)
        fn = _CMP[op]

        def compare(look: Lookup) -> Tri:
            a, b = left(look), right(look)
            if a is None or b is None:
                return None
            na, nb = _number(a), _number(b)
            if na is not None and nb is not None:
                return fn(na, nb)
            if op in ("==", "!="):
                return fn(a, b)  # type: ignore[arg-type]
            return None

        return compare

    def atom(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            num = float(tok.text)
            return lambda look: num
        if tok.kind == "word" and tok.text in ("true", "false"):
            flag = tok.text == "true"
            return lambda look: flag
        if tok.kind == "name":
            device, _, point = tok.text.rpartition(".")
            self.names.append((device, point))
            return lambda look: look(device, point)
        if tok.kind == "paren" and tok.text == "(":
            inner = self.or_()
            close = self.take()
            if close.text != ")":
                raise ExprError("missing ')'", close.pos)
            return inner
        what = "the end" if tok.kind == "end" else repr(tok.text)
        raise ExprError(f"unexpected {what}: expected a number, a point or '('", tok.pos)


@dataclass(frozen=True)
class Expr:
    """A parsed expression: ``names`` are the (device, point) it reads."""

    text: str
    names: tuple[tuple[str, str], ...]
    _root: Node

    def evaluate(self, lookup: Lookup) -> Tri:
        """True, False, or None when unknown points decide it."""
        return _truth(self._root(lookup))

    def __str__(self) -> str:
        return self.text


def parse(text: str) -> Expr:
    """Parse ``text``; raises :class:`ExprError` naming the position."""
    p = _Parser(text)
    root = p.parse()
    return Expr(text, tuple(dict.fromkeys(p.names)), root)
