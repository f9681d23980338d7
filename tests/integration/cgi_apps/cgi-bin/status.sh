#!/bin/sh
# Status and Location from a script; Connection is hop-by-hop and dropped.
printf 'Status: 201 Made It\nLocation: /made/1\nConnection: close\nContent-Type: text/plain\n\ncreated'
