<?php
// error_log() goes to the FastCGI stderr stream (php-cgi's error_log is unset).
error_log("oops from php");
echo "after stderr";
