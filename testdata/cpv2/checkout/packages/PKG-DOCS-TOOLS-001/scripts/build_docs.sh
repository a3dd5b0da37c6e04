#!/bin/sh
exec python -m docs_tools.render "$@"
