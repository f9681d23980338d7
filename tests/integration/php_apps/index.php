<?php
// A front controller: every route goes through here, by PATH_INFO (or the rewritten REQUEST_URI).
$route = $_SERVER["PATH_INFO"] ?? "";
if ($route === "" && isset($_GET["route"])) {
    $route = "/" . $_GET["route"];
}
if ($route === "" || $route === "/") {
    echo "home";
} elseif (preg_match('#^/users/(\d+)$#', $route, $m)) {
    header("Content-Type: application/json");
    echo json_encode(["user" => (int)$m[1], "script" => $_SERVER["SCRIPT_NAME"]]);
} elseif ($route === "/go") {
    header("Location: /index.php/users/7");
} else {
    http_response_code(404);
    echo "no route " . htmlspecialchars($route);
}
