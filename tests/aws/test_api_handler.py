"""The API function on Lambda: bearer JWT, API Gateway events, the real model server behind."""

from __future__ import annotations

import asyncio
import json

import pytest

from functions.api.auth import client_signer
from shared.settings import Settings
from tests.aws.conftest import Aws, Container, Fakes, Queues, deploy, function_env
from tests.aws.events import Context, http_event
from tests.aws.test_dead_letters import SECRET_TEXT, dead_jobs
from tests.conftest import Gateway

API = "functions.api.lambda_handler"


@pytest.fixture
def token(aws: Aws, queues: Queues, monkeypatch: pytest.MonkeyPatch, aws_db_url: str,
          fakes: Fakes, service_keys: tuple[str, str], gateway: Gateway) -> str:
    env = function_env(service_keys, gateway.url, aws_db_url, fakes, queues)
    deploy(aws, monkeypatch, env)
    return client_signer(Settings.from_env(env)).sign("lambda-client", ttl_s=300)


def test_models_are_listed_for_a_valid_token(token: str, container: Container,
                                             gateway: Gateway) -> None:
    event = http_event("GET", "/v1/models", headers={
        "authorization": f"Bearer {token}", "user-agent": "OpenAI/Python 1.50.0"})
    response = container.invoke(API, event, Context("charla-api"))
    assert response["statusCode"] == 200
    listed = json.loads(response["body"])
    assert listed["object"] == "list"
    assert gateway.settings.model_name in [m["id"] for m in listed["data"]]


def test_no_token_is_401_before_anything_else(token: str, container: Container) -> None:
    response = container.invoke(API, http_event("GET", "/v1/models"))
    assert response["statusCode"] == 401
    assert response["headers"]["www-authenticate"].startswith("Bearer")
    assert json.loads(response["body"])["error"]["code"] == "invalid_api_key"


def test_a_chat_completion_through_lambda(token: str, container: Container,
                                          gateway: Gateway) -> None:
    body = json.dumps({"model": gateway.settings.model_name, "max_tokens": 8,
                       "messages": [{"role": "user", "content": "Say OK."}]}).encode()
    event = http_event("POST", "/v1/chat/completions", body, {
        "authorization": f"Bearer {token}", "content-type": "application/json"})
    response = container.invoke(API, event)
    assert response["statusCode"] == 200
    completion = json.loads(response["body"])
    assert completion["choices"][0]["message"]["role"] == "assistant"
    assert completion["usage"]["completion_tokens"] >= 1


def test_the_admin_view_on_aws_shows_the_dead_letter_queue_and_moves_jobs_back(
    aws: Aws, queues: Queues, monkeypatch: pytest.MonkeyPatch, aws_db_url: str, fakes: Fakes,
    service_keys: tuple[str, str], gateway: Gateway, container: Container
) -> None:
    env = function_env(service_keys, gateway.url, aws_db_url, fakes, queues)
    deploy(aws, monkeypatch, env)
    admin = client_signer(Settings.from_env(env)).sign("ops", ttl_s=300, scopes=("admin",))
    asyncio.run(dead_jobs(queues, aws))  # two jobs the worker gave up on

    def call(method: str, path: str) -> tuple[int, dict[str, object]]:
        response = container.invoke(API, http_event(method, path, headers={
            "authorization": f"Bearer {admin}"}))
        return response["statusCode"], json.loads(response["body"])

    status, health = call("GET", "/v1/admin/health")
    assert (status, health["failed_jobs"]) == (200, 2)
    status, listed = call("GET", "/v1/admin/jobs/failed")
    assert status == 200
    jobs = listed["data"]
    assert isinstance(jobs, list) and len(jobs) == 2
    assert all(j["kind"] == "answer" and "channel_not_found" in j["error"]
               and j["attempts"] == 1 for j in jobs)
    assert SECRET_TEXT not in json.dumps(listed)
    status, moved = call("POST", f"/v1/admin/jobs/{jobs[0]['id']}/retry")
    assert (status, moved) == (200, {"id": jobs[0]["id"], "state": "queued"})
    assert queues.count(aws) == 1 and queues.count(aws, dead=True) == 1
    status, missing = call("POST", "/v1/admin/jobs/no-such-message/retry")
    assert status == 404 and missing["error"]["code"] == "job_not_found"
    status, _ = call("POST", "/v1/admin/jobs/not%20an%20id/retry")
    assert status == 400
