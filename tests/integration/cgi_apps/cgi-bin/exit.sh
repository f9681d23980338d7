#!/bin/sh
# Exits before writing a response head.
echo "dying" >&2
exit 3
