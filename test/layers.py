#!/usr/bin/env python3
"""The layer rule, checked: imports between source files flow one way.

    api → pipeline → {store, encoder, worker, vectorizer} → pg → pg_ecom_core (core/)

A file may use files of its own layer or of a lower one, and no two files
may use each other, directly or through others (no cycle). `src/lib.rs`
wires everything and is exempt; code under `#[cfg(test)]` is not counted
(tests may reach across layers).

usage: test/layers.py [--self-test] [--graph] [--docs FILE...]
  --self-test  first show that the checker catches an upward import and a
               cycle (in a scratch tree), so that its "no violation" means
               something
  --graph      print the file-level import graph (what the closing notes show)
  --docs       also check that every repository path FILE mentions exists
Exits 1 with one line per violation.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
RANK = {"api": 5, "pipeline": 4, "store": 3, "encoder": 3, "worker": 3, "vectorizer": 3, "pg": 1, "core": 0}
EXEMPT = {"src/lib.rs", "src/pg_tests.rs", "src/testdata.rs"}


def modules():
    """file (relative path) → its module path as a tuple, per crate."""
    out = {}
    for crate, base in (("crate", ROOT / "src"), ("pg_ecom_core", ROOT / "core" / "src")):
        for p in sorted(base.rglob("*.rs")):
            rel = p.relative_to(base).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] in ("mod", "lib"):
                parts = parts[:-1]
            out[str(p.relative_to(ROOT))] = (crate, tuple(parts))
    return out


def layer(path):
    if path.startswith("core/"):
        return "core"
    parts = path.split("/")
    return parts[1] if len(parts) > 2 else None


def strip_tests(text):
    """Drops every item under #[cfg(test)] (a `mod tests { … }` or `mod x;`)."""
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        if lines[i].strip() == "#[cfg(test)]":
            j = i + 1
            if lines[j].rstrip().endswith(";"):
                i = j + 1
                continue
            depth = 0
            while j < len(lines):
                depth += lines[j].count("{") - lines[j].count("}")
                if depth <= 0 and "{" in "".join(lines[i + 1:j + 1]):
                    break
                j += 1
            i = j + 1
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def code_only(text):
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(\\.|[^"\\])*"', '""', text)


PATH = re.compile(r"\b(crate|pg_ecom_core|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+|::\{)")


def uses(text, crate, mod):
    """Module paths (crate, parts) this text names, groups expanded."""
    found = []
    text = code_only(strip_tests(text))
    # `use a::{b, c::{d}}` → a::b, a::c::d (one level of nesting is enough here)
    for m in re.finditer(r"\b(crate|pg_ecom_core|super)((?:::\w+)*)::\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}", text):
        for item in re.split(r",(?![^{]*\})", m.group(3)):
            item = item.strip()
            if not item:
                continue
            head = item.split("::{")[0]
            found.append((m.group(1), m.group(2) + ("" if head == "self" else "::" + head)))
    for m in PATH.finditer(text):
        found.append((m.group(1), m.group(2)))
    # a module naming its own child module (`mod x;` then `x::f` or
    # `pub use x::f`): an edge to the child's file like any other
    children = re.findall(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+(\w+)\s*;", text, flags=re.M)
    for child in children:
        if re.search(r"(?<![\w:])" + child + r"::", text):
            found.append(("self", "::" + child))
    for root, rest in found:
        parts = [p for p in rest.split("::") if p and p != "{"]
        if root == "self":
            yield (crate, tuple(list(mod) + parts))
        elif root == "super":
            base = list(mod[:-1]) if mod else []
            while parts and parts[0] == "super":
                parts, base = parts[1:], base[:-1]
            yield (crate, tuple(base + parts))
        elif root == "crate":
            yield (crate, tuple(parts))
        else:
            yield ("pg_ecom_core", tuple(parts))


def resolve(target, by_module):
    crate, parts = target
    for n in range(len(parts), -1, -1):
        f = by_module.get((crate, parts[:n]))
        if f:
            return f
    return None


def graph():
    mods = modules()
    by_module = {v: k for k, v in mods.items()}
    edges = {}
    for f, (crate, mod) in mods.items():
        if f in EXEMPT:
            continue
        text = (ROOT / f).read_text()
        deps = set()
        for t in uses(text, crate, mod):
            g = resolve(t, by_module)
            # a file naming its own folder's mod.rs for a child (`super::x`
            # where x is a sibling file) resolves to the sibling, not mod.rs
            if g and g != f and g not in EXEMPT:
                deps.add(g)
        edges[f] = deps
    return edges


def cycles(edges):
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def docs_paths(files):
    bad = []
    pat = re.compile(r"(?<![\w/.-])((?:src|core|test|scripts|benches|sql|docs|models|\.ci)/[\w./-]*\w)")
    for doc in files:
        for m in pat.finditer((ROOT / doc).read_text()):
            if not (ROOT / m.group(1)).exists():
                bad.append(f"{doc}: names {m.group(1)}, which does not exist")
    return bad


def self_test():
    """A scratch tree with one upward import and one cycle: both must be found."""
    import tempfile
    global ROOT
    saved = ROOT
    with tempfile.TemporaryDirectory() as d:
        ROOT = pathlib.Path(d)
        files = {
            "src/lib.rs": "mod api; mod pg; mod store;",
            "src/api/mod.rs": "pub mod a;",
            "src/api/a.rs": "use crate::store::s::f;",
            "src/pg/mod.rs": "pub mod p;",
            "src/pg/p.rs": "use crate::api::a::g;\n#[cfg(test)]\nmod tests {\n    use crate::store::t::h;\n}",
            "src/store/mod.rs": "pub mod s;\npub mod t;",
            "src/store/s.rs": "use super::t::x;",
            "src/store/t.rs": "pub fn x() { crate::store::s::y() }",
            "core/src/lib.rs": "pub mod m;",
            "core/src/m.rs": "",
        }
        for f, text in files.items():
            (ROOT / f).parent.mkdir(parents=True, exist_ok=True)
            (ROOT / f).write_text(text)
        found = problems(graph())
        ROOT = saved
    want = [
        "src/pg/p.rs (pg) imports src/api/a.rs (api): a lower layer may not use a higher one",
        "import cycle: src/store/s.rs ↔ src/store/t.rs",
    ]
    if sorted(found) != sorted(want):
        print("layers self-test: expected", want, "found", found)
        return False
    return True


def problems(edges):
    out = []
    for f, deps in sorted(edges.items()):
        lf = layer(f)
        if lf is None and f not in EXEMPT:
            out.append(f"{f} sits outside every layer folder")
        for g in sorted(deps):
            lg = layer(g)
            if lf in RANK and lg in RANK and RANK[lg] > RANK[lf]:
                out.append(f"{f} ({lf}) imports {g} ({lg}): a lower layer may not use a higher one")
    for c in cycles(edges):
        out.append("import cycle: " + " ↔ ".join(c))
    return out


def main(argv):
    if "--self-test" in argv and not self_test():
        return 1
    edges = graph()
    found = problems(edges)
    if "--graph" in argv:
        for f, deps in sorted(edges.items()):
            print(f"{f} → {', '.join(sorted(deps)) or '(nothing)'}")
    if "--docs" in argv:
        found += docs_paths(argv[argv.index("--docs") + 1:])
    for p in found:
        print(p)
    if found:
        return 1
    print(f"layers: {len(edges)} files, {sum(map(len, edges.values()))} imports, no cycle, none upward")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
