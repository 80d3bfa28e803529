"""Live sanity (issue 5): our ``sglang-cache-aware`` baseline and the real ``sglang-router``
0.3.2 (``--policy cache_aware``, CLI defaults) make the same choice on a scripted sequence of
requests sent through the real router to an emulated fleet of three instances — or the
difference is the documented one.

How the real router's choice is observed: each emulated instance's ``/metrics`` (requests
finished + running + waiting only ever grows by one, on the instance that admitted the request);
the router's in-flight count per worker (``GET /workers``) is checked against our own
accounting after every request that completes and after every release of held requests.

How the two are made comparable:
- Worker order. SGLang breaks load ties by the first worker in its registry's iteration order,
  which changes with every start; ``GET /workers`` lists that order, so our candidates are
  offered in it and the expectations below name positions (A, B, C = first, second, third).
- Text. SGLang's tree is over characters (match rate = matched chars / prompt chars), ours over
  16-token blocks of our tokenizer. Every prompt here is made of 4-letter words, one token and
  5 characters each (80 characters per block), and prompts share prefixes only in whole blocks,
  so both views give the same rate up to the 1-2 characters of the next word SGLang also
  matches (its first space and maybe its first letter) — except in the one step built to show
  the difference (a prefix that ends inside a block).
- Loads. SGLang's load is its own in-flight count; a request is held in flight by asking for
  8,000 tokens (non-streamed) and released by closing the connection (the router then drops
  it from its count).

Every branch is exercised: full and partial prefix hits above the 0.3 threshold, a miss below
it, the fallback (least-loaded, as the 0.3.2 wheel does, not the smallest tree), the imbalance
switch with the abs condition at and above 64 (rel over), and — on a second router started
with ``--balance-abs-threshold 2`` to keep the held load small — with the rel condition at and
above 1.5 (abs over). The step table is printed (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import string
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lodestar.localinfra.ports import free_port, free_port_block
from lodestar.localinfra.process import ManagedProcess
from lodestar.localinfra.settings import LocalInfraSettings
from lodestar.peers.catalog import SGLANG
from lodestar.peers.install import install_peer, peer_install
from lodestar.peers.launch import PeerLaunch, PeerRouter, start_peer
from lodestar.policy.contracts import InstanceView, Policy, RequestView
from lodestar.policy.profile_spec import build_policy, load_profile
from lodestar.policy.registry import default_registry
from lodestar.workload.request import Prompt

pytestmark = pytest.mark.integration

MODEL = "llama-3-8b"
INSTANCES = ("w0", "w1", "w2")
BLOCK_WORDS = 16  # one 16-token block = 16 words = 80 characters
HOLD_TOKENS = 8000  # ~60 s of decoding: "in flight" for the whole test
ADMITTED = ("vllm:request_success_total", "vllm:num_requests_running", "vllm:num_requests_waiting")


# --- prompts ---------------------------------------------------------------------------------


class Texts:
    """Prompt text made of 4-letter words (one token, five characters each).

    ``fresh`` families start with a letter no other fresh family starts with, so where two
    prompts diverge after a shared prefix, SGLang's character match stops within the first two
    characters of the next word. ``filler`` families (held requests, misses) may share a first
    letter: they never decide a match.
    """

    def __init__(self) -> None:
        self._leads = iter("nopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")

    @staticmethod
    def words(tag: str, blocks: int, lead: str) -> str:
        rng = random.Random(tag)
        out = []
        for k in range(blocks * BLOCK_WORDS):
            word = "".join(rng.choice(string.ascii_lowercase) for _ in range(4))
            out.append(" " + (lead + word[1:] if k == 0 else word))
        return "".join(out)

    def fresh(self, tag: str, blocks: int) -> str:
        return self.words(tag, blocks, next(self._leads))

    def filler(self, tag: str, blocks: int) -> str:
        return self.words(tag, blocks, random.Random(tag).choice("abcdefghijklm"))


def blocks(text: str, n: int) -> str:
    """The first ``n`` blocks (16 words) of ``text``."""
    return text[: n * BLOCK_WORDS * 5]


def words_of(text: str, n: int) -> str:
    return text[: n * 5]


# --- the emulated fleet and the real router --------------------------------------------------


def _admitted(metrics_text: str) -> float:
    lines = (line for line in metrics_text.splitlines() if line.startswith(ADMITTED))
    return sum(s.value for family in text_string_to_metric_families("\n".join(lines)) for s in family.samples)


def _lodestar() -> list[str]:
    exe = Path(sys.executable).with_name("lodestar")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from lodestar.cli.app import main; main()"]


@dataclass
class Fleet:
    urls: dict[str, str]  # instance id → URL

    async def admitted(self, client: httpx.AsyncClient) -> dict[str, float]:
        """Per instance: requests finished (any reason) + running + waiting."""
        answers = await asyncio.gather(*(client.get(f"{u}/metrics") for u in self.urls.values()))
        return {iid: _admitted(r.text) for iid, r in zip(self.urls, answers, strict=True)}

    def instance_of(self, url: str) -> str:
        return next(iid for iid, u in self.urls.items() if u == url)


@pytest.fixture(scope="session")
def sglang_installed(local_infra: LocalInfraSettings) -> None:
    """The real router, installed through lodestar.peers (a no-op once installed)."""
    install_peer(SGLANG, local_infra)


@pytest.fixture(scope="module")
def fleet(local_infra: LocalInfraSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    path = tmp_path_factory.mktemp("parity") / "fleet.yaml"
    path.write_text(
        f"name: parity3\nmodel: {MODEL}\ngroups:\n  - hardware: H100-SXM\n    count: 3\n    ids: [w0, w1, w2]\n"
    )
    base = free_port_block(len(INSTANCES))
    proc = ManagedProcess(
        name=f"test-parity-fleet-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        argv=[*_lodestar(), "emulate", "--cluster", str(path), "--port", str(base)],
        run_dir=local_infra.run_dir,
        log_dir=local_infra.log_dir,
    )
    urls = {iid: f"http://127.0.0.1:{base + k}" for k, iid in enumerate(INSTANCES)}

    def healthy() -> bool:
        try:
            return all(httpx.get(f"{u}/health", timeout=1).status_code == 200 for u in urls.values())
        except httpx.HTTPError:
            return False

    try:
        proc.start(ready=healthy, timeout_s=60)
        yield Fleet(urls)
    finally:
        proc.stop()


def _router(
    local_infra: LocalInfraSettings, fleet: Fleet, balance_abs_threshold: int | None = None
) -> Iterator[PeerRouter]:
    urls = tuple(fleet.urls.values())
    launch = PeerLaunch(SGLANG, "cache_aware", urls, free_port(), balance_abs_threshold=balance_abs_threshold)
    router = start_peer(launch, local_infra)
    try:
        yield router
    finally:
        router.stop()


@pytest.fixture
def router(sglang_installed: None, local_infra: LocalInfraSettings, fleet: Fleet) -> Iterator[PeerRouter]:
    """sglang-router 0.3.2 --policy cache_aware with every threshold at its CLI default."""
    yield from _router(local_infra, fleet)


@pytest.fixture
def router_abs2(sglang_installed: None, local_infra: LocalInfraSettings, fleet: Fleet) -> Iterator[PeerRouter]:
    """The same with --balance-abs-threshold 2, so the rel condition matters at small loads."""
    yield from _router(local_infra, fleet, balance_abs_threshold=2)


# --- running a step on both sides ------------------------------------------------------------


@dataclass
class Row:
    step: str
    loads: str
    sglang: str
    ours: str
    note: str
    shadow: str = ""


@dataclass
class Parity:
    """Sends each request through the real router and asks our policy the same question."""

    fleet: Fleet
    router: PeerRouter
    ours: Policy
    client: httpx.AsyncClient
    order: list[str] = field(default_factory=list)  # instance ids in the router's order
    inflight: dict[str, int] = field(default_factory=dict)
    shadow: Policy | None = None  # another policy asked the same questions, for comparison
    held: list[asyncio.Task[httpx.Response]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    admitted: dict[str, float] = field(default_factory=dict)  # the fleet's counts after the last step
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.order = [self.fleet.instance_of(w.url) for w in self.router.workers()]
        assert sorted(self.order) == sorted(INSTANCES)
        self.inflight = dict.fromkeys(self.order, 0)

    def letter(self, iid: str) -> str:
        return "ABC"[self.order.index(iid)]

    def loads(self) -> str:
        return "/".join(str(self.inflight[i]) for i in self.order)

    def decide(self, policy: Policy, rid: str, text: str) -> str:
        prompt = Prompt.from_text(text)
        assert prompt.n_tokens == len(text) // 5  # one token per 5-character word
        request = RequestView(rid, MODEL, prompt.n_tokens, tuple(prompt.block_hashes()))
        candidates = [
            InstanceView(iid, MODEL, state_age_s=0.0, inflight_requests=self.inflight[iid]) for iid in self.order
        ]
        return policy.decide(request, candidates, time.monotonic() - self.started).instance_id

    async def send(self, text: str, hold: bool) -> str:
        """Route ``text`` through the real router; the instance that admitted it."""
        before = self.admitted or await self.fleet.admitted(self.client)
        body = {"model": MODEL, "prompt": text, "max_tokens": HOLD_TOKENS if hold else 1}
        call = self.client.post(f"{self.router.url}/v1/completions", json=body)
        if hold:
            self.held.append(asyncio.create_task(call))
        else:
            response = await call
            assert response.status_code == 200, response.text
        deadline = time.monotonic() + 10
        while True:
            after = await self.fleet.admitted(self.client)
            grew = [i for i in INSTANCES if after[i] > before[i]]
            if grew:
                assert len(grew) == 1 and after[grew[0]] == before[grew[0]] + 1, (before, after)
                self.admitted = after  # the counts only move when we send (aborts and finishes keep the sum)
                return grew[0]
            assert time.monotonic() < deadline, "no instance admitted the request"
            await asyncio.sleep(0.01)

    async def step(
        self, name: str, text: str, expect: str, *, hold: bool = False, ours: str | None = None, note: str = ""
    ) -> None:
        """One request. ``expect`` is the position (A/B/C) both routers must choose; with
        ``ours`` given, a documented difference: SGLang must choose ``expect``, we ``ours``."""
        loads = self.loads()
        our_choice = self.decide(self.ours, name, text)
        shadow = self.letter(self.decide(self.shadow, name, text)) if self.shadow is not None else ""
        their_choice = await self.send(text, hold)
        if hold:
            self.inflight[our_choice] += 1
        self.rows.append(Row(name, loads, self.letter(their_choice), self.letter(our_choice), note, shadow))
        context = f"{name} (loads {loads}, order {self.order})"
        assert self.letter(their_choice) == expect, f"sglang-router: {context}"
        assert self.letter(our_choice) == (ours or expect), f"ours: {context}"
        if not hold:  # a held request is counted before it is forwarded; a finished one a bit later
            await self.settle()

    async def settle(self) -> None:
        """Wait until the router's in-flight counts equal ours (completions are counted down
        a moment after the client has the response)."""
        deadline = time.monotonic() + 10
        while True:
            seen = {self.fleet.instance_of(w.url): w.load for w in await asyncio.to_thread(self.router.workers)}
            if seen == self.inflight:
                return
            assert time.monotonic() < deadline, f"router loads {seen} != ours {self.inflight}"
            await asyncio.sleep(0.02)

    async def abandon(self) -> None:
        """Close held requests without checking anything (a failed test's clean-up)."""
        for task in self.held:
            task.cancel()
        await asyncio.gather(*self.held, return_exceptions=True)
        self.held.clear()

    async def release(self) -> None:
        """Close every held request; the router forgets them."""
        for task in self.held:
            task.cancel()
        await asyncio.gather(*self.held, return_exceptions=True)
        self.held.clear()
        self.inflight = dict.fromkeys(self.order, 0)
        await self.settle()

    def table(self) -> str:
        lines = ["| step | loads before (A/B/C) | sglang-router | ours | note |", "|---|---|---|---|---|"]
        lines += [f"| {r.step} | {r.loads} | {r.sglang} | {r.ours} | {r.note} |" for r in self.rows]
        return f"router order A/B/C = {'/'.join(self.order)}\n" + "\n".join(lines)


def _policy(**params: Any) -> Policy:
    spec = load_profile("sglang-cache-aware")
    if params:
        spec = spec.with_params("sglang-cache-aware", **params)
    return build_policy(spec, default_registry(), seed=0)


@pytest.fixture
async def parity(fleet: Fleet) -> AsyncIterator[Callable[[PeerRouter, Policy], Parity]]:
    """Makes a :class:`Parity` for a router and our policy; closes what it still holds after."""
    made: list[Parity] = []
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=20)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        def make(router: PeerRouter, policy: Policy) -> Parity:
            made.append(Parity(fleet, router, policy, client))
            return made[-1]

        yield make
        for p in made:
            await p.abandon()


# --- the scripts -----------------------------------------------------------------------------


async def test_cache_aware_matches_sglang_router_with_cli_defaults(
    router: PeerRouter, parity: Callable[[PeerRouter, Policy], Parity]
) -> None:
    p = parity(router, _policy())
    t = Texts()
    pa, pb, pd, pe = (t.fresh(k, 10) for k in ("Pa", "Pb", "Pd", "Pe"))

    # Balanced loads: the tree decides. The fallback question is settled at step 3: A's tree
    # holds Pa, B's and C's are empty, all loads are 0. The smallest-tree fallback (SGLang
    # before PR #14650) would pick B; the least-loaded one keeps the first of the equal loads, A.
    p.shadow = _policy(fallback="smallest-tree")
    await p.step("1 Pa, empty tree", pa, "A", note="miss; all loads 0 → least-loaded, first in order")
    await p.step("2 Pa again", pa, "A", note="hit, rate 1.0")
    await p.step("3 Pb (unrelated)", pb, "A", note="miss → least-loaded A (the smallest tree would be B)")
    assert [r.shadow for r in p.rows] == ["A", "A", "B"]  # the script tells the two fallbacks apart
    p.shadow = None
    await p.step("4 hold Pa[:6]+new4", blocks(pa, 6) + t.fresh("Pc", 4), "A", hold=True, note="hit, rate 0.6")
    await p.step("5 Pd (unrelated)", pd, "B", note="miss → least-loaded (A has 1)")
    await p.step("6 hold Pd again", pd, "B", hold=True, note="hit, rate 1.0")
    await p.step("7 Pe (unrelated)", pe, "C", note="miss → least-loaded (A, B have 1)")
    await p.step(
        "8 Pb[:4]+new6", blocks(pb, 4) + t.fresh("Pf", 6), "A", note="hit, rate 0.4 > 0.3, though A has 1 and C 0"
    )
    await p.step("9 Pb[:2]+new8", blocks(pb, 2) + t.fresh("Pg", 8), "C", note="rate 0.2 ≤ 0.3 → least-loaded C")
    await p.release()

    # The imbalance switch at the CLI defaults (abs 64, rel 1.5); min load 0, so the rel
    # condition holds whenever max > 0 and the abs one decides.
    for k in range(65):
        hold_text = pa + t.filler(f"H{k}", 1)
        note = "balanced: diff ≤ 64 (rel over, abs not) → hit"
        if k == 64:
            note = "diff 64 = abs threshold, not over → still balanced → hit"
        if k in (0, 1, 64):
            await p.step(f"10.{k} hold Pa+h{k}", hold_text, "A", hold=True, note=note)
        else:
            await p.step(f"10.{k} hold Pa+h{k}", hold_text, "A", hold=True)
    x, x2, x3 = t.fresh("X", 1), t.fresh("X2", 1), t.fresh("X3", 1)
    await p.step("11 Pa+X", pa + x, "B", note="65/0/0: diff 65 > 64 and 65 > 1.5·0 → least-loaded B, not A's hit")
    await p.step("12 hold Pa+X2", pa + x2, "B", hold=True, note="imbalanced → least-loaded B")
    await p.step("13 Pa+X3", pa + x3, "C", note="65/1/0 imbalanced → least-loaded C")
    await p.release()
    await p.step("14 Pa+X again", pa + x, "B", note="step 11's text went into B's tree: deepest match B")
    await p.step("15 Pa+Y", pa + t.fresh("Y", 1), "A", note="A, B, C all hold Pa: the first holder (A) wins")

    # The documented difference, char vs block: a prefix shared up to the middle of a block.
    # Pe (on C) shared for 56 words = 3.5 blocks. SGLang: (280 + 1) / 800 chars = 0.351 > 0.3
    # → C. Ours: only the 3 whole blocks count, 48 / 160 tokens = 0.30, not > 0.3 → miss →
    # least-loaded, all 0 → A. (Our tree never matches a partial block.)
    await p.step(
        "16 Pe[:56 words]+new",
        words_of(pe, 56) + t.fresh("Pz", 10)[: (160 - 56) * 5],
        "C",
        ours="A",
        note="DIFFERENCE: SGLang counts the half block (0.351 > 0.3 → C); we count 3 blocks (0.30 → miss → A)",
    )
    print("\n" + p.table())


async def test_rel_threshold_matches_sglang_router(
    router_abs2: PeerRouter, parity: Callable[[PeerRouter, Policy], Parity]
) -> None:
    """The rel condition on both sides, with --balance-abs-threshold 2 (rel 1.5 and cache 0.3
    at their defaults) so that it takes 23 held requests instead of more than 300: imbalanced
    iff max − min > 2 and max > 1.5 · min."""
    p = parity(router_abs2, _policy(balance_abs_threshold=2))
    t = Texts()
    q = t.fresh("Q", 10)
    await p.step("1 Q, empty tree", q, "A", note="miss → first in order")
    # 18 unrelated held misses fill the workers evenly: least-loaded, first in order on ties,
    # which walks the router's whole order (A, B, C, A, …) — the tie order beyond the first.
    for k in range(18):
        await p.step(f"2.{k} hold miss {k}", t.filler(f"F{k}", 10), "ABC"[k % 3], hold=True)
    await p.step("3 hold Q+r0", q + t.filler("R0", 1), "A", hold=True, note="6/6/6 balanced → hit")
    await p.step("4 hold Q+r1", q + t.filler("R1", 1), "A", hold=True, note="7/6/6: diff 1 ≤ 2 → hit")
    await p.step("5 hold Q+r2", q + t.filler("R2", 1), "A", hold=True, note="8/6/6: diff 2 = abs, not over → hit")
    await p.step(
        "6 hold Q+r3", q + t.filler("R3", 1), "A", hold=True, note="9/6/6: diff 3 > 2 but 9 = 1.5·6, not over → hit"
    )
    await p.step("7 Q+r4", q + t.filler("R4", 1), "B", note="10/6/6: diff 4 > 2 and 10 > 9 → least-loaded B")
    await p.release()
    await p.step("8 Q+r4 again", q + t.filler("R4", 1), "B", note="balanced again: step 7's text is in B's tree")
    print("\n" + p.table())


def test_the_wheels_default_policy_is_the_catalogs(sglang_installed: None, local_infra: LocalInfraSettings) -> None:
    """What `lodestar peers run` and the benchmarks call the router's default is what the real
    launcher's ``--help`` says it runs without ``--policy``."""
    script = peer_install(SGLANG, local_infra).script
    shown = subprocess.run(
        [str(script), *SGLANG.subcommand, "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    policy_help = shown[shown.index("\n  --policy ") :]
    default = re.search(r"\(default:\s+(\w+)\)", policy_help)
    assert default is not None, policy_help[:400]
    assert default.group(1) == SGLANG.default_policy
