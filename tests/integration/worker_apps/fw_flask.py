from flask import Flask, request, jsonify

app = Flask(__name__)


@app.route("/")
def index():
    return "Hello from Flask"


@app.route("/json", methods=["POST"])
def post_json():
    data = request.get_json()
    return jsonify(received=data, script_root=request.script_root, path=request.path)


@app.route("/url")
def url():
    return request.url
