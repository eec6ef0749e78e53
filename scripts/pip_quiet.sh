#!/usr/bin/env bash
# Runs `pip install -q ARGS...`, drops pip's harmless "Location ... is ignored" warnings (printed when a
# pip config names local index folders that do not exist) and keeps pip's own exit status.
pip="$1"; shift
"$pip" install -q --disable-pip-version-check "$@" 2>&1 | grep -v 'is ignored: it is neither a file nor a directory'
exit "${PIPESTATUS[0]}"
