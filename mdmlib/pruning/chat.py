"""The proxy's second proposer: the structured description sent to an OpenAI-compatible chat
endpoint (``POST <endpoint>/chat/completions``), as TDC sends it to GPT-4.

The reply's content must hold a JSON list of schemes; each is parsed against the U-Net's shape
and checked against the limit (a scheme over it is refused, never silently shrunk). Every
prompt and reply is kept in ``transcript`` for the group's audit file. Off by default
(``tdc.proxy.proposer: offline``); the key is read from the environment variable the config names.
"""
from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request

from mdmlib.pruning.proxy import BankEntry, SearchProblem
from mdmlib.pruning.scheme import PruningScheme

SYSTEM = ("You are an expert in structured pruning of diffusion U-Nets. Answer with JSON only: a list of pruning "
          "schemes in the requested format, every scheme within the MACs limit.")


class ChatProposer:
    name = "chat"

    def __init__(self, endpoint: str, model: str, api_key_env: str | None = None, timeout: float = 60.0):
        self.endpoint, self.model, self.timeout = endpoint.rstrip("/"), model, timeout
        self.api_key = os.environ.get(api_key_env, "") if api_key_env else ""
        self.transcript: list[dict] = []

    def ask(self, messages: list[dict]) -> str:
        body = json.dumps({"model": self.model, "messages": messages, "temperature": 0.7}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(f"{self.endpoint}/chat/completions", body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply = json.load(response)
        except urllib.error.HTTPError as err:  # reached, but refused (a wrong path, key or model)
            raise ValueError(f"config key 'tdc.proxy.endpoint': {self.endpoint} answered HTTP {err.code} "
                             f"({err.reason}); check the endpoint, tdc.proxy.chat_model and the API key") from err
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            raise ValueError(f"config key 'tdc.proxy.endpoint': {self.endpoint} cannot be reached ({err})") from err
        try:
            return reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as err:
            raise ValueError(f"tdc.proxy.endpoint {self.endpoint}: not a chat-completions reply: {reply!r:.300}") from err

    def propose(self, problem: SearchProblem, bank: list[BankEntry], k: int) -> list[PruningScheme]:
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": json.dumps(problem.description(bank, k), indent=1)}]
        content = self.ask(messages)
        record = {"messages": messages, "reply": content, "accepted": [], "refused": []}
        self.transcript.append(record)
        schemes = []
        for item in parse_schemes(content):
            try:
                scheme = PruningScheme.from_dict(item, problem.shape)
            except ValueError as err:
                record["refused"].append({"scheme": item, "why": str(err)})
                continue
            macs = problem.count(scheme)
            if macs > problem.limit_macs:
                record["refused"].append({"scheme": item, "why": f"{macs} MACs over the limit {int(problem.limit_macs)}"})
                continue
            record["accepted"].append(item)
            schemes.append(scheme)
        if not schemes:
            raise ValueError(f"tdc.proxy.endpoint {self.endpoint}: no usable scheme in the reply "
                             f"({len(record['refused'])} refused: {record['refused'][:2]})")
        return schemes[:k]


def parse_schemes(content: str) -> list:
    """The JSON list in a reply (bare, or inside a ```json fence)."""
    fenced = re.search(r"```(?:json)?\s*(.*?)```", content, re.S)
    text = fenced.group(1) if fenced else content
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end < start:
        raise ValueError(f"the proposer's reply holds no JSON list: {content[:200]!r}")
    try:
        value = json.loads(text[start:end + 1])
    except json.JSONDecodeError as err:
        raise ValueError(f"the proposer's reply is not valid JSON ({err}): {content[:200]!r}") from err
    if not isinstance(value, list):
        raise ValueError("the proposer's reply is not a JSON list")
    return value
