"""mksyscall: turn the syscall table (``syscalls.tbl``) into ``zsyscall.py``.

Go's ``mksyscall.pl`` reads ``//sys`` comments and writes ``zsyscall_linux_amd64.go``; this does
the same for aiosys.  Usage::

    python -m aiosys.native.mksyscall           # rewrite aiosys/native/zsyscall.py
    python -m aiosys.native.mksyscall --check   # exit 1 if the checked-in file is stale
    python aiosys/native/mksyscall.py           # the same, without importing the package

Only the standard library is used here: the generator never imports the compiled module
(``SYS_*`` numbers are looked up by the generated module at import time, so its text is the
same on every architecture).  The table's grammar is described at the top of the table.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
TABLE_PATH = HERE / "syscalls.tbl"
OUTPUT_PATH = HERE / "zsyscall.py"

CLASSES = ("sys", "sysblock", "sysnb", "noerror", "wrap", "none")
EINTR_MODES = {"retry": "EINTR_RETRY", "raise": "EINTR_RAISE", "empty": "EINTR_EMPTY"}


@dataclass(frozen=True)
class Kind:
    """A parameter kind: Python annotation, marshalling function, the words it passes (``{v}``
    is the marshalled value), whether the marshalled object must be kept alive."""

    annotation: str
    marshal: str
    words: tuple[str, ...] = ("{v}",)
    keep: bool = False


_INT = "int"
KINDS: dict[str, Kind] = {
    "fd": Kind(_INT, "_m.fd"),
    "dirfd": Kind(_INT, "_m.dirfd"),
    "optfd": Kind(_INT, "_m.optfd"),
    "int": Kind(_INT, "_m.c_int"),
    "uint": Kind(_INT, "_m.c_uint"),
    "long": Kind(_INT, "_m.c_long"),
    "ulong": Kind(_INT, "_m.c_ulong"),
    "u64": Kind(_INT, "_m.u64"),
    "size": Kind(_INT, "_m.size"),
    "off": Kind(_INT, "_m.off"),
    "offpos": Kind(_INT, "_m.offpos", ("{v}", "0")),  # preadv2: pos_l, pos_h (0 on 64-bit)
    "mode": Kind(_INT, "_m.mode"),
    "oflags": Kind(_INT, "_m.oflags"),
    "sockflags": Kind(_INT, "_m.sockflags"),
    "fcntlcmd": Kind(_INT, "_m.fcntl_cmd"),
    "maplen": Kind(_INT, "_m.map_length"),
    "mapflags": Kind(_INT, "_m.map_flags"),
    "prot": Kind(_INT, "_m.prot"),
    "maxevents": Kind(_INT, "_m.maxevents"),
    "nsec": Kind(_INT, "_m.timespec", ("{v}.addr",), keep=True),
    "timeout": Kind(_INT, "_m.timeout_spec", ("{v}.addr",), keep=True),
    "path": Kind("_m.Path", "_m.path", ("{v}.addr",), keep=True),
    "rbuf": Kind("_m.ReadableBuffer", "_m.rbuf", ("{v}.addr", "{v}.size"), keep=True),
    "wbuf": Kind("_m.WritableBuffer", "_m.wbuf", ("{v}.addr", "{v}.size"), keep=True),
    "riov": Kind("Sequence[_m.ReadableBuffer]", "_m.riov", ("{v}.addr", "{v}.count"), True),
    "wiov": Kind("Sequence[_m.WritableBuffer]", "_m.wiov", ("{v}.addr", "{v}.count"), True),
    "sockaddr": Kind("_m.SockAddr", "_m.sockaddr", ("{v}.addr", "{v}.size"), keep=True),
    "optsockaddr": Kind(
        "_m.SockAddr | None", "_m.optsockaddr", ("{v}.addr", "{v}.size"), keep=True
    ),
    "mapping": Kind("_m.Mapping", "_m.mapping", ("{v}.addr", "{v}.length"), keep=True),
    "unmapping": Kind("_m.Mapping", "_m.unmapping", ("{v}.addr", "{v}.length"), keep=True),
}


@dataclass(frozen=True)
class ResultKind:
    """A result kind: annotation, decoder, the memory the kernel writes it into (``alloc``,
    with ``{0}``.. the marshalled result arguments; its words use ``{o}``), the decoder's
    context, and what to release if nobody takes the result."""

    annotation: str
    decode: str
    alloc: str = ""
    words: tuple[str, ...] = ()
    ctx: str = "None"
    orphan: str = ""
    nargs: int = 0


RESULTS: dict[str, ResultKind] = {
    "none": ResultKind("None", "_m.r_none"),
    "int": ResultKind("int", "_m.r_int"),
    "unsigned": ResultKind("int", "_m.r_int"),
    "fd": ResultKind("int", "_m.r_int", orphan="_m.orphan_fd"),
    "count": ResultKind("int", "_m.r_count", ctx="{0}.size", nargs=1),
    "statx": ResultKind("_m.StatxResult", "_m.r_statx", "_m.out_statx()", ("{o}.addr",), "o"),
    "pipe": ResultKind(
        "tuple[int, int]", "_m.r_pipe", "_m.out_sized(8)", ("{o}.addr",), "o", "_m.orphan_pipe"
    ),
    "dirents": ResultKind(
        "list[str]", "_m.r_dirents", "_m.out_bytes({0})", ("{o}.addr", "{o}.size"), "o", nargs=1
    ),
    "readlink": ResultKind(
        "str", "_m.r_readlink", "_m.out_sized(_m.PATH_MAX)", ("{o}.addr", "{o}.size"), "o"
    ),
    "sockname": ResultKind(
        "_m.Address", "_m.r_sockname", "_m.out_sockaddr()", ("{o}.addr", "{o}.lenp"), "o"
    ),
    "accept": ResultKind(
        "tuple[int, _m.Address]",
        "_m.r_accept",
        "_m.out_sockaddr()",
        ("{o}.addr", "{o}.lenp"),
        "o",
        "_m.orphan_fd",
    ),
    "recvfrom": ResultKind(
        "tuple[int, _m.Address]",
        "_m.r_recvfrom",
        "_m.out_sockaddr()",
        ("{o}.addr", "{o}.lenp"),
        "({0}.size, o)",
        nargs=1,
    ),
    "sockopt_int": ResultKind(
        "int", "_m.r_sockopt_int", "_m.out_int()", ("{o}.addr", "{o}.lenp"), "o"
    ),
    "timespec": ResultKind("int", "_m.r_timespec", "_m.out_sized(16)", ("{o}.addr",), "o"),
    "rlimit": ResultKind(
        "tuple[int, int]", "_m.r_rlimit", "_m.out_sized(16)", ("{o}.addr",), "o"
    ),
    "cpuset": ResultKind(
        "set[int]", "_m.r_cpuset", "_m.out_sized(_m.CPUSET_BYTES)", ("{o}.size", "{o}.addr"), "o"
    ),
    "events": ResultKind(
        "list[tuple[int, int]]",
        "_m.r_events",
        "_m.out_events({0})",
        ("{o}.addr", "{o}.count"),
        "o",
        nargs=1,
    ),
    "mapping": ResultKind(
        "_m.Mapping", "_m.r_mapping", ctx="({0}, {1})", orphan="_m.orphan_mapping", nargs=2
    ),
    "mincore": ResultKind(
        "bytes", "_m.r_mincore", "_m.out_mincore({0})", ("{o}.addr",), "o", nargs=1
    ),
}


class TableError(ValueError):
    pass


@dataclass
class Param:
    name: str
    kind: str
    default: str | None = None


@dataclass
class Row:
    lineno: int
    klass: str
    name: str
    params: list[Param] = field(default_factory=list)
    result: str = "none"
    result_args: list[str] = field(default_factory=list)
    trap: str = ""
    raw: list[str] | None = None
    target: str = ""
    target_args: list[str] = field(default_factory=list)
    eintr: str = "retry"
    doc: str = ""
    reason: str = ""


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def _balanced(text: str, start: int) -> tuple[str, int]:
    """The text inside the parentheses opening at ``text[start]``, and the index after them."""
    if start >= len(text) or text[start] != "(":
        raise TableError(f"expected '(' at {text[start:]!r}")
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
    raise TableError(f"unbalanced parentheses in {text!r}")


def _split(args: str) -> list[str]:
    """Split on top-level commas."""
    out: list[str] = []
    depth = 0
    cur = ""
    for ch in args:
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


_HEAD = re.compile(r"(\w+)\s+(\w+)")


def parse_line(line: str, lineno: int) -> Row | None:
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    m = _HEAD.match(text)
    if not m:
        raise TableError(f"line {lineno}: expected 'CLASS NAME': {text!r}")
    klass, name = m.groups()
    if klass not in CLASSES:
        raise TableError(f"line {lineno}: unknown class {klass!r}")
    rest = text[m.end() :]
    if klass == "none":
        reason = rest.strip()
        if not reason.startswith("!") or not reason[1:].strip():
            raise TableError(f"line {lineno}: 'none {name}' needs '! reason'")
        return Row(lineno, klass, name, reason=reason[1:].strip())
    code, _, doc = rest.partition("#")
    row = Row(lineno, klass, name, doc=doc.strip())
    try:
        params, pos = _balanced(code, 0)
        for p in _split(params):
            pname, _, spec = p.partition(":")
            kind, _, default = spec.partition("=")
            row.params.append(Param(pname.strip(), kind.strip(), default.strip() or None))
        tail = code[pos:].strip()
        if not tail.startswith("->"):
            raise TableError("expected '-> RESULT'")
        tail = tail[2:].strip()
        rm = re.match(r"\w+", tail)
        if not rm:
            raise TableError("expected a result kind")
        row.result = rm.group()
        tail = tail[rm.end() :]
        if tail.startswith("("):
            inner, end = _balanced(tail, 0)
            row.result_args = _split(inner)
            tail = tail[end:]
        tail = tail.strip()
        if tail.startswith("@"):
            tm = re.match(r"@(\w+)", tail)
            assert tm is not None
            row.trap = tm.group(1)
            inner, end = _balanced(tail, tm.end())
            row.raw = _split(inner)
            tail = tail[end:].strip()
        if tail.startswith("="):
            tm = re.match(r"=\s*(\w+)", tail)
            if not tm:
                raise TableError("expected '= TARGET(...)'")
            row.target = tm.group(1)
            inner, end = _balanced(tail, tm.end())
            row.target_args = _split(inner)
            tail = tail[end:].strip()
        if tail.startswith("{"):
            om = re.match(r"\{eintr=(\w+)\}", tail)
            if not om or om.group(1) not in EINTR_MODES:
                raise TableError(f"bad option {tail!r}")
            row.eintr = om.group(1)
            tail = tail[om.end() :].strip()
        if tail:
            raise TableError(f"unexpected {tail!r}")
    except TableError as exc:
        raise TableError(f"line {lineno} ({name}): {exc}") from None
    return row


def parse(text: str) -> list[Row]:
    rows = [r for i, line in enumerate(text.splitlines(), 1) if (r := parse_line(line, i))]
    validate(rows)
    return rows


def validate(rows: list[Row]) -> None:
    seen: dict[str, Row] = {}
    for r in rows:
        where = f"line {r.lineno} ({r.name})"
        if r.name in seen:
            raise TableError(f"{where}: duplicate entry")
        seen[r.name] = r
        if r.klass == "none":
            continue
        if r.result not in RESULTS:
            raise TableError(f"{where}: unknown result kind {r.result!r}")
        if len(r.result_args) != RESULTS[r.result].nargs:
            raise TableError(f"{where}: {r.result} takes {RESULTS[r.result].nargs} argument(s)")
        names = {p.name for p in r.params}
        for p in r.params:
            if p.kind not in KINDS:
                raise TableError(f"{where}: unknown kind {p.kind!r} for {p.name}")
        for a in r.result_args:
            if a not in names:
                raise TableError(f"{where}: result argument {a!r} is not a parameter")
        if (r.klass == "wrap") != bool(r.target):
            raise TableError(f"{where}: a wrap (and only a wrap) names '= TARGET(...)'")
        if r.klass == "noerror" and r.result != "unsigned":
            raise TableError(f"{where}: noerror entries return 'unsigned'")
        if r.klass != "wrap" and len(raw_words(r)) > 6:
            raise TableError(f"{where}: more than six machine words")
    for r in rows:
        if r.klass == "wrap":
            t = seen.get(r.target)
            if t is None or t.klass in ("none", "wrap"):
                raise TableError(f"line {r.lineno} ({r.name}): bad wrap target {r.target!r}")
            if len(r.target_args) > len(t.params):
                raise TableError(f"line {r.lineno} ({r.name}): too many target arguments")


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


def _const(token: str) -> str:
    """A literal or a constant from ``_marshal`` (upper-case names)."""
    if re.fullmatch(r"[A-Z][A-Z0-9_]*", token):
        return f"_m.{token}"
    return token


def raw_words(r: Row) -> list[str]:
    """The trap's argument expressions, in order."""
    params = {p.name: p for p in r.params}
    res = RESULTS[r.result]

    def out_words() -> list[str]:
        return [w.format(o="o") for w in res.words]

    if r.raw is None:
        words: list[str] = []
        for p in r.params:
            words += [w.format(v=f"a_{p.name}") for w in KINDS[p.kind].words]
        return words + out_words()
    words = []
    aux = 0
    for tok in r.raw:
        if tok in params:
            words += [w.format(v=f"a_{tok}") for w in KINDS[params[tok].kind].words]
        elif tok == "out":
            words += out_words()
        elif tok.startswith("%"):
            words.append(f"x{aux}.addr")
            aux += 1
        else:
            words.append(_const(tok))
    return words


def _aux_lines(r: Row) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for tok in r.raw or []:
        if tok.startswith("%"):
            fm = re.fullmatch(r"%(\w+)\((.*)\)", tok)
            if not fm:
                raise TableError(f"line {r.lineno}: bad aux {tok!r}")
            args = ", ".join(f"a_{a}" for a in _split(fm.group(2)))
            out.append((f"x{len(out)}", f"_m.{fm.group(1)}({args})"))
    return out


def _signature(name: str, params: list[Param], ret: str) -> str:
    parts = []
    for p in params:
        ann = KINDS[p.kind].annotation
        parts.append(f"{p.name}: {ann}" + (f" = {_const(p.default)}" if p.default else ""))
    one = f"def {name}({', '.join(parts)}) -> {ret}:"
    if len(one) <= 100:
        return one
    body = "".join(f"    {p},\n" for p in parts)
    return f"def {name}(\n{body}) -> {ret}:"


def _call(name: str, args: list[str]) -> str:
    return f"{name}({', '.join(args)})"


def _docstring(text: str, indent: str = "    ") -> str:
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if text.endswith('"'):
        text += " "
    lines = [indent + '"""' + text + '"""']
    return "\n".join(line if len(line) <= 100 else _wrap_doc(text, indent) for line in lines)


def _wrap_doc(text: str, indent: str) -> str:
    words = text.split()
    lines: list[str] = []
    cur = ""
    for w in words:
        if len(indent) + len(cur) + len(w) + 4 > 96 and cur:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    lines.append(cur)
    body = f"\n{indent}".join(lines)
    return f'{indent}"""{body}\n{indent}"""'


def _target_kind(t: Row, r: Row, name: str) -> str:
    """The kind of the target parameter that the wrapper's parameter ``name`` feeds."""
    for i, a in enumerate(r.target_args):
        if a == name and i < len(t.params):
            return t.params[i].kind
    return "fd"


def _resolve(rows: dict[str, Row], r: Row) -> Row:
    return rows[r.target] if r.klass == "wrap" else r


_CALLER = {
    "sys": "call_sys",
    "sysblock": "call_sys",
    "sysnb": "call_raw",
    "noerror": "call_noerror",
}


def gen_entry(r: Row, rows: dict[str, Row]) -> str:
    res = RESULTS[r.result]
    ann = res.annotation
    pnames = [p.name for p in r.params]
    doc = f"{r.name}: {r.doc}" if r.doc else r.name
    out: list[str] = []
    if r.klass == "wrap":
        t = rows[r.target]
        targs = [a if a in pnames else _const(a) for a in r.target_args]
        out.append(_signature(f"prepare_{r.name}", r.params, f"Prepared[{ann}]"))
        out.append(_docstring(f"Prepare {r.name} (a wrap over {r.target}): no syscall is made."))
        for p in r.params:
            k = KINDS[p.kind]
            if not k.keep and KINDS[_target_kind(t, r, p.name)] != k:
                # The target's parameter is looser (fstat's fd becomes statx's dirfd, where
                # AT_FDCWD is valid): check the wrapper's own kind first.
                out.append(f"    {k.marshal}({p.name})")
        out.append(f"    p = {_call('prepare_' + r.target, targs)}")
        out.append(f'    p.name = "{r.name}"')
        if not any(p.kind == "path" for p in r.params):
            out.append("    p.filename = p.filename2 = None")
        out.append("    return p\n\n")
        out.append(_signature(r.name, r.params, ann))
        out.append(_docstring(f"{doc} [wrap over {r.target}, {t.klass}]"))
        out.append(f"    return {_CALLER[t.klass]}({_call('prepare_' + r.name, pnames)})\n\n")
        return "\n".join(out)

    trap = r.trap or r.name
    out.append(_signature(f"prepare_{r.name}", r.params, f"Prepared[{ann}]"))
    out.append(_docstring(f"Prepare {r.name}: validate and marshal, no syscall."))
    out.append(f"    if _T_{trap} < 0:")
    out.append(f'        raise enosys("{trap}")')
    keep: list[str] = []
    fd_expr = "-1"
    paths: list[str] = []
    for p in r.params:
        k = KINDS[p.kind]
        out.append(f"    a_{p.name} = {k.marshal}({p.name})")
        if k.keep:
            keep.append(f"a_{p.name}")
        if fd_expr == "-1" and p.kind == "fd":
            fd_expr = f"a_{p.name}"
        elif fd_expr == "-1" and p.kind == "dirfd":
            fd_expr = f"max(a_{p.name}, -1)"
        if p.kind == "path":
            paths.append(p.name)
    rargs = [f"a_{a}" for a in r.result_args]
    if res.alloc:
        out.append(f"    o = {res.alloc.format(*rargs)}")
        keep.append("o")
    for var, expr in _aux_lines(r):
        out.append(f"    {var} = {expr}")
        keep.append(var)
    words = raw_words(r)
    words += ["0"] * (6 - len(words))
    keep_expr = "(" + ", ".join(keep) + ("," if len(keep) == 1 else "") + ")" if keep else "None"
    ctx = res.ctx.format(*rargs)
    klass = r.klass
    args = [
        f'"{r.name}"',
        f'"{klass}"',
        f"_T_{trap}",
        "(" + ", ".join(words) + ")",
        keep_expr,
        fd_expr,
        res.decode,
        ctx,
    ]
    if paths:
        args.append(f"filename={paths[0]}")
    if len(paths) > 1:
        args.append(f"filename2={paths[1]}")
    if r.eintr != "retry":
        args.append(f"eintr={EINTR_MODES[r.eintr]}")
    if res.orphan:
        args.append(f"orphan={res.orphan}")
    out.append("    return Prepared(")
    out += [f"        {a}," for a in args]
    out.append("    )\n\n")
    if klass == "noerror" and not r.params:
        out.append(f'{r.name}: Final[Callable[[], int]] = noerror_fn0("{r.name}", _T_{trap})')
        note = f"{doc} [noerror: RawSyscallNoError, the C entry point]"
        out.append(_docstring(note, "") + "\n\n")
        return "\n".join(out)
    out.append(_signature(r.name, r.params, ann))
    out.append(_docstring(f"{doc} [{klass}]"))
    out.append(f"    return {_CALLER[klass]}({_call('prepare_' + r.name, pnames)})\n\n")
    return "\n".join(out)


HEADER = '''\
# Code generated by `python -m aiosys.native.mksyscall` from syscalls.tbl; DO NOT EDIT.
"""Typed system call wrappers, generated from ``syscalls.tbl`` (Go's zsyscall_linux_amd64.go).

Contract (agreed with the scheduler, aiosys/sched/):

For every exposed entry NAME of the table this module provides

* ``NAME(*args)``: the synchronous typed wrapper.  ``sys``/``sysblock`` entries run the trap
  between the entersyscall/exitsyscall hooks (``Syscall6``), ``sysnb`` entries with none
  (``RawSyscall6``), ``noerror`` entries as ``RawSyscallNoError``; a ``wrap`` prepares through
  its target and runs it the target's way.  EINTR is retried (PEP 475) unless the entry says
  otherwise (``close``: never; epoll waits: "no events").
* ``prepare_NAME(*args) -> Prepared``: validation and marshalling only, no syscall.  The
  :class:`~aiosys.native.prepared.Prepared` has ``trap: int``, ``args`` (six machine words),
  ``keep`` (pinned memory: hold it until the trap returns), ``fd`` (-1 if none), ``name``,
  ``klass`` (of the trap actually made), ``eintr``, ``finish(r)`` (decode the raw kernel return
  on the caller's thread, any time later: value, or the right ``OSError`` subclass) and
  ``orphan(r)`` (release what a call nobody waits for created).  So
  ``NAME(*a) == prepare_NAME(*a).finish(raw6(p.trap, *p.args))``, EINTR aside.
* ``TABLE: dict[str, Entry]`` with ``Entry(name, klass, trap, nargs, prepare, target, base,
  params)`` (``trap`` -1 when this architecture lacks it), ``by_trap(trap) -> Entry | None``,
  and ``NOT_EXPOSED: dict[str, str]`` (name -> why).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from . import _marshal as _m
from ._lowlevel import SYS as _SYS
from ._marshal import Mapping as Mapping
from ._marshal import StatxResult as StatxResult
from .prepared import (
{imports})

__all__ = ["NOT_EXPOSED", "TABLE", "Mapping", "StatxResult", "by_trap"]

'''


def generate(rows: list[Row]) -> str:
    by_name = {r.name: r for r in rows}
    exposed = [r for r in rows if r.klass != "none"]
    trap_names = sorted({r.trap or r.name for r in exposed if r.klass != "wrap"})
    body: list[str] = []
    parts = body
    parts.append("# Syscall numbers for this architecture (-1: the headers lack it).")
    for tn in trap_names:
        parts.append(f'_T_{tn}: Final = _SYS.get("{tn}", -1)')
    parts.append("\n")
    for r in exposed:
        parts.append(gen_entry(r, by_name))
    parts.append("TABLE: Final[dict[str, Entry]] = {")
    for r in exposed:
        t = _resolve(by_name, r)
        nargs = len(raw_words(t))
        params = _tuple([f'"{p.name}"' for p in r.params])
        args = [
            f'"{r.name}"',
            f'"{r.klass}"',
            f"_T_{t.trap or t.name}",
            str(nargs),
            f"prepare_{r.name}",
            f'"{r.target}"',
            f'"{t.klass}"',
            params,
        ]
        parts.append(_fit(f'    "{r.name}": Entry(', args, "),", "    "))
    parts.append("}")
    parts.append('"""Every exposed entry of syscalls.tbl, by name."""\n')
    parts.append("NOT_EXPOSED: Final[dict[str, str]] = {")
    for r in rows:
        if r.klass == "none":
            parts.append(_fit_str(f'    "{r.name}": ', r.reason, ","))
    parts.append("}")
    parts.append('"""Syscalls the table declines to expose, with the reason."""\n')
    parts.append(
        "_BY_TRAP: Final[dict[int, Entry]] = {}\n"
        "for _e in TABLE.values():\n"
        "    # The entry named after the trap wins over variants such as fcntl_getfl.\n"
        "    if (_e.klass != \"wrap\" and _e.trap >= 0) and (\n"
        "        _e.trap not in _BY_TRAP or _SYS.get(_e.name) == _e.trap\n"
        "    ):\n"
        "        _BY_TRAP[_e.trap] = _e\n"
        "del _e\n\n\n"
        "def by_trap(trap: int) -> Entry | None:\n"
        '    """The table entry for a syscall number (``None`` if the table has none)."""\n'
        "    return _BY_TRAP.get(trap)\n"
    )
    text = "\n".join(body)
    used = [
        n
        for n in _PREPARED_NAMES
        if re.search(rf"\b{n}\b", text)
    ]
    text = HEADER.format(imports="".join(f"    {n},\n" for n in used)) + text
    text = re.sub(r"\n{4,}", "\n\n\n", text)
    return text.rstrip("\n") + "\n"


_PREPARED_NAMES = (
    "EINTR_EMPTY",
    "EINTR_RAISE",
    "EINTR_RETRY",
    "Entry",
    "Prepared",
    "call_noerror",
    "call_raw",
    "call_sys",
    "enosys",
    "noerror_fn0",
)


def _tuple(items: list[str]) -> str:
    if len(items) == 1:
        return f"({items[0]},)"
    return "(" + ", ".join(items) + ")"


def _fit(prefix: str, args: list[str], suffix: str, indent: str) -> str:
    """``prefix + args + suffix`` on one line if it fits in 100 columns, else one argument
    per line."""
    one = prefix + ", ".join(args) + suffix
    if len(one) <= 100:
        return one
    inner = indent + "    "
    two = f"{prefix}\n{inner}{', '.join(args)}\n{indent}{suffix}"
    if len(inner) + len(", ".join(args)) <= 100:
        return two
    body = "".join(f"{inner}{a},\n" for a in args)
    return f"{prefix}\n{body}{indent}{suffix}"


def _fit_str(prefix: str, text: str, suffix: str) -> str:
    one = f"{prefix}{text!r}{suffix}"
    if len(one) <= 100:
        return one
    chunks: list[str] = []
    cur = ""
    for word in text.split(" "):
        if len(cur) + len(word) > 80 and cur:
            chunks.append(cur)
            cur = ""
        cur += word + " "
    chunks.append(cur.rstrip(" "))
    body = "".join(f"        {c!r}\n" for c in chunks)
    return f"{prefix}(\n{body}    ){suffix}"


def render() -> str:
    return generate(parse(TABLE_PATH.read_text()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m aiosys.native.mksyscall", description=__doc__)
    ap.add_argument("--check", action="store_true", help="exit 1 if zsyscall.py is stale")
    ap.add_argument("-o", "--output", type=Path, default=OUTPUT_PATH)
    ns = ap.parse_args(argv)
    text = render()
    if ns.check:
        current = ns.output.read_text() if ns.output.exists() else ""
        if current != text:
            print(f"{ns.output} is stale: run python -m aiosys.native.mksyscall", file=sys.stderr)
            return 1
        return 0
    ns.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
