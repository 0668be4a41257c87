"""The one retry policy: for the Anthropic and OpenAI SDKs (their own retries are switched off),
the GitHub provider (`retrying`) and the per-entry task's countdown (`backoff`).

SDK calls: retried on 429 (waiting what `retry-after` asks), 408/409, 5xx (incl. 529
overloaded), timeouts and connection errors, with exponential backoff and jitter up to a
limit. Never retried: authentication (401/403: the message names the key's variable) and
invalid requests (400/404/413/422: the message names the settings to check).
Every message is scrubbed of key material (`redact`) before it leaves a provider.

The loop itself is tenacity's: it lets the wait depend on the failed attempt (retry-after),
stop early when the server asks for more than we allow, and log each retry in our words.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn, TypeVar

import anthropic
import openai
import tenacity

from playbook_sync.providers.base import ProviderError, TransientProviderError

log = logging.getLogger(__name__)
T = TypeVar("T")

_TRANSIENT_STATUS = frozenset({408, 409, 429})
_AUTH_STATUS = frozenset({401, 403})
# Anything shaped like a provider key, even a masked one an error message echoes back
# ("Incorrect API key provided: sk-proj-****abcd"), and GitHub's token formats.
_KEYLIKE = re.compile(r"\b(?:(?:sk|pk|rk)-[A-Za-z0-9_*\-]{4,}|gh[pousr]_[A-Za-z0-9]{16,}|github_pat_\w{16,})")
_STATUS_ERRORS = (anthropic.APIStatusError, openai.APIStatusError)
_CONNECTION_ERRORS = (anthropic.APIConnectionError, openai.APIConnectionError)  # timeouts included
_SDK_ERRORS = (anthropic.AnthropicError, openai.OpenAIError)


class AuthError(ProviderError):
    """The provider rejected the key: fix the named variable; never retried."""


class InvalidRequest(ProviderError):
    """The provider rejected the request as invalid (bad model name, too long); never retried."""


class RetriesExhausted(TransientProviderError):
    """Still failing transiently after the configured number of retries.

    Transient still: these retries cover a blip (seconds); the per-entry task retries the whole
    entry later with its own, longer backoff (PLAYBOOK_SYNC_TASK_MAX_RETRIES / _TASK_RETRY_BACKOFF),
    so an outage of some minutes does not fail the run's entries.
    """


@dataclass(frozen=True)
class Service:
    """Who we are calling, which variable holds its key, and the secrets to scrub."""

    name: str  # "Anthropic" | "OpenAI"
    key_env: str  # e.g. "PLAYBOOK_SYNC_ANTHROPIC_API_KEY (or ANTHROPIC_API_KEY)"
    secrets: Sequence[str] = field(default=(), repr=False)


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long to wait; waits double from base up to max_seconds."""

    max_retries: int = 4
    base_seconds: float = 1.0
    max_seconds: float = 60.0

    @classmethod
    def from_settings(cls, settings) -> RetryPolicy:
        """The policy configured by PLAYBOOK_SYNC_LLM_MAX_RETRIES / _RETRY_BASE_SECONDS / _RETRY_MAX_SECONDS."""
        return cls(settings.llm_max_retries, settings.llm_retry_base_seconds, settings.llm_retry_max_seconds)

    def backoff(self, retry: int) -> float:
        """The wait before the n-th retry (0-based) under this policy."""
        return backoff(retry, self.base_seconds, self.max_seconds)


def backoff(retry: int, base_seconds: float, max_seconds: float = math.inf) -> float:
    """Exponential backoff with jitter (half fixed, half random) for the n-th retry (0-based).

    The jitter keeps concurrent workers that failed together from retrying in lockstep.
    """
    ceiling = min(max_seconds, base_seconds * 2**retry)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def retrying(policy: RetryPolicy, *, transient: Callable[[BaseException], bool],
             on_retry: Callable[[BaseException, int, float], None],
             on_give_up: Callable[[BaseException, int], NoReturn] | None = None,
             sleep: Callable[[float], None] = time.sleep) -> tenacity.Retrying:
    """A tenacity loop under policy: retries exceptions for which transient() holds.

    The wait is what the server asked (`retry-after`) or else our backoff; a wait longer than
    policy.max_seconds ends the loop at once. on_retry(exc, retry number, wait) runs before
    each wait; when the loop gives up, on_give_up(last exc, attempts) raises (default: the
    last exception itself). Exceptions that are not transient propagate unchanged.
    """

    def wait(state: tenacity.RetryCallState) -> float:
        asked = retry_after(state.outcome.exception())
        return asked if asked is not None else policy.backoff(state.attempt_number - 1)

    def give_up(state: tenacity.RetryCallState) -> NoReturn:
        exc = state.outcome.exception()
        if on_give_up is not None:
            on_give_up(exc, state.attempt_number)
        raise exc

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(transient),
        wait=wait,
        stop=tenacity.stop_any(tenacity.stop_after_attempt(policy.max_retries + 1),
                               lambda state: state.upcoming_sleep > policy.max_seconds),
        before_sleep=lambda state: on_retry(state.outcome.exception(), state.attempt_number, state.upcoming_sleep),
        retry_error_callback=give_up,
        sleep=sleep,
    )


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """Text with every known secret and anything key-shaped replaced."""
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, "[redacted]")
    return _KEYLIKE.sub("[redacted-key]", text)


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, `retry-after` seconds or HTTP date)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def is_transient(exc: BaseException) -> bool:
    """429/408/409/5xx answers, timeouts and connection errors."""
    if isinstance(exc, _CONNECTION_ERRORS):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(exc, _STATUS_ERRORS) and status is not None and (status in _TRANSIENT_STATUS or status >= 500)


def describe(exc: BaseException, service: Service) -> str:
    """A short, scrubbed description of an SDK error: status, type and the API's message."""
    if isinstance(exc, _STATUS_ERRORS):
        body = getattr(exc, "body", None)
        error = body.get("error", body) if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        kind = error.get("type") if isinstance(error, dict) else None
        text = f"{exc.status_code} {kind or type(exc).__name__}: {message or exc.message}"
    elif isinstance(exc, (anthropic.APITimeoutError, openai.APITimeoutError)):
        text = "request timed out"
    elif isinstance(exc, _CONNECTION_ERRORS):
        text = "connection error"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return redact(text, service.secrets)[:500]


def call(fn: Callable[[], T], *, service: Service, policy: RetryPolicy, what: str, settings_hint: str = "",
         sleep: Callable[[float], None] = time.sleep) -> T:
    """Run one SDK request with our retry policy; raise a scrubbed ProviderError when it cannot succeed."""

    def log_retry(exc: BaseException, retry: int, delay: float) -> None:
        log.warning("%s %s: %s; retry %d/%d in %.2fs", service.name, what, describe(exc, service), retry,
                    policy.max_retries, delay)

    def give_up(exc: BaseException, attempts: int) -> NoReturn:
        detail = describe(exc, service)
        if attempts > policy.max_retries:
            raise RetriesExhausted(f"{service.name} {what} failed after {attempts} attempts: {detail} "
                                   "(limit: PLAYBOOK_SYNC_LLM_MAX_RETRIES)") from None
        raise RetriesExhausted(f"{service.name} {what}: {detail}; retry-after {retry_after(exc) or 0:.0f}s exceeds "
                               "PLAYBOOK_SYNC_LLM_RETRY_MAX_SECONDS") from None

    try:
        return retrying(policy, transient=is_transient, on_retry=log_retry, on_give_up=give_up, sleep=sleep)(fn)
    except _SDK_ERRORS as exc:  # not transient (our own bugs are not caught: they are not the provider's)
        detail = describe(exc, service)
        if isinstance(exc, _STATUS_ERRORS) and exc.status_code in _AUTH_STATUS:
            raise AuthError(f"{service.name} rejected the API key for {what} ({detail}); "
                            f"set a valid key in {service.key_env}") from None
        hint = f"; check {settings_hint}" if settings_hint else ""
        raise InvalidRequest(f"{service.name} refused {what} ({detail}){hint}") from None
