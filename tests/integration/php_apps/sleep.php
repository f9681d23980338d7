<?php
// Sleeps ?s= seconds; ?drip=1 writes a byte each second meanwhile (activity without an end).
$s = (int)($_GET["s"] ?? 1);
if (isset($_GET["pidfile"])) {
    file_put_contents($_GET["pidfile"], getmypid());
}
for ($i = 0; $i < $s; $i++) {
    if (isset($_GET["drip"])) {
        echo ".";
        @ob_flush();  // past php.ini's output_buffering
        flush();
    }
    sleep(1);
}
echo "slept " . getmypid();
