"""Run search: MLflow's filter grammar compiled to SQL, never evaluated in Python (layer: store).

Grammar (case-insensitive keywords)::

    filter     := clause (("AND" | "OR") clause)*
    clause     := "(" filter ")" | comparison
    comparison := IDENT OP VALUE | IDENT ["NOT"] "IN" "(" VALUE ("," VALUE)* ")"
    IDENT      := ("metrics" | "params" | "tags" | "attributes" | "datasets") "." KEY
    KEY        := word | `quoted` | "quoted"
    OP         := = | != | < | <= | > | >= | LIKE | ILIKE

``metrics.k`` compares the latest value (numbers only); ``params`` and ``tags`` compare strings (=, !=,
LIKE, ILIKE, IN); ``attributes`` are ``status``, ``run_id``, ``run_name``, ``start_time`` and ``end_time``
(epoch milliseconds, as in MLflow); ``datasets.id`` and ``datasets.role`` match the run's inputs.
AND binds tighter than OR.

>>> parse_filter("metrics.auc > 0.8 and params.model = 'gbm'")
('and', [('cmp', 'metrics', 'auc', '>', 0.8), ('cmp', 'params', 'model', '=', 'gbm')])
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, literal, not_, or_, select, true, union_all

from stead.errors import ValidationError
from stead.store import schema as s

__all__ = ["compile_search", "decode_token", "encode_token", "parse_filter"]

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![\w.]))
  | (?P<ident>[A-Za-z_][\w]*(?:\.(?:`[^`]*`|"[^"]*"|[\w./:-]+))?)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "like", "ilike"}
_PREFIXES = {"metrics", "metric", "params", "param", "tags", "tag", "attributes", "attribute", "attr", "datasets"}
_ATTRIBUTES = {"status", "run_id", "run_name", "start_time", "end_time", "created", "name"}
Token = tuple[str, Any, int]


def _error(text: str, pos: int, message: str) -> ValidationError:
    pointer = f"{text}\n{' ' * pos}^"
    return ValidationError(
        f"filter error at position {pos}: {message}\n{pointer}",
        hint="example: metrics.auc > 0.8 and params.model = 'gbm'",
    )


def _tokens(text: str) -> list[Token]:
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _error(text, pos, f"unexpected character {text[pos]!r}")
        kind = m.lastgroup or ""
        value = m.group()
        if kind == "string":
            out.append(("value", bytes(value[1:-1], "utf-8").decode("unicode_escape"), pos))
        elif kind == "number":
            out.append(("value", float(value), pos))
        elif kind == "ident":
            if value.lower() in _KEYWORDS:
                out.append((value.lower(), value, pos))
            else:
                out.append(("ident", value, pos))
        elif kind != "ws":
            out.append((kind, value, pos))
        pos = m.end()
    out.append(("end", None, len(text)))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> Token:
        return self.toks[self.i]

    def take(self, kind: str, what: str) -> Token:
        tok = self.peek()
        if tok[0] != kind:
            found = "the end of the filter" if tok[0] == "end" else repr(tok[1])
            raise _error(self.text, tok[2], f"expected {what}, found {found}")
        self.i += 1
        return tok

    def parse(self) -> Any:
        node = self.disjunction()
        tok = self.peek()
        if tok[0] != "end":
            raise _error(self.text, tok[2], f"expected AND, OR or the end, found {tok[1]!r}")
        return node

    def disjunction(self) -> Any:
        items = [self.conjunction()]
        while self.peek()[0] == "or":
            self.i += 1
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else ("or", items)

    def conjunction(self) -> Any:
        items = [self.clause()]
        while self.peek()[0] == "and":
            self.i += 1
            items.append(self.clause())
        return items[0] if len(items) == 1 else ("and", items)

    def clause(self) -> Any:
        if self.peek()[0] == "lparen":
            self.i += 1
            node = self.disjunction()
            self.take("rparen", "')'")
            return node
        _, ident, pos = self.take("ident", "a key such as metrics.auc, params.x, tags.y or attributes.status")
        prefix, key = self._split_ident(ident, pos)
        tok = self.peek()
        if tok[0] == "op":
            self.i += 1
            op = "!=" if tok[1] == "<>" else tok[1]
            return ("cmp", prefix, key, op, self._value(prefix, key))
        if tok[0] in ("like", "ilike"):
            self.i += 1
            value = self._value(prefix, key)
            if not isinstance(value, str):
                raise _error(self.text, self.toks[self.i - 1][2], f"{tok[0].upper()} needs a quoted pattern")
            return ("cmp", prefix, key, tok[0], value)
        negate = False
        if tok[0] == "not":
            self.i += 1
            negate = True
            tok = self.peek()
        if tok[0] == "in":
            self.i += 1
            self.take("lparen", "'(' after IN")
            values = [self._value(prefix, key)]
            while self.peek()[0] == "comma":
                self.i += 1
                values.append(self._value(prefix, key))
            self.take("rparen", "')' closing the IN list")
            return ("cmp", prefix, key, "not in" if negate else "in", values)
        raise _error(self.text, tok[2], f"expected a comparison (=, !=, <, <=, >, >=, LIKE, IN) after {ident}")

    def _value(self, prefix: str, key: str) -> Any:
        tok = self.take("value", "a quoted string or a number")
        return tok[1]

    def _split_ident(self, ident: str, pos: int) -> tuple[str, str]:
        if "." not in ident:
            if ident.lower() in _ATTRIBUTES:
                return "attributes", ident.lower()
            raise _error(self.text, pos, f"{ident!r} needs a prefix: metrics., params., tags. or attributes.")
        prefix, key = ident.split(".", 1)
        prefix = prefix.lower()
        if prefix not in _PREFIXES:
            raise _error(
                self.text, pos, f"unknown prefix {prefix!r}; use metrics, params, tags, attributes or datasets"
            )
        if key[:1] in ("`", '"') and key[-1:] == key[:1]:
            key = key[1:-1]
        canonical = {
            "metric": "metrics",
            "param": "params",
            "tag": "tags",
            "attribute": "attributes",
            "attr": "attributes",
        }
        prefix = canonical.get(prefix, prefix)
        if prefix == "attributes" and key.lower() not in _ATTRIBUTES:
            raise _error(self.text, pos, f"unknown attribute {key!r}; known: {', '.join(sorted(_ATTRIBUTES))}")
        if prefix == "datasets" and key.lower() not in ("id", "role", "name"):
            raise _error(
                self.text, pos, f"unknown datasets field {key!r}; use datasets.id, datasets.role or datasets.name"
            )
        return prefix, key.lower() if prefix in ("attributes", "datasets") else key


def parse_filter(text: str) -> Any:
    """Parse a filter into a small tree (see the module docstring for the grammar)."""
    return _Parser(text).parse()


def _string_cmp(column: Any, op: str, value: Any, where: str) -> ColumnElement[bool]:
    if op in ("<", "<=", ">", ">="):
        raise ValidationError(f"{where} is a string: use =, !=, LIKE, ILIKE or IN, not {op}")
    if op == "in" or op == "not in":
        values = [str(v) for v in value]
        cond = column.in_(values)
        result: ColumnElement[bool] = not_(cond) if op == "not in" else cond
        return result
    if not isinstance(value, str):
        value = _plain_number(value)
    if op == "=":
        return column == value  # type: ignore[no-any-return]
    if op == "!=":
        return column != value  # type: ignore[no-any-return]
    if op == "like":
        return column.like(value)  # type: ignore[no-any-return]
    return func.lower(column).like(value.lower())


def _plain_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _numbers(value: Any, where: str) -> list[Any]:
    """The operand(s) of a comparison with a number column, refused when one is a string."""
    values = value if isinstance(value, list) else [value]
    for v in values:
        if isinstance(v, str):
            raise ValidationError(f"{where} is a number: compare it with a number, not the string {v!r}")
    return values


def _range(value_col: Any, op: str, v: float) -> tuple[ColumnElement[bool], str]:
    """``value_col OP v`` for an ordering operator, and the infinity (``inf`` or ``-inf``) it also takes in."""
    cmp = {"<": value_col < v, "<=": value_col <= v, ">": value_col > v, ">=": value_col >= v}[op]
    return cmp, "inf" if op.startswith(">") else "-inf"


def _number_cmp(value_col: Any, nonfinite_col: Any, op: str, value: Any, where: str) -> ColumnElement[bool]:
    values = _numbers(value, where)
    if op in ("in", "not in"):
        cond = value_col.in_([float(v) for v in values])
        result: ColumnElement[bool] = not_(cond) if op == "not in" else cond
        return result
    if op in ("like", "ilike"):
        raise ValidationError(f"{where} is a number: LIKE applies to strings")
    v = float(value)
    if op == "=":
        return value_col == v  # type: ignore[no-any-return]
    if op == "!=":
        return value_col != v  # type: ignore[no-any-return]
    cmp, edge = _range(value_col, op, v)
    return or_(cmp, nonfinite_col == edge)


def _condition(node: Any) -> ColumnElement[bool]:
    # Conditions on params, tags, metrics and datasets are ``runs.id IN (SELECT run_id ...)``, not
    # correlated EXISTS: the planner can then start from the (key, value) index and visit only the
    # matching runs, instead of probing once per run of the experiment.
    if node[0] in ("and", "or"):
        parts = [_condition(n) for n in node[1]]
        return and_(true(), *parts) if node[0] == "and" else or_(false(), *parts)
    _, prefix, key, op, value = node
    runs = s.runs
    if prefix == "metrics":
        lm = s.latest_metrics
        if op in ("<", "<=", ">", ">="):
            # Two index ranges (the finite values, then the one infinity on that side) rather than one OR
            # that no index serves.
            cmp, edge = _range(lm.c.value, op, float(_numbers(value, f"metrics.{key}")[0]))
            finite = select(lm.c.run_id).where(lm.c.key == key, cmp)
            infinite = select(lm.c.run_id).where(lm.c.key == key, lm.c.nonfinite == edge)
            return runs.c.id.in_(union_all(finite, infinite))
        cond = _number_cmp(lm.c.value, lm.c.nonfinite, op, value, f"metrics.{key}")
        return runs.c.id.in_(select(lm.c.run_id).where(lm.c.key == key, cond))
    if prefix in ("params", "tags"):
        # MLflow: a run without the key matches no condition on it, "!=" included.
        table = s.params if prefix == "params" else s.tags
        cond = _string_cmp(table.c.value, op, value, f"{prefix}.{key}")
        return runs.c.id.in_(select(table.c.run_id).where(table.c.key == key, cond))
    if prefix == "datasets":
        du = s.dataset_uses
        column = {"id": du.c.dataset_id, "role": du.c.role, "name": du.c.name}[key]
        if key == "id" and op == "=" and isinstance(value, str) and len(value) < 64:
            cond = column.like(value + "%")
        else:
            cond = _string_cmp(column, op, value, f"datasets.{key}")
        return runs.c.id.in_(select(du.c.run_id).where(cond))
    if key in ("start_time", "end_time", "created"):
        column = runs.c.end_time if key == "end_time" else runs.c.start_time
        millis = [v / 1000.0 if not isinstance(v, str) else v for v in (value if isinstance(value, list) else [value])]
        return _number_cmp(column, literal(None), op, millis if isinstance(value, list) else millis[0], key)
    column = {"status": runs.c.status, "run_id": runs.c.id, "run_name": runs.c.name, "name": runs.c.name}[key]
    if key == "status":
        value = [str(v).upper() for v in value] if isinstance(value, list) else str(value).upper()
        if op in ("like", "ilike"):
            value = str(value)
    return _string_cmp(column, op, value, f"attributes.{key}")


def _order(order: str) -> tuple[Any, bool]:
    parts = order.strip().rsplit(None, 1)
    descending = False
    text = order.strip()
    if len(parts) == 2 and parts[1].upper() in ("ASC", "DESC"):
        text, descending = parts[0], parts[1].upper() == "DESC"
    parser = _Parser(text)
    _, ident, pos = parser.take("ident", "a key such as metrics.auc or attributes.start_time")
    if parser.peek()[0] != "end":
        raise _error(text, parser.peek()[2], "order_by takes one key and an optional ASC or DESC")
    prefix, key = parser._split_ident(ident, pos)
    runs = s.runs
    if prefix == "metrics":
        lm = s.latest_metrics
        return select(lm.c.value).where(lm.c.run_id == runs.c.id, lm.c.key == key).scalar_subquery(), descending
    if prefix in ("params", "tags"):
        t = s.params if prefix == "params" else s.tags
        return select(t.c.value).where(t.c.run_id == runs.c.id, t.c.key == key).scalar_subquery(), descending
    if prefix == "datasets":
        raise ValidationError(
            "cannot order runs by a dataset field", hint="order by metrics.x or attributes.start_time"
        )
    column = {
        "status": runs.c.status,
        "run_id": runs.c.id,
        "run_name": runs.c.name,
        "name": runs.c.name,
        "start_time": runs.c.start_time,
        "created": runs.c.start_time,
        "end_time": runs.c.end_time,
    }[key]
    return column, descending


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_token(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, _, number = raw.partition(":")
        if kind != "o" or not number.isdigit():
            raise ValueError(raw)
        return int(number)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError(
            f"page_token {token[:40]!r} is not a token this server issued",
            hint="pass the next_page_token of the previous page unchanged",
        ) from None


def compile_search(
    experiment_ids: Sequence[int],
    filter: str | None,
    order_by: Sequence[str],
    max_results: int,
    page_token: str | None,
    base: Select[Any] | None = None,
) -> tuple[Select[Any], int]:
    """Build the SELECT of matching runs (one more than ``max_results``, to know whether a page follows).

    It selects the run ids, or ``base`` (a SELECT over ``runs``, perhaps joined) with the conditions added.
    """
    runs = s.runs
    stmt = select(runs.c.id) if base is None else base
    if experiment_ids:
        stmt = stmt.where(runs.c.experiment_id.in_(list(experiment_ids)))
    if filter and filter.strip():
        stmt = stmt.where(_condition(parse_filter(filter)))
    for order in order_by:
        column, descending = _order(order)
        # NULLs (runs without the key) always sort last, as in MLflow.
        stmt = stmt.order_by(column.is_(None), column.desc() if descending else column.asc())
    stmt = stmt.order_by(runs.c.start_time.desc(), runs.c.id)
    offset = decode_token(page_token) if page_token else 0
    return stmt.offset(offset).limit(max_results + 1), offset
