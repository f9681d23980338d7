#!/bin/sh
# Output that is not a CGI head.
printf 'just some text without headers'
