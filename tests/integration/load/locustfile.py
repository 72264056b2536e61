"""A Locust test of the app `snakepit-perf simulate --serve` stands in for: two commands of the
default pool, predict twice as often as embed. The snakepit-perf plugin reports each request
as the client saw it (and opens a run of its own when not under `bench run`)."""

from locust import HttpUser, constant, task

import snakepit_perf.locust_plugin  # noqa: F401


class Caller(HttpUser):
    wait_time = constant(0.02)

    @task(2)
    def predict(self) -> None:
        self.client.get("/call/predict", name="predict")

    @task(1)
    def embed(self) -> None:
        self.client.get("/call/embed", name="embed")
