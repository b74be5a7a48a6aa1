# Sourced by the Makefile's recipes and by tests: the environment the collection runs in.
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$top/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$top/.venv/collections"
export ANSIBLE_HOST_KEY_CHECKING=False
export ANSIBLE_NOCOLOR=1
export ANSIBLE_RETRY_FILES_ENABLED=False
export PYTHONPATH="$top/.venv/collections${PYTHONPATH:+:$PYTHONPATH}"
