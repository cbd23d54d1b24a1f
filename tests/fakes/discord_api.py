"""A stand-in for Discord's HTTP API, served on loopback in tests (Discord lies outside the net).

It answers the routes Charla uses the way Discord documents them, errors included, keeps the
messages it holds so a test can read what a user would finally see, and records every call.
Shapes: https://discord.com/developers/docs/reference#error-messages and
https://discord.com/developers/docs/topics/rate-limits#exceeding-a-rate-limit
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

Failure = Literal["429", "500", "slow", "drop"]
MAX_CONTENT = 2000
_NAME = re.compile(r"^[-_'\w]{1,32}$")


@dataclass(frozen=True)
class Call:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    json: Any


@dataclass
class Thread:
    """What one interaction shows: the deferred answer and its follow-ups, in order."""

    original: str = ""  # "" while Discord still shows "<bot> is thinking…"
    followups: dict[str, str] = field(default_factory=dict)


def error(status: int, message: str, code: int, **extra: Any) -> JSONResponse:
    return JSONResponse({"message": message, "code": code, **extra}, status_code=status)


def form_error(errors: dict[str, Any]) -> JSONResponse:
    return error(400, "Invalid Form Body", 50035, errors=errors)


def field_error(code: str, message: str) -> dict[str, Any]:
    return {"_errors": [{"code": code, "message": message}]}


class _Dropped(Response):
    """Starts a 200 answer, then the connection dies before the body is complete."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", b"200")]})
        await send({"type": "http.response.body", "body": b'{"id": "', "more_body": True})
        raise ConnectionAbortedError("fake Discord dropped the connection")


class FakeDiscord:
    """Discord for one application: interaction webhooks and command registration."""

    def __init__(self, application_id: str, bot_token: str) -> None:
        self.application_id = application_id
        self.bot_token = bot_token
        self.calls: list[Call] = []
        self.threads: dict[str, Thread] = {}
        self.commands: dict[str | None, list[dict[str, Any]]] = {}
        self.delay_s = 2.0  # how long a "slow" answer takes: more than the tests' client timeout
        self._failures: list[tuple[Failure, float]] = []
        self._ids = itertools.count(1_300_000_000_000_000_001)
        hook = "/webhooks/{app_id}/{token}"
        self.app = Starlette(routes=[
            Route(hook, self._execute, methods=["POST"]),
            Route(hook + "/messages/{message_id}", self._edit, methods=["PATCH"]),
            Route("/applications/{app_id}/commands", self._register, methods=["PUT"]),
            Route("/applications/{app_id}/guilds/{guild_id}/commands", self._register,
                  methods=["PUT"]),
        ])

    # What tests arrange and read.

    def open_interaction(self, token: str) -> None:
        """An interaction the webhook answered with a deferred response (type 5)."""
        self.threads[token] = Thread()

    def original(self, token: str) -> str:
        return self.threads[token].original

    def followups(self, token: str) -> list[str]:
        return list(self.threads[token].followups.values())

    def fail_next(self, n: int, kind: Failure, *, retry_after: float = 1.5) -> None:
        """The next ``n`` calls fail: 429 or 500 without acting; "slow" and "drop" act first
        and then answer too late or not at all, as when Discord posted but the answer was lost.
        """
        self._failures += [(kind, retry_after)] * n

    # Discord's side.

    async def _record(self, request: Request) -> Any:
        raw = await request.body()
        try:
            body = await request.json() if raw else None
        except ValueError:
            body = None
        self.calls.append(Call(request.method, request.url.path, dict(request.query_params),
                               {k.lower(): v for k, v in request.headers.items()}, body))
        return body

    def _injected(self) -> tuple[Failure, float] | None:
        return self._failures.pop(0) if self._failures else None

    async def _finish(self, failure: tuple[Failure, float] | None,
                      response: Response) -> Response:
        if failure is not None and failure[0] == "slow":
            await asyncio.sleep(self.delay_s)
        if failure is not None and failure[0] == "drop":
            return _Dropped()
        return response

    def _refuse(self, failure: tuple[Failure, float] | None) -> Response | None:
        if failure is None or failure[0] not in ("429", "500"):
            return None
        if failure[0] == "500":
            return error(500, "500: Internal Server Error", 0)
        response = JSONResponse(
            {"message": "You are being rate limited.", "retry_after": failure[1],
             "global": False}, status_code=429)
        response.headers["Retry-After"] = str(math.ceil(failure[1]))
        response.headers["X-RateLimit-Scope"] = "user"
        return response

    def _thread(self, request: Request) -> Thread | None:
        if request.path_params["app_id"] != self.application_id:
            return None
        return self.threads.get(request.path_params["token"])

    def _message(self, message_id: str, content: str) -> dict[str, Any]:
        return {"id": message_id, "type": 0, "content": content, "channel_id": "1",
                "application_id": self.application_id, "webhook_id": self.application_id,
                "author": {"id": self.application_id, "username": "Charla", "bot": True},
                "mentions": [], "mention_roles": [], "mention_everyone": False,
                "attachments": [], "embeds": [], "flags": 0, "pinned": False, "tts": False,
                "timestamp": "2025-01-01T00:00:00.000000+00:00", "edited_timestamp": None}

    async def _execute(self, request: Request) -> Response:
        body = await self._record(request)
        failure = self._injected()
        refused = self._refuse(failure)
        if refused is not None:
            return refused
        thread = self._thread(request)
        if thread is None:
            return error(404, "Unknown Webhook", 10015)
        invalid = _check_content(body)
        if invalid is not None:
            return invalid
        message_id = str(next(self._ids))
        thread.followups[message_id] = body["content"]
        # Without wait=true Discord answers 204 and the caller never learns the message id.
        answer: Response = Response(status_code=204)
        if request.query_params.get("wait", "").lower() == "true":
            answer = JSONResponse(self._message(message_id, body["content"]))
        return await self._finish(failure, answer)

    async def _edit(self, request: Request) -> Response:
        body = await self._record(request)
        failure = self._injected()
        refused = self._refuse(failure)
        if refused is not None:
            return refused
        thread = self._thread(request)
        if thread is None:
            return error(404, "Unknown Webhook", 10015)
        message_id = request.path_params["message_id"]
        if message_id != "@original" and message_id not in thread.followups:
            return error(404, "Unknown Message", 10008)
        invalid = _check_content(body)
        if invalid is not None:
            return invalid
        if message_id == "@original":
            thread.original = body["content"]
            message_id = "1299999999999999999"
        else:
            thread.followups[message_id] = body["content"]
        return await self._finish(failure, JSONResponse(self._message(message_id,
                                                                      body["content"])))

    async def _register(self, request: Request) -> Response:
        body = await self._record(request)
        failure = self._injected()
        refused = self._refuse(failure)
        if refused is not None:
            return refused
        if request.headers.get("authorization") != f"Bot {self.bot_token}":
            return error(401, "401: Unauthorized", 0)
        if request.path_params["app_id"] != self.application_id:
            return error(403, "Missing Access", 50001)
        if not isinstance(body, list):
            return form_error({"_errors": [{"code": "LIST_TYPE_CONVERT",
                                            "message": "Only iterables may be used in a "
                                                       "ListType"}]})
        problems = {str(i): p for i, c in enumerate(body) if (p := _check_command(c))}
        if problems:
            return form_error(problems)
        guild_id = request.path_params.get("guild_id")
        registered = [
            {"id": str(next(self._ids)), "application_id": self.application_id,
             "version": str(next(self._ids)), "type": 1, "default_member_permissions": None,
             "nsfw": False, **({"guild_id": guild_id} if guild_id else {}), **command}
            for command in body
        ]
        self.commands[guild_id] = registered
        return await self._finish(failure, JSONResponse(registered))


def _check_content(body: Any) -> Response | None:
    if not isinstance(body, dict) or not isinstance(body.get("content"), str):
        return form_error({"content": field_error("BASE_TYPE_REQUIRED",
                                                  "This field is required")})
    content: str = body["content"]
    if not content:
        return error(400, "Cannot send an empty message", 50006)
    # Discord does not document its unit; counting UTF-16 code units is the stricter reading.
    if len(content.encode("utf-16-le")) // 2 > MAX_CONTENT:
        return form_error({"content": field_error(
            "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length.")})
    return None


def _check_command(command: Any) -> dict[str, Any]:
    """Discord's rules for a chat-input command, as far as Charla's commands touch them."""
    if not isinstance(command, dict):
        return field_error("DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
    problems: dict[str, Any] = {}
    name = command.get("name")
    if not isinstance(name, str) or not _NAME.match(name) or name != name.lower():
        problems["name"] = field_error("APPLICATION_COMMAND_INVALID_NAME",
                                       "Command name is invalid")
    description = command.get("description")
    if not isinstance(description, str) or not 1 <= len(description) <= 100:
        problems["description"] = field_error("BASE_TYPE_BAD_LENGTH",
                                              "Must be between 1 and 100 in length.")
    if not set(command.get("contexts") or []) <= {0, 1, 2}:
        problems["contexts"] = field_error("ENUM_TYPE_COERCE", "Value is not a valid enum value.")
    if not set(command.get("integration_types") or []) <= {0, 1}:
        problems["integration_types"] = field_error("ENUM_TYPE_COERCE",
                                                    "Value is not a valid enum value.")
    for i, option in enumerate(command.get("options") or []):
        bad = _check_option(option)
        if bad:
            problems.setdefault("options", {})[str(i)] = bad
    return problems


def _check_option(option: Any) -> dict[str, Any]:
    problems: dict[str, Any] = {}
    if not isinstance(option, dict):
        return field_error("DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
    if option.get("type") not in range(1, 12):
        problems["type"] = field_error("ENUM_TYPE_COERCE", "Value is not a valid enum value.")
    name = option.get("name")
    if not isinstance(name, str) or not _NAME.match(name) or name != name.lower():
        problems["name"] = field_error("APPLICATION_COMMAND_INVALID_NAME",
                                       "Command name is invalid")
    description = option.get("description")
    if not isinstance(description, str) or not 1 <= len(description) <= 100:
        problems["description"] = field_error("BASE_TYPE_BAD_LENGTH",
                                              "Must be between 1 and 100 in length.")
    for bound, low in (("min_length", 0), ("max_length", 1)):
        value = option.get(bound)
        if value is not None and not (isinstance(value, int) and low <= value <= 6000):
            problems[bound] = field_error("NUMBER_TYPE_MAX",
                                         "int value should be less than or equal to 6000.")
    return problems
