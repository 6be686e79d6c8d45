#!/usr/bin/env python3
"""Lists every C++/CUDA function longer than --max lines and fails when there is one.

    python3 tools/function_lengths.py [--max 80] [--all] PATH...

A PATH is a folder (searched for .cpp .cc .hpp .h .cu .cuh) or a file. Each long function is
printed as `file:line: name: N lines (limit M)`, longest first; the exit status is 1 when any
is printed. --all prints every function and always exits 0 (to look, not to check).

How a function is found, without a compiler:
  * comments, string and character literals (raw strings included) and preprocessor lines are
    blanked first, keeping the line breaks, so no brace inside them counts;
  * each `{` is matched with its `}`; the block is a function body when the text before it (its
    head, back to the last `;` or closed body at the same depth) ends in a parameter list `)`,
    possibly followed by qualifiers (const, noexcept(...), override, -> type, ...) or by a
    constructor's member initializers, and the word before that `(` is not if/for/while/switch/
    catch;
  * a lambda, a local class or any block inside a function counts toward that function; a
    lambda outside any function counts as a function of its own, named <lambda>.
A function's length runs from the line of its opening brace to the line of its closing one.
"""
import argparse
import os
import re
import sys

EXTENSIONS = (".cpp", ".cc", ".hpp", ".h", ".cu", ".cuh")
CONTROL = {"if", "for", "while", "switch", "catch", "return", "sizeof", "decltype", "alignof"}
QUALIFIER = re.compile(r"(\b(const|volatile|override|final|mutable|constexpr|try|noexcept)|&&|&)\s*$")
WORD_BEFORE = re.compile(r"(operator\s*(\(\s*\)|\[\s*\]|[^\w\s(]+|\w[\w:<>,\s*&]*?)|~?[A-Za-z_][\w:]*(<[^(){};]*>)?)\s*$")
CLASS_LIKE = re.compile(r"\b(struct|class|union|enum|namespace|extern)\b")
IDENT = re.compile(r"[A-Za-z_]\w*")


def blank(source):
    """The source with comments, literals and preprocessor lines replaced by spaces (line
    breaks kept), so braces and semicolons in them do not count."""
    out = []
    i, n = 0, len(source)
    line_start = True
    keep = lambda text: out.append(re.sub(r"[^\n]", " ", text))
    while i < n:
        c = source[i]
        if line_start and c == "#":
            j = i
            while j < n and source[j] != "\n":
                j = j + 2 if source[j] == "\\" and j + 1 < n else j + 1
            keep(source[i:j])
            i = j
            continue
        if c == "\n":
            out.append(c)
            line_start = True
            i += 1
            continue
        if not c.isspace():
            line_start = False
        if source.startswith("//", i):
            j = source.find("\n", i)
            j = n if j < 0 else j
            keep(source[i:j])
            i = j
        elif source.startswith("/*", i):
            j = source.find("*/", i + 2)
            j = n if j < 0 else j + 2
            keep(source[i:j])
            i = j
        elif c == "R" and i + 1 < n and source[i + 1] == '"' and not (i > 0 and (source[i - 1].isalnum() or source[i - 1] == "_")) \
                or c in "uUL8" and re.match(r'(u8|u|U|L)R"', source[i:i + 4]):
            start = source.index('"', i)
            paren = source.index("(", start)
            end = source.find(")" + source[start + 1:paren] + '"', paren)
            j = n if end < 0 else end + paren - start + 1
            out.append(source[i:start + 1])
            keep(source[start + 1:j - 1])
            out.append('"')
            i = j
        elif c == '"' or (c == "'" and not (i > 0 and source[i - 1].isalnum())):  # 1'000: a digit separator
            j = i + 1
            while j < n and source[j] != c and source[j] != "\n":
                j += 2 if source[j] == "\\" else 1
            out.append(c)
            keep(source[i + 1:j])
            out.append(c if j < n else "")
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching_open(text, close):
    """Index of the '(' that matches the ')' at text[close], or -1."""
    depth = 0
    for i in range(close, -1, -1):
        if text[i] == ")":
            depth += 1
        elif text[i] == "(":
            depth -= 1
            if depth == 0:
                return i
    return -1


def strip_qualifiers(head):
    """The head without what may follow a parameter list: qualifiers, noexcept(...), -> type."""
    while True:
        head = head.rstrip()
        m = QUALIFIER.search(head)
        if m:
            head = head[:m.start()]
            continue
        if head.endswith(")"):
            open_ = matching_open(head, len(head) - 1)
            if open_ > 0 and re.search(r"\b(noexcept|throw)\s*$", head[:open_]):
                head = re.sub(r"\b(noexcept|throw)\s*$", "", head[:open_])
                continue
        arrow = head.rfind("->")
        if arrow > 0 and head[arrow + 2:].count("(") == head[arrow + 2:].count(")") and head[:arrow].rstrip().endswith(")"):
            head = head[:arrow]
            continue
        return head


def parameter_list_name(head):
    """For a head ending in `name(...)`: (name, offset of name); None when it does not."""
    head = strip_qualifiers(head)
    if not head.endswith(")"):
        return None
    open_ = matching_open(head, len(head) - 1)
    if open_ < 0:
        return None
    before = head[:open_].rstrip()
    if before.endswith("]") or before.endswith("]()"):
        return ("<lambda>", len(before))
    m = WORD_BEFORE.search(before)
    if not m:
        return None
    name = re.sub(r"\s+", "", m.group(1))
    if name in CONTROL:
        return ("<control>", m.start())
    return (name, m.start())


def constructor_name(head):
    """For a constructor head `Name(...) : a_(x), b_{y}`: (name, offset); None otherwise."""
    depth = 0
    for i, c in enumerate(head):
        if c in "([{<":
            depth += c != "<"
        elif c in ")]}":
            depth -= 1
        elif c == ":" and depth == 0 and head[i - 1:i] != ":" and head[i + 1:i + 2] != ":":
            found = parameter_list_name(head[:i])
            if found and found[0] not in ("<control>", "<lambda>") and initializers(head[i + 1:]):
                return found
            return None
    return None


def initializers(text):
    """Whether text is a member initializer list: name(...) or name{...}, comma-separated."""
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        m = re.compile(r"[A-Za-z_][\w:]*(<[^(){};]*>)?\s*").match(text, i)
        if not m or m.end() >= n or text[m.end()] not in "({":
            return False
        i = closing(text, m.end())
        if i < 0:
            return False
        while i < n and text[i].isspace():
            i += 1
        if i == n:
            return True
        if text[i] != ",":
            return False
        i += 1


def closing(text, open_):
    """Index after the bracket that closes text[open_], or -1."""
    pairs = {"(": ")", "{": "}"}
    stack = []
    for i in range(open_, len(text)):
        if text[i] in pairs:
            stack.append(pairs[text[i]])
        elif text[i] in ")}":
            if not stack or stack.pop() != text[i]:
                return -1
            if not stack:
                return i + 1
    return -1


def classify(head):
    """What the block after head is: ('function', name, offset) | ('lambda',) | ('body',) | ('init',)."""
    stripped = head.strip()
    for found in (parameter_list_name(head), constructor_name(head)):
        if found and found[0] == "<lambda>":
            return ("lambda",)
        if found and found[0] != "<control>":
            return ("function", found[0], found[1])
        if found:
            return ("body",)
    if stripped.endswith("]"):
        return ("lambda",)
    if not stripped or re.search(r"\b(else|do|try)$", stripped) or CLASS_LIKE.search(stripped):
        return ("body",)
    return ("init",)


def functions(path):
    """(line, name, length) of every function in path, outside-in."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = blank(f.read())
    found = []
    line = 1
    # Per open block: kind, name, opening line, start of the current statement at its depth,
    # line of the statement's name.
    stack = [{"kind": "file", "stmt": 0, "parens": 0}]
    for i, c in enumerate(text):
        if c == "\n":
            line += 1
        elif c in "()":
            stack[-1]["parens"] += 1 if c == "(" else -1
        elif c == ";" and stack[-1]["parens"] == 0:  # not the ones of for (;;)
            stack[-1]["stmt"] = i + 1
        elif c == "{":
            start = stack[-1]["stmt"]
            head = text[start:i]
            inside = any(b["kind"] == "function" for b in stack)
            kind = classify(head)
            if inside and kind[0] == "function":
                kind = ("body",)
            if not inside and kind[0] == "lambda":
                kind = ("function", "<lambda>", len(head.rstrip()))
            name_line = line - head[kind[2]:].count("\n") if kind[0] == "function" else line
            stack.append({"kind": kind[0], "name": kind[1] if kind[0] == "function" else None,
                          "line": line, "name_line": name_line, "stmt": i + 1, "parens": 0})
        elif c == "}" and len(stack) > 1:
            block = stack.pop()
            if block["kind"] == "function":
                found.append((block["name_line"], block["name"], line - block["line"] + 1))
            if block["kind"] in ("function", "body"):
                stack[-1]["stmt"] = i + 1
    return found


def sources(paths):
    for path in paths:
        if os.path.isfile(path):
            yield path
            continue
        for folder, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                if name.endswith(EXTENSIONS):
                    yield os.path.join(folder, name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max", type=int, default=80, help="longest allowed function, in lines (default 80)")
    parser.add_argument("--all", action="store_true", help="print every function, fail on none")
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args()
    rows = []
    for path in sources(args.paths):
        if not os.path.exists(path):
            sys.exit(f"function_lengths: no such file or folder: {path}")
        rows += [(length, path, line, name) for line, name, length in functions(path)]
    rows.sort(key=lambda r: (-r[0], r[1], r[2]))
    long_ones = [r for r in rows if args.all or r[0] > args.max]
    for length, path, line, name in long_ones:
        print(f"{path}:{line}: {name}: {length} lines (limit {args.max})")
    if long_ones and not args.all:
        print(f"function_lengths: {len(long_ones)} function(s) over {args.max} lines; split them "
              "(a helper per banner or step)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
