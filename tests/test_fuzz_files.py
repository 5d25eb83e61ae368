"""A fuzzer over the real stored files: copies of a night under results/reference mutated (truncated, retyped,
re-encoded, keys reordered, a link planted) and given to analyze, compare, history add and baseline promote. Each
ends in exit 0, 1 or 2 with at most one `bench: error` line, never exit 3 or a traceback, and changes nothing
outside the folder the verb may write. Cases per run (`ci` profile): CASES."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.cli import main as cli
from tests.test_hostile import REFERENCE, tree_hash

CASES = 40
NIGHTS = REFERENCE / "history" / "nights"
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6,
)


def _paths(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document a value sits."""
    out = [at] if at else []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for k, v in items:
        out += _paths(v, (*at, k))
    return out


def _set(node: Any, at: tuple[Any, ...], value: Any) -> None:
    for k in at[:-1]:
        node = node[k]
    node[at[-1]] = value


@st.composite
def mutation(draw: st.DrawFn, run_dir: Path, mine: Path) -> str:
    """Mutate one file of `run_dir` in place; returns what was done, for the failure message."""
    name = draw(st.sampled_from(["run.json", "requests.jsonl"]))
    path = run_dir / name
    kind = draw(st.sampled_from(["truncate", "retype", "reencode", "reorder", "link", "lines"]))
    data = path.read_bytes()
    if kind == "truncate":
        cut = draw(st.integers(0, len(data)))
        path.write_bytes(data[:cut])
        return f"{name} cut at byte {cut}"
    if kind == "reencode":
        codec = draw(st.sampled_from(["utf-16", "utf-8-sig", "latin-1", "utf-32"]))
        path.write_bytes(data.decode("utf-8").replace("a", "é", 3).encode(codec, errors="replace"))
        return f"{name} as {codec}"
    if kind == "link":
        (mine / name).write_bytes(data)
        path.unlink()
        path.symlink_to(mine / name)
        return f"{name} a link to a user's copy"
    if kind == "lines" and name == "requests.jsonl":
        lines = data.splitlines()
        i = draw(st.integers(0, len(lines) - 1))
        lines[i] = draw(st.sampled_from([b"[1, 2]", b"\xff\xfe", b'{"index": "x"}', b"null", b"{", b"NaN"]))
        path.write_bytes(b"\n".join(lines) + b"\n")
        return f"{name} line {i + 1} replaced"
    doc = json.loads(data.splitlines()[0] if name == "requests.jsonl" else data)
    if kind == "reorder" and isinstance(doc, dict):
        keys = draw(st.permutations(list(doc)))
        doc = {k: doc[k] for k in keys}
    else:
        places = _paths(doc)
        at = draw(st.sampled_from(places))
        _set(doc, at, draw(JSON_VALUES))
    text = json.dumps(doc)
    if name == "requests.jsonl":
        path.write_bytes(text.encode() + b"\n" + b"\n".join(data.splitlines()[1:]) + b"\n")
    else:
        path.write_text(text)
    return f"{name} {kind}"


def _verb(args: list[str]) -> tuple[int, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = cli.main(args)
        except SystemExit as e:
            rc = int(e.code or 0)
    return rc, err.getvalue()


@settings(max_examples=CASES)
@given(data=st.data(), verb=st.sampled_from(["analyze", "compare", "history add", "baseline promote"]))
def test_mutated_real_files_are_refused_in_one_line_or_read(data: st.DataObject, verb: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        night, mine = root / "night", root / "mine"
        shutil.copytree(NIGHTS / "night-01", night)
        mine.mkdir()
        did = data.draw(mutation(night / "spec_ngram", mine), label="mutation")
        args = {
            "analyze": ["analyze", str(night)],
            "compare": ["compare", str(NIGHTS / "night-02"), str(night)],
            "history add": ["history", "add", str(night), "--store", str(root / "store")],
            "baseline promote": ["baseline", "promote", str(night), "--to", str(root / "baseline")],
        }[verb]
        may_write = {"analyze": night, "history add": root / "store", "baseline promote": root / "baseline"}
        outside = {"mine": tree_hash(mine), "reference": tree_hash(NIGHTS)}
        untouched = tree_hash(root, may_write.get(verb))
        rc, err = _verb(args)
        assert rc in (0, 1, 2), (did, err[-2000:])  # 3 is a crash
        assert "Traceback" not in err, (did, err[-2000:])
        assert len([line for line in err.splitlines() if line.startswith("bench: error")]) <= 1, (did, err)
        assert {"mine": tree_hash(mine), "reference": tree_hash(NIGHTS)} == outside, did
        assert tree_hash(root, may_write.get(verb)) == untouched, did
