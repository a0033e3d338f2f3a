"""Telegram's Bot API (`sendMessage`), for P0: HTML-escaped, within Telegram's limit,
and the bot token kept out of every error."""

from __future__ import annotations

import html
from typing import Any

import httpx

from reconciler.channels.interface import ChannelError, Message
from reconciler.untrusted.text import redact
from state.secrets import Secret, resolve_secret
from state.spec.notifications import TelegramChannel

TELEGRAM_LIMIT = 4096
TIMEOUT_S = 10.0


def deliver(channel: TelegramChannel, key: str, message: Message, client: httpx.Client) -> str:
    token = resolve_secret(channel.token)
    try:
        return _send(channel, token, message, client)
    except httpx.HTTPError as exc:
        raise ChannelError(redact(f"{type(exc).__name__}: {exc}", token)) from None


def _send(channel: TelegramChannel, token: Secret, message: Message, client: httpx.Client) -> str:
    url = f"{channel.api_url.rstrip('/')}/bot{token.reveal()}/sendMessage"
    body = {"chat_id": channel.chat_id, "text": telegram_text(message), "parse_mode": "HTML"}
    response = client.post(url, json=body, timeout=TIMEOUT_S)
    if response.status_code == 429:
        retry = _json(response).get("parameters", {}).get("retry_after", 1)
        raise ChannelError(f"telegram: 429 too many requests, retry after {retry}s", float(retry))
    answer = _json(response)
    if response.status_code != 200 or not answer.get("ok"):
        raise ChannelError(
            redact(f"telegram: status {response.status_code}: {response.text[:200]}", token)
        )
    return f"telegram message {answer.get('result', {}).get('message_id', '?')}"


def telegram_text(message: Message) -> str:
    """HTML-escaped, at most 4096 characters (Telegram's limit)."""
    head = f"{message['severity']} {message['transition']}"
    text = f"<b>{html.escape(head)}</b>\n{html.escape(str(message['text']))}"
    return text if len(text) <= TELEGRAM_LIMIT else text[: TELEGRAM_LIMIT - 1] + "…"


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
