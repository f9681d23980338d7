<?php
// Echoes what PHP got: the FastCGI/CGI meta-variables, query, form, cookies and uploads.
header("Content-Type: application/json");
if (isset($_GET["set"])) {
    setcookie("seen", $_GET["set"]);
}
$files = [];
foreach ($_FILES as $key => $f) {
    $files[$key] = ["name" => $f["name"], "size" => $f["size"], "error" => $f["error"],
                    "md5" => $f["error"] === 0 ? md5_file($f["tmp_name"]) : ""];
}
$keys = ["REQUEST_METHOD", "SCRIPT_NAME", "SCRIPT_FILENAME", "PATH_INFO", "PATH_TRANSLATED",
         "QUERY_STRING", "REQUEST_URI", "CONTENT_TYPE", "CONTENT_LENGTH", "HTTPS", "SERVER_NAME",
         "SERVER_PORT", "REMOTE_ADDR", "SERVER_PROTOCOL", "HTTP_X_TEST", "HTTP_PROXY",
         "GATEWAY_INTERFACE", "DOCUMENT_ROOT", "PHP_SELF", "REDIRECT_STATUS"];
$server = [];
foreach ($keys as $k) {
    $server[$k] = $_SERVER[$k] ?? null;
}
$raw = ($_SERVER["CONTENT_TYPE"] ?? "") === "application/octet-stream" ? file_get_contents("php://input") : "";
echo json_encode(["get" => $_GET, "post" => $_POST, "cookie" => $_COOKIE, "files" => $files,
                  "server" => $server, "pid" => getmypid(), "proxy_env" => getenv("HTTP_PROXY"),
                  "raw_md5" => md5($raw), "raw_len" => strlen($raw)]);
