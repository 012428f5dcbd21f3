# Sourced by the scripts: puts the project's virtual environment first on PATH when
# install-deps.sh made one (Debian's own python3 is "externally managed", PEP 668, so pip may not
# install into it); otherwise python3 stays whatever PATH finds.
if [ -x "$(pwd)/.venv/bin/python3" ]; then
  export PATH="$(pwd)/.venv/bin:$PATH"
fi
