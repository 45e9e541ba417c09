"""The Python node: wraps its "greeting" input into its "package" output."""
# ruff: noqa: UP031, B905 -- the original's %-formatting and zip(), kept as they were
import json
import sys

ARGS = json.load(open(sys.argv[1]))
PARAMS = ARGS.pop("params")
IN = ARGS.pop("in")
OUT = ARGS.pop("out")

with open(IN["greeting"]) as rh, open(OUT["package"], "w") as wh:
    wh.write("bash says: %s" % rh.read())
    wh.write("python says: %s" % "happy!")
