#!/bin/sh
# A header value with a bare CR: would split the response if passed on.
printf 'Content-Type: text/plain\nX-A: a\rSet-Cookie: evil=1\n\nbody'
