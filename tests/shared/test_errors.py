"""One family of errors: every exception class Charla defines is a CharlaError (shared/errors.py
says what each layer raises), but for the few that never leave the module that raises them."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from shared.errors import CharlaError, JobOutcome, UpstreamError

PACKAGES = ("shared", "functions", "model_server", "charla")
# Raised and caught within one module, never seen by a caller.
PRIVATE = {"functions.worker.reply._Missing", "shared.serving._HeadersTooLarge"}
# A ValueError by contract (argparse's choices, the privacy API's 400), named here on purpose.
VALUE_ERRORS = {"shared.privacy.UnknownPlatform"}


def defined_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for package in PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            # A Lambda entry builds its Mangum adapter, and with it an event loop, at import:
            # it defines no error, and its loop would be left to the garbage collector.
            if info.name.endswith(("__main__", "lambda_handler")):
                continue
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if (inspect.isclass(obj) and issubclass(obj, BaseException)
                        and obj.__module__ == info.name):
                    found[f"{info.name}.{name}"] = obj
    return found


def test_every_error_charla_defines_is_a_charla_error() -> None:
    found = defined_exceptions()
    assert len(found) > 20  # the walk did reach the packages
    outside = sorted(name for name, cls in found.items()
                     if not issubclass(cls, CharlaError) and name not in PRIVATE | VALUE_ERRORS)
    assert outside == []


def test_each_layer_raises_its_own_kind() -> None:
    from functions.messaging import PlatformError
    from functions.model_client import ModelServerError
    from functions.worker.answer import GiveUp, Retry
    from model_server.engines.base import EngineError
    from shared.aws import AwsError
    from shared.http import ClientLeft

    assert all(issubclass(c, UpstreamError)
               for c in (ModelServerError, EngineError, PlatformError, AwsError))
    assert issubclass(Retry, JobOutcome) and issubclass(GiveUp, JobOutcome)
    assert issubclass(ClientLeft, CharlaError) and not issubclass(ClientLeft, UpstreamError)
