"""The web side: a Flask app whose request publishes a task; /ping is what the task calls back."""

from flask import Flask

from tasks import fetch

app = Flask(__name__)


@app.post("/orders/<int:order>")
def place(order: int) -> str:
    return fetch.delay(order).id


@app.get("/ping")
def ping() -> str:
    return "pong"
