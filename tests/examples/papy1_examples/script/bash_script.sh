# The bash node: copies its "message" input to its "greeting" output.
# PARAMS, IN and OUT become associative arrays (port -> path).
eval "$(python3 - "$1" <<'PYTHON'
import json, shlex, sys
args = json.load(open(sys.argv[1]))
for name in ("params", "in", "out"):
    pairs = " ".join(f"[{shlex.quote(str(k))}]={shlex.quote(str(v))}"
                     for k, v in args[name].items())
    print(f"declare -A {name.upper()}=({pairs})")
PYTHON
)"

cp "${IN['message']}" "${OUT['greeting']}"
