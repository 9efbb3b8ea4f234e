"""Check each provider key against its provider, the way the agent will use it.

One cheap authenticated request each, bounded: the OpenAI-compatible model list
(`GET {OPENAI_BASE_URL}/models`) and Deepgram's project list (`GET {DEEPGRAM_BASE_URL}/projects`).
A key that is set but refused is the most common first-call failure; `status` finds it before
a caller does.
"""

from __future__ import annotations

import asyncio

import aiohttp

from telephony.domain.settings import ModelSettings
from telephony.operator.provisioning import Check, ok, problem


async def provider_key_checks(models: ModelSettings, timeout: float) -> list[Check]:
    """One line per provider key: accepted, refused, or the provider not reachable (each
    fallback's endpoint too, where it is not the first provider's)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        return list(
            await asyncio.gather(
                *(
                    _check(http, label, url, headers, timeout)
                    for label, url, headers in _endpoints(models)
                )
            )
        )


def _endpoints(models: ModelSettings) -> list[tuple[str, str, dict[str, str]]]:
    """(what is checked, the URL, its headers) for every endpoint a call may use, once each."""

    def key_check(
        provider: str, root: str, key: str, label: str
    ) -> tuple[str, str, dict[str, str]]:
        if provider == "deepgram":
            return label, f"{root}/projects", {"Authorization": f"Token {key}"}
        return label, f"{root}/models", {"Authorization": f"Bearer {key}"}

    endpoints = [
        key_check("openai", models.openai_base_url, models.openai_api_key, "OPENAI_API_KEY"),
        key_check(
            "deepgram", models.deepgram_base_url, models.deepgram_api_key, "DEEPGRAM_API_KEY"
        ),
    ]
    if models.fallback_llm_model:
        endpoints.append(
            key_check(
                "openai",
                models.fallback_llm_base_url,
                models.fallback_llm_api_key,
                "FALLBACK_LLM_API_KEY",
            )
        )
    for kind, provider, root in (
        ("TTS", models.fallback_tts_provider, models.fallback_tts_base_url),
        ("STT", models.fallback_stt_provider, models.fallback_stt_base_url),
    ):
        if provider:
            key = f"{provider.upper()}_API_KEY"
            endpoints.append(
                key_check(provider, root, models.api_key(provider), f"{key} (fallback {kind})")
            )
    seen: set[tuple[str, str]] = set()
    unique = []
    for label, url, headers in endpoints:
        if (url, headers["Authorization"]) not in seen:
            seen.add((url, headers["Authorization"]))
            unique.append((label, url, headers))
    return unique


async def _check(
    http: aiohttp.ClientSession, variable: str, url: str, headers: dict[str, str], timeout: float
) -> Check:
    try:
        async with asyncio.timeout(timeout), http.get(url, headers=headers) as response:
            status = response.status
    except TimeoutError:
        return problem(f"{variable} not checked: {url} did not answer within {timeout:g} s")
    except aiohttp.ClientError as e:
        return problem(f"{variable} not checked: cannot reach {url} ({type(e).__name__}: {e})")
    if status in (401, 403):
        return problem(
            f"{variable} was refused by {url} (HTTP {status}): copy a valid key from the "
            "provider's dashboard"
        )
    if status >= 400:
        return problem(f"{variable} not confirmed: {url} answered HTTP {status}")
    return ok(f"{variable} accepted by {url}")
