"""The WebSocket API (`/ws-api/v3`), as far as the adapters use it: `ping`, `time`,
`userDataStream.subscribe.signature`, `userDataStream.unsubscribe` and
`session.subscriptions`; user data events delivered as `{"subscriptionId": n, "event":
{...}}` to every subscription. Faults armed for a method name apply here too."""

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from tests.support.fake_binance import auth, wire
from tests.support.fake_binance.faults import Fault, FaultPlan
from tests.support.fake_binance.limits import RateLimits, RateRefusal
from tests.support.fake_binance.sockets import Outbox

_WEIGHTS = {
    "ping": 1,
    "time": 1,
    "userDataStream.subscribe.signature": 2,
    "userDataStream.unsubscribe": 2,
    "session.subscriptions": 2,
}


@dataclass
class Session:
    outbox: Outbox
    subscriptions: list[int] = field(default_factory=list)
    next_id: int = 0


class WsApi:
    def __init__(
        self,
        *,
        verifier: auth.Verifier,
        limits: RateLimits,
        faults: FaultPlan,
        now_ms: Callable[[], int],
        log: Callable[[str, str, dict[str, str]], None],
        hold: Callable[[], Awaitable[None]],
        ping_interval_s: float,
    ) -> None:
        self.verifier = verifier
        self.limits = limits
        self.faults = faults
        self.now_ms = now_ms
        self.log = log
        self.hold = hold
        self.ping_interval_s = ping_interval_s
        self.sessions: list[Session] = []
        self.close_after: int | None = None
        self.subscribes = 0
        self._changed = asyncio.Condition()

    @property
    def subscribed(self) -> int:
        return sum(len(s.subscriptions) for s in self.sessions)

    def publish(self, event: dict[str, object]) -> None:
        for session in self.sessions:
            for sub in session.subscriptions:
                session.outbox.put({"subscriptionId": sub, "event": event})

    async def wait_subscribed(self, timeout_s: float, at_least: int = 1) -> None:
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: self.subscribed >= at_least)

    async def drop_all(self, *, abrupt: bool = False) -> None:
        for session in list(self.sessions):
            await session.outbox.drop(abrupt=abrupt)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=self.ping_interval_s, autoping=True)
        await ws.prepare(request)
        session = Session(Outbox(ws, request, self.close_after))
        self.sessions.append(session)
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._request(session, message.data)
        finally:
            self.sessions.remove(session)
            await session.outbox.finish()
            await self._notify()
        return ws

    async def _request(self, session: Session, data: str) -> None:
        try:
            request = json.loads(data)
            ident = request.get("id")
            method = str(request["method"]).removeprefix("v3/")
            params = request.get("params") or {}
            if not isinstance(params, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError, AttributeError):
            session.outbox.put(
                _answer(None, 400, error={"code": -1135, "msg": "Invalid JSON Request"})
            )
            return
        text_params = {k: auth.ws_value(v) for k, v in params.items()}
        self.log(
            "WS", method, {k: v for k, v in text_params.items() if k not in ("signature", "apiKey")}
        )
        now = self.now_ms()
        try:
            self.limits.admit(_WEIGHTS.get(method, 1), now)
        except RateRefusal as refusal:
            session.outbox.put(self._error(ident, refusal, retry_after=True))
            return
        armed = self.faults.take(method, "WS")
        if armed is not None and not armed.apply:
            await self._fault(session, ident, armed.fault)
            return
        try:
            result = await self._call(session, method, params, text_params)
        except wire.Refusal as refusal:
            answer = self._error(ident, refusal)
        else:
            answer = _answer(ident, 200, result=result, rate_limits=self.limits.rate_limits(now))
        if armed is not None:
            await self._fault(session, ident, armed.fault)
            return
        session.outbox.put(answer)
        await self._notify()

    async def _call(
        self, session: Session, method: str, params: dict[str, object], text: dict[str, str]
    ) -> object:
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": self.now_ms()}
        if method == "userDataStream.subscribe.signature":
            self.verifier.check_key(text.get("apiKey"))
            self.verifier.check_signature(auth.ws_api_payload(params), text.get("signature"))
            auth.check_timestamp(text, self.now_ms())
            if session.subscriptions:  # one account, one subscription per connection
                raise wire.Refusal(-2035, "User Data Stream subscription already active.")
            sub = session.next_id
            session.next_id += 1
            session.subscriptions.append(sub)
            self.subscribes += 1
            return {"subscriptionId": sub}
        if method == "userDataStream.unsubscribe":
            wanted = wire.integer(text, "subscriptionId")
            ending = [s for s in session.subscriptions if wanted is None or s == wanted]
            if wanted is not None and not ending:
                raise wire.Refusal(-2036, "User Data Stream subscription not active.")
            for sub in ending:
                session.subscriptions.remove(sub)
                terminated = {"e": "eventStreamTerminated", "E": self.now_ms()}
                session.outbox.put({"subscriptionId": sub, "event": terminated})
            return {}
        if method == "session.subscriptions":
            return [{"subscriptionId": s} for s in session.subscriptions]
        raise wire.Refusal(-1020, "This operation is not supported.")

    async def _fault(self, session: Session, ident: object, fault: Fault) -> None:
        if fault is Fault.TIMEOUT:
            await self.hold()
            return
        if fault is Fault.DROP:
            await session.outbox.drop(abrupt=True)
            return
        refusal = {
            Fault.HTTP_500: wire.INTERNAL_500,
            Fault.HTTP_503: wire.BUSY_503,
            Fault.CODE_1007: wire.TIMEOUT_1007,
            Fault.RATE_429: RateRefusal(-1003, "Too many requests queued.", 429, retry_after_s=1),
            Fault.BAN_418: RateRefusal(
                -1003, "Way too much request weight used.", 418, retry_after_s=1
            ),
        }[fault]
        session.outbox.put(
            self._error(ident, refusal, retry_after=isinstance(refusal, RateRefusal))
        )

    def _error(
        self, ident: object, refusal: wire.Refusal, *, retry_after: bool = False
    ) -> dict[str, object]:
        error = refusal.body()
        if retry_after and isinstance(refusal, RateRefusal):
            # The WebSocket API puts the ban's end in `data.retryAfter` (ms since epoch).
            now = self.now_ms()
            error["data"] = {"serverTime": now, "retryAfter": now + refusal.retry_after_s * 1000}
        return _answer(
            ident, refusal.status, error=error, rate_limits=self.limits.rate_limits(self.now_ms())
        )

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


def _answer(
    ident: object,
    status: int,
    *,
    result: object = None,
    error: dict[str, object] | None = None,
    rate_limits: list[dict[str, object]] | None = None,
) -> dict[str, object]:
    answer: dict[str, object] = {"id": ident, "status": status}
    if error is not None:
        answer["error"] = error
    else:
        answer["result"] = result
    if rate_limits is not None:
        answer["rateLimits"] = rate_limits
    return answer
