"""python -m tests.scale up N | down | status | ssh NAME CMD"""
import sys

from tests.scale.fleet import main

sys.exit(main(sys.argv[1:]))
