<?php
// ?n= bytes of body (past wasp's response buffer: streamed).
$n = (int)($_GET["n"] ?? 1000000);
$chunk = str_repeat("abcdefghij", 6553);
while ($n > 0) {
    $out = substr($chunk, 0, min($n, strlen($chunk)));
    echo $out;
    $n -= strlen($out);
}
