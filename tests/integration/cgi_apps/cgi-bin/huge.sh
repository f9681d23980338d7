#!/bin/sh
# A response head far over the limit.
printf 'Content-Type: text/plain\nX-Big: '
head -c 200000 /dev/zero | tr '\0' 'a'
printf '\n\nbody'
