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
    """One line per provider key: accepted, refused, or the provider not reachable."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        return list(
            await asyncio.gather(
                _check(
                    http,
                    "OPENAI_API_KEY",
                    f"{models.openai_base_url}/models",
                    {"Authorization": f"Bearer {models.openai_api_key}"},
                    timeout,
                ),
                _check(
                    http,
                    "DEEPGRAM_API_KEY",
                    f"{models.deepgram_base_url}/projects",
                    {"Authorization": f"Token {models.deepgram_api_key}"},
                    timeout,
                ),
            )
        )


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
