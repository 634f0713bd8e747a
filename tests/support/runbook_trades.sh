#!/usr/bin/env bash
# runbook_trades.sh N: trading activity for a replayed runbook to back up and restore:
# N market buys of 0.001 BTCUSDT, each waited for until FILLED, and one resting limit buy.
# Uses the admin key ($ADMIN_KEY) and the engine on VELOZ_PORT from the shell.
set -euo pipefail
: "${ADMIN_KEY:?}"
base=http://127.0.0.1:${VELOZ_PORT:?set the engine settings in the shell first}
count=${1:-3}
timeout 60 bash -c "until curl -fs -o /dev/null $base/health/ready; do sleep 0.5; done"
for i in $(seq "$count"); do
    id="rb-$(date +%s%N)-$i"
    curl -fsS -X POST "$base/api/order" -H "X-API-Key: $ADMIN_KEY" -H "Content-Type: application/json" \
        -d "{\"side\": \"BUY\", \"symbol\": \"BTCUSDT\", \"qty\": 0.001, \"type\": \"MARKET\", \"client_order_id\": \"$id\"}" >/dev/null
    timeout 20 bash -c "until curl -fsS -H 'X-API-Key: $ADMIN_KEY' '$base/api/order_state?client_order_id=$id' | jq -e '.status == \"FILLED\"' >/dev/null; do sleep 0.2; done"
done
bid=$(curl -fsS -H "X-API-Key: $ADMIN_KEY" "$base/api/market?symbol=BTCUSDT" | jq -r .bid)
curl -fsS -X POST "$base/api/order" -H "X-API-Key: $ADMIN_KEY" -H "Content-Type: application/json" \
    -d "{\"side\": \"BUY\", \"symbol\": \"BTCUSDT\", \"qty\": 0.001, \"price\": $(jq -n "$bid * 0.95 | floor"), \"client_order_id\": \"rb-rest-$(date +%s%N)\"}" >/dev/null
echo "placed $count filled buys and one resting order"
