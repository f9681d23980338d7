#!/usr/bin/env python3
# Reads CONTENT_LENGTH bytes of body and answers their length and MD5.
import hashlib
import os
import sys

n = int(os.environ.get("CONTENT_LENGTH") or 0)
data = sys.stdin.buffer.read(n)
sys.stdout.write("Content-Type: text/plain\r\nX-Len: %d\r\n\r\n%s" % (len(data), hashlib.md5(data).hexdigest()))
