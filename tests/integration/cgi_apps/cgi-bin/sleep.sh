#!/bin/sh
# Never answers in time.
sleep 30
printf 'Content-Type: text/plain\n\nlate\n'
