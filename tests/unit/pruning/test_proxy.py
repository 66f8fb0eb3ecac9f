"""TDC's proxy search: the memory-bank loop with the offline proposer on a toy problem with a known
answer, and the chat proposer against a stub OpenAI-compatible server."""
from __future__ import annotations

import json
import math
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mdmlib.pruning.chat import ChatProposer, parse_schemes
from mdmlib.pruning.proxy import (
    BankEntry,
    MutationProposer,
    SearchProblem,
    proxy_search,
)
from mdmlib.pruning.scheme import PruningScheme, UNetShape

# A toy problem: four ResBlocks of 16 norm groups, two attention layers of 8 heads; a scheme's
# "MACs" are 100 x the sum of its ratios, so the full model has 600 and the limit 0.6 F is 360.
SHAPE = UNetShape(block_widths=(64,) * 4, group_sizes=(4,) * 4, attention_heads=(8, 8))
NAMES = ("down.0", "middle.0", "middle.2", "up.0", "middle.1 (4-1)", "up.1 (4-2)")
TARGET = PruningScheme((1.0, 0.25, 1.0, 0.25), (0.5, 0.5))  # 100 x 3.5 = 350 MACs: within the limit


def toy_count(scheme: PruningScheme) -> float:
    return 100 * (sum(scheme.block_keep) + sum(scheme.head_keep))


def distance(scheme: PruningScheme, target: PruningScheme = TARGET) -> float:
    return math.dist(scheme.block_keep + scheme.head_keep, target.block_keep + target.head_keep)


PROBLEM = SearchProblem(SHAPE, NAMES, full_macs=600, limit_macs=360.0, interval=(0, 250), count=toy_count)


def quiet(line: str) -> None:
    pass


def test_offline_search_improves_on_its_first_round_towards_the_known_answer():
    assert toy_count(TARGET) <= PROBLEM.limit_macs
    best, bank = proxy_search(PROBLEM, MutationProposer(seed=0), distance, rounds=8, candidates=4, log=quiet)
    assert [(e.round, e.candidate) for e in bank] == [(r, c) for r in range(1, 9) for c in range(1, 5)]
    assert all(toy_count(PruningScheme.from_dict(e.scheme, SHAPE)) <= PROBLEM.limit_macs for e in bank)
    assert all(e.macs_ratio <= 0.6 and e.proposer == "offline" for e in bank)
    round_one = min(e.loss for e in bank if e.round == 1)
    assert best.loss == min(e.loss for e in bank) < round_one
    uniform = PruningScheme.uniform(SHAPE, 0.6)  # the uniform scheme at the limit: 6 x 0.6 x 100 = 360
    assert bank[0].scheme == PROBLEM.fit(PruningScheme.uniform(SHAPE, 1.0)).to_dict()  # round one starts there
    assert distance(PruningScheme.from_dict(best.scheme, SHAPE)) < distance(uniform)
    assert best.loss == pytest.approx(distance(PruningScheme.from_dict(best.scheme, SHAPE)))


def test_the_search_is_reproducible_from_the_proposer_seed():
    runs = [proxy_search(PROBLEM, MutationProposer(seed=3), distance, 3, 3, log=quiet)[1] for _ in range(2)]
    assert runs[0] == runs[1]


class Greedy:
    name = "greedy"

    def propose(self, problem, bank, k):
        return [PruningScheme.uniform(problem.shape, 1.0)]  # 600 MACs: over the limit


def test_a_proposal_over_the_limit_stops_the_search():
    evaluated = []
    with pytest.raises(ValueError, match="proposer 'greedy' gave a scheme over the limit"):
        proxy_search(PROBLEM, Greedy(), evaluated.append, rounds=2, candidates=1, log=quiet)
    assert evaluated == []


def test_the_search_needs_a_round_and_a_candidate():
    with pytest.raises(ValueError, match="at least one round"):
        proxy_search(PROBLEM, MutationProposer(), distance, rounds=0, candidates=3, log=quiet)


# ----- the chat proposer ------------------------------------------------------------------------
VALID = {"block_keep": [0.5, 0.5, 0.5, 0.5], "head_keep": [0.5, 0.5]}  # 300 MACs
OVER = {"block_keep": [1.0, 1.0, 1.0, 1.0], "head_keep": [1.0, 1.0]}  # 600 MACs
WRONG_LENGTH = {"block_keep": [0.5, 0.5, 0.5], "head_keep": [0.5, 0.5]}
FENCED = "Here are the schemes:\n```json\n" + json.dumps([VALID, OVER, WRONG_LENGTH]) + "\n```\nGood luck."


@pytest.fixture
def stub(monkeypatch):
    """An OpenAI-compatible stub on 127.0.0.1: records each request (path, headers, JSON body) and
    answers with ``state['content']`` as the assistant message."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    state = {"content": FENCED, "requests": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state["requests"].append({"path": self.path, "headers": dict(self.headers), "body": body})
            reply = {"id": "stub-1", "object": "chat.completion", "model": body.get("model"),
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": state["content"]}}]}
            data = json.dumps(reply).encode()
            status = 200 if self.path == "/v1/chat/completions" else 404
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state["endpoint"] = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def bank_of_one() -> list[BankEntry]:
    scheme = PruningScheme.uniform(SHAPE, 0.6)
    return [BankEntry(1, 1, "offline", scheme.to_dict(), {"block_widths": [36] * 4, "attention_heads": [5, 5]},
                      0.6, 0.125)]


def test_chat_proposer_returns_only_the_valid_schemes_of_the_reply(stub):
    proposer = ChatProposer(endpoint=stub["endpoint"] + "/", model="stub", timeout=10)
    schemes = proposer.propose(PROBLEM, bank_of_one(), 3)
    assert schemes == [PruningScheme.from_dict(VALID, SHAPE)]
    [request] = stub["requests"]
    assert request["path"] == "/v1/chat/completions"
    assert request["body"]["model"] == "stub"
    assert "Authorization" not in request["headers"]
    system, user = request["body"]["messages"]
    assert (system["role"], user["role"]) == ("system", "user")
    description = json.loads(user["content"])
    assert [layer["layer"] for layer in description["layers"]] == list(NAMES)
    assert [layer.get("width") for layer in description["layers"][:4]] == [64] * 4
    assert [layer.get("heads") for layer in description["layers"][4:]] == [8, 8]
    assert description["macs_limit"] == 360 and description["full_macs"] == 600
    assert description["memory_bank"] == [{"scheme": bank_of_one()[0].scheme, "macs_ratio": 0.6, "loss": 0.125}]
    assert "choose 3" in description["task"]
    # the transcript: the prompt, the reply, what was accepted and what refused (and why)
    [record] = proposer.transcript
    assert record["messages"] == request["body"]["messages"] and record["reply"] == FENCED
    assert record["accepted"] == [VALID]
    refused = {json.dumps(r["scheme"]): r["why"] for r in record["refused"]}
    assert set(refused) == {json.dumps(OVER), json.dumps(WRONG_LENGTH)}
    assert "over the limit" in refused[json.dumps(OVER)] and "600" in refused[json.dumps(OVER)]
    assert "block_keep" in refused[json.dumps(WRONG_LENGTH)]


def test_chat_proposer_sends_the_key_of_the_named_environment_variable(stub, monkeypatch):
    monkeypatch.setenv("STUB_PROXY_KEY", "sk-test-123")
    ChatProposer(stub["endpoint"], "stub", api_key_env="STUB_PROXY_KEY", timeout=10).propose(PROBLEM, [], 2)
    assert stub["requests"][-1]["headers"]["Authorization"] == "Bearer sk-test-123"
    monkeypatch.delenv("STUB_PROXY_KEY")
    ChatProposer(stub["endpoint"], "stub", api_key_env="STUB_PROXY_KEY", timeout=10).propose(PROBLEM, [], 2)
    assert "Authorization" not in stub["requests"][-1]["headers"]


def test_chat_proposer_keeps_at_most_k_schemes(stub):
    other = {"block_keep": [0.25] * 4, "head_keep": [0.25, 0.25]}
    stub["content"] = json.dumps([VALID, other])  # a bare list, no fence
    assert ChatProposer(stub["endpoint"], "stub", timeout=10).propose(PROBLEM, [], 1) == \
        [PruningScheme.from_dict(VALID, SHAPE)]


def test_chat_proposer_drives_the_search(stub):
    best, bank = proxy_search(PROBLEM, ChatProposer(stub["endpoint"], "stub", timeout=10), distance, rounds=2,
                              candidates=3, log=quiet)
    assert len(stub["requests"]) == 2 and len(bank) == 2
    assert all(e.proposer == "chat" and e.scheme == VALID for e in bank)
    second = json.loads(stub["requests"][1]["body"]["messages"][1]["content"])
    assert [e["scheme"] for e in second["memory_bank"]] == [VALID]  # round 2 reads round 1's result


def test_a_reply_without_a_json_list_is_refused(stub):
    stub["content"] = "I would prune the middle block more aggressively."
    with pytest.raises(ValueError, match="no JSON list"):
        ChatProposer(stub["endpoint"], "stub", timeout=10).propose(PROBLEM, [], 2)


def test_a_reply_with_no_usable_scheme_is_refused(stub):
    stub["content"] = json.dumps([OVER, WRONG_LENGTH])
    with pytest.raises(ValueError, match="no usable scheme"):
        ChatProposer(stub["endpoint"], "stub", timeout=10).propose(PROBLEM, [], 2)


def test_a_wrong_path_is_refused_naming_the_endpoint_key(stub):
    with pytest.raises(ValueError, match="tdc.proxy.endpoint"):
        ChatProposer(stub["endpoint"] + "/wrong", "stub", timeout=10).propose(PROBLEM, [], 2)


def test_an_unreachable_endpoint_is_refused_naming_the_config_key(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ValueError, match="tdc.proxy.endpoint"):
        ChatProposer(f"http://127.0.0.1:{port}/v1", "stub", timeout=5).propose(PROBLEM, [], 2)


def test_parse_schemes_reads_fenced_and_bare_lists():
    assert parse_schemes(FENCED) == [VALID, OVER, WRONG_LENGTH]
    assert parse_schemes("sure: " + json.dumps([VALID])) == [VALID]
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_schemes("```json\n[{'block_keep': [0.5]}]\n```")
