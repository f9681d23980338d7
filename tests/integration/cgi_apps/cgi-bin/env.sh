#!/bin/sh
# The meta-variables the script got, one per line.
printf 'Content-Type: text/plain\n\n'
env | sort
