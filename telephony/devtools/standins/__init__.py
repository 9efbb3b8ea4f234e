"""Local stand-ins for the services a call uses, each speaking the provider's wire protocol
so the real plugins and clients run against them: OpenAI (chat completions and speech),
Deepgram's streaming listen API, and the LiveKit server API."""
