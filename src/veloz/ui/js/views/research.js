// Research: launch a backtest or an optimisation (POST /api/backtests, /api/optimizations)
// from generated forms — the strategy and its parameters from the catalogue's schema, the
// request's fields from the request schema (docs/research-api.md, the OpenAPI document) —,
// follow its progress, open its HTML report, list past runs, cancel and delete them.
//
// PROGRESS IS POLLED: a job's progress is not on /api/stream (jobs run in worker
// processes and write their record to disk; the stream carries the trading core's
// events). While a job of the list is queued or running, the list is re-fetched every
// POLL_MS; nothing is polled once every job has ended.
//
// REPORTS open in a new tab at /api/…/{id}/report. With authentication on, a new tab
// cannot send the Authorization header, so the link carries the access token as ?token=
// (`withToken`; the engine takes a query token on GET routes). A blob: URL made from a
// fetch would run the report in the dashboard's own origin, without the sandboxing
// Content-Security-Policy the engine serves it with: the link keeps the report isolated.
// The token is put on the link when it is clicked, so a refreshed token is used.
//
// Running, cancelling and deleting need the trader role (ROUTE_ROLES); a viewer sees the
// runs and their reports only.
import { html, useState, useEffect, useRef, useCallback } from '../html.js'
import { api, errorText, withToken } from '../api.js'
import { useStore, can } from '../store.js'
import { useEvent } from '../stream.js'
import { ErrorLine, confirmAction, Panel, fmtTime } from '../ui.js'
import { SchemaForm, validate, initialValues, toPayload, fields } from '../form.js'

const POLL_MS = 1000
const enc = encodeURIComponent
const ROUTE = { backtest: '/api/backtests', optimization: '/api/optimizations' }

// The backtest request's own fields (BacktestRequest), less strategy/params/data, which
// have their own inputs. Decimals are sent as the typed strings (the engine decodes a
// decimal from a string exactly).
const BACKTEST_SCHEMA = {
  type: 'object',
  required: ['source', 'symbol'],
  properties: {
    source: {
      type: 'string',
      minLength: 1,
      maxLength: 4096,
      label: 'data',
      placeholder: 'btc.csv or store:VENUE/SYMBOL/INTERVAL',
      description:
        "a CSV, zip or Parquet file under the engine's data directory (VELOZ_DATA_DIR), or store:VENUE/SYMBOL/INTERVAL",
    },
    symbol: { type: 'string', minLength: 1, maxLength: 32, list: 'research-symbols', description: 'the symbol the bars are of, traded by the strategy' },
    account: { enum: ['cash', 'margin'], default: 'cash', description: 'cash: balances cover every order, no short; margin: may go short' },
    balances: { type: 'string', default: 'USDT=10000', description: 'starting balances, ASSET=AMOUNT,...' },
    fee_bps: { type: 'string', format: 'decimal', minimum: 0, default: '10', description: 'maker and taker fee, basis points' },
    slippage_bps: { type: 'string', format: 'decimal', minimum: 0, default: '0', description: 'taker slippage, basis points' },
    fill: { enum: ['close', 'next_open'], default: 'close', description: "an order sent on a bar trades at that bar's close or the next bar's open" },
    path: { enum: ['ohlc', 'olhc'], default: 'ohlc', description: "the order in which a bar's prices are assumed to have traded" },
    start: { type: 'string', description: 'ISO 8601 date or time, UTC when no offset (empty: the first bar)' },
    end: { type: 'string', description: 'ISO 8601, exclusive (empty: the last bar)' },
  },
}

// OptimizationRequest's own fields (less backtest and space).
const OPTIMIZATION_SCHEMA = {
  type: 'object',
  properties: {
    method: { enum: ['grid', 'random', 'optuna'], default: 'grid', description: 'grid: every point; random / optuna: trials points' },
    trials: { type: 'integer', minimum: 1, description: 'points to evaluate (random and optuna only)' },
    objective: { enum: ['sharpe', 'sortino', 'calmar', 'total_return'], default: 'sharpe', description: 'what is maximised' },
    min_trades: { type: 'integer', minimum: 0, default: 0, description: 'fewer round trips than this: no score' },
    seed: { type: 'integer', minimum: 0, maximum: 4294967295, default: 0 },
    folds: { type: 'integer', minimum: 1, maximum: 100, label: 'walk-forward folds', description: 'empty: no walk-forward, the whole period' },
    in_sample: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1, default: 0.7, label: 'in-sample share', description: 'of each walk-forward window' },
    engine: { enum: ['auto', 'vectorized', 'event'], default: 'auto', description: 'auto: the vectorised kernels when the strategy has them' },
  },
}

// "USDT=10000, BTC=0.1" → {USDT: "10000", BTC: "0.1"}, or an error message.
export function parseBalances(text) {
  const out = {}
  for (const part of String(text || '').split(',')) {
    const item = part.trim()
    if (!item) continue
    const m = /^([A-Za-z0-9]{1,20})\s*=\s*([0-9]+(?:\.[0-9]+)?)$/.exec(item)
    if (!m) return { error: `balances: ${item} is not ASSET=AMOUNT` }
    out[m[1].toUpperCase()] = m[2]
  }
  return { balances: out }
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/

// The search space from the per-parameter rows: {name: {low, high, step} | {values}}.
// ParamRange's low/high/step are JSON numbers (int | float) for the server: the typed
// text goes through Number(), which keeps every digit of what a person types (up to 15
// significant digits). Values are sent as typed strings: they are converted to the
// parameter's type by the server.
export function buildSpace(rows) {
  const space = {}
  const errors = {}
  for (const [name, row] of Object.entries(rows)) {
    if (!row || row.mode === 'fixed') continue
    if (row.mode === 'values') {
      const values = String(row.values || '')
        .split(',')
        .map((v) => v.trim())
        .filter(Boolean)
      if (!values.length) errors[name] = `${name}: give values separated by commas`
      else space[name] = { values }
      continue
    }
    const range = {}
    for (const key of ['low', 'high', 'step']) {
      const text = String(row[key] || '').trim()
      if (!text) {
        if (key !== 'step') errors[name] = `${name}: ${key} is required`
        continue
      }
      if (!NUMBER.test(text)) {
        errors[name] = `${name}: ${key} must be a number, got ${text}`
        continue
      }
      range[key] = Number(text)
    }
    space[name] = range
  }
  if (!Object.keys(space).length && !Object.keys(errors).length) {
    errors.__space = 'search at least one parameter (range or values)'
  }
  return { space, errors }
}

function SpaceEditor({ schema, rows, onChange, errors }) {
  const specs = fields(schema)
  return html`<table class="data research-space" data-testid="research-space">
    <caption>Search space: a fixed parameter takes its value from the parameters above</caption>
    <thead><tr><th scope="col">parameter</th><th scope="col">search</th><th scope="col">low</th><th scope="col">high</th><th scope="col">step</th><th scope="col">values (a, b, c)</th></tr></thead>
    <tbody>
      ${specs.map((spec) => {
        const row = rows[spec.name] || { mode: 'fixed' }
        const set = (patch) => onChange({ ...rows, [spec.name]: { ...row, ...patch } })
        const id = `research-space-${spec.name}`
        const range = row.mode === 'range'
        const values = row.mode === 'values'
        return html`<tr key=${spec.name}>
          <th scope="row"><label for=${`${id}-mode`}>${spec.name}</label></th>
          <td>
            <select id=${`${id}-mode`} value=${row.mode} onChange=${(e) => set({ mode: e.currentTarget.value })}>
              <option value="fixed">fixed</option>
              ${spec.kind === 'boolean' ? null : html`<option value="range">range</option>`}
              <option value="values">values</option>
            </select>
            ${errors[spec.name] ? html`<small class="neg form-error" role="alert">${errors[spec.name]}</small>` : null}
          </td>
          ${['low', 'high', 'step'].map(
            (key) => html`<td key=${key}>
              <input
                id=${`${id}-${key}`}
                aria-label=${`${spec.name} ${key}`}
                inputmode="decimal"
                size="8"
                disabled=${!range}
                value=${row[key] || ''}
                onInput=${(e) => set({ [key]: e.currentTarget.value })}
              />
            </td>`,
          )}
          <td>
            <input
              id=${`${id}-values`}
              aria-label=${`${spec.name} values`}
              size="14"
              disabled=${!values}
              value=${row.values || ''}
              onInput=${(e) => set({ values: e.currentTarget.value })}
            />
          </td>
        </tr>`
      })}
    </tbody>
  </table>`
}

function LaunchForm({ catalog, onLaunched }) {
  const symbols = useStore((s) => s.symbols)
  const selected = useStore((s) => s.symbol)
  const [kind, setKind] = useState('backtest')
  const [strategy, setStrategy] = useState(catalog[0] ? catalog[0].name : '')
  const [params, setParams] = useState({})
  const [request, setRequest] = useState(() => ({ ...initialValues(BACKTEST_SCHEMA), symbol: selected || '' }))
  const [optimization, setOptimization] = useState(() => initialValues(OPTIMIZATION_SCHEMA))
  const [rows, setRows] = useState({})
  const [errors, setErrors] = useState({})
  const [error, setError] = useState(null)
  const [busy, setBusy] = useState(false)
  const entry = catalog.find((c) => c.name === strategy)
  const schema = entry ? entry.params_schema : null

  useEffect(() => {
    setParams(schema ? initialValues(schema) : {})
    setRows({})
    setErrors({})
  }, [strategy])
  useEffect(() => {
    if (!request.symbol && selected) setRequest((r) => ({ ...r, symbol: selected }))
  }, [selected])

  async function submit(e) {
    e.preventDefault()
    setError(null)
    const found = {
      ...(schema ? validate(schema, params) : {}),
      ...validate(BACKTEST_SCHEMA, request),
    }
    const { balances, error: balanceError } = parseBalances(request.balances)
    if (balanceError) found.balances = balanceError
    let space = {}
    if (kind === 'optimization') {
      Object.assign(found, validate(OPTIMIZATION_SCHEMA, optimization))
      const built = buildSpace(rows)
      space = built.space
      Object.assign(found, Object.fromEntries(Object.entries(built.errors).map(([k, v]) => [`space:${k}`, v])))
    }
    setErrors(found)
    if (Object.keys(found).length) {
      setError(`check the form: ${Object.values(found).join('; ')}`)
      return
    }
    const fixed = schema ? toPayload(schema, params) : {}
    for (const name of Object.keys(space)) delete fixed[name]
    const req = toPayload(BACKTEST_SCHEMA, request)
    const backtest = {
      strategy,
      data: [{ symbol: req.symbol.toUpperCase(), source: req.source }],
      params: fixed,
      account: req.account,
      balances,
      fee_bps: req.fee_bps,
      slippage_bps: req.slippage_bps,
      fill: req.fill,
      path: req.path,
    }
    if (req.start) backtest.start = req.start
    if (req.end) backtest.end = req.end
    let body = backtest
    if (kind === 'optimization') {
      const opt = toPayload(OPTIMIZATION_SCHEMA, optimization)
      body = {
        backtest,
        space,
        method: opt.method,
        objective: opt.objective,
        // JSON integers: the request's schema wants numbers, and these are whole numbers.
        min_trades: Number(opt.min_trades || 0),
        seed: Number(opt.seed || 0),
        engine: opt.engine,
      }
      if (opt.trials) body.trials = Number(opt.trials)
      if (opt.folds) {
        body.walk_forward = { folds: Number(opt.folds), in_sample: Number(opt.in_sample || 0.7) }
      }
    }
    setBusy(true)
    try {
      const job = await api(ROUTE[kind], { method: 'POST', body })
      onLaunched(job)
    } catch (err) {
      setError(err)
    } finally {
      setBusy(false)
    }
  }

  const spaceErrors = Object.fromEntries(
    Object.entries(errors)
      .filter(([k]) => k.startsWith('space:'))
      .map(([k, v]) => [k.slice(6), v]),
  )
  return html`<form class="research-form" onSubmit=${submit} noValidate data-testid="research-form">
    <fieldset class="research-kind">
      <legend>Run</legend>
      <input type="radio" id="research-kind-backtest" name="research-kind" value="backtest"
        checked=${kind === 'backtest'} onChange=${() => setKind('backtest')} />
      <label for="research-kind-backtest">a backtest</label>
      <input type="radio" id="research-kind-optimization" name="research-kind" value="optimization"
        checked=${kind === 'optimization'} onChange=${() => setKind('optimization')} />
      <label for="research-kind-optimization">an optimisation</label>
    </fieldset>
    <div class="field form-field">
      <label for="research-strategy">strategy</label>
      <select id="research-strategy" value=${strategy} onChange=${(e) => setStrategy(e.currentTarget.value)}>
        ${catalog.map((c) => html`<option value=${c.name}>${c.name}</option>`)}
      </select>
      ${entry ? html`<small class="muted form-help">${entry.description}</small>` : null}
    </div>
    <fieldset>
      <legend>Parameters of ${strategy}</legend>
      ${schema
        ? html`<${SchemaForm} schema=${schema} values=${params} onChange=${setParams} idPrefix="research-param" errors=${errors} />`
        : null}
    </fieldset>
    <fieldset>
      <legend>Data, account and costs</legend>
      <${SchemaForm} schema=${BACKTEST_SCHEMA} values=${request} onChange=${setRequest} idPrefix="research" errors=${errors} />
      <datalist id="research-symbols">${(symbols || []).map((s) => html`<option value=${s} />`)}</datalist>
    </fieldset>
    ${kind === 'optimization'
      ? html`<fieldset>
          <legend>Optimisation</legend>
          ${schema ? html`<${SpaceEditor} schema=${schema} rows=${rows} onChange=${setRows} errors=${spaceErrors} />` : null}
          ${spaceErrors.__space ? html`<small class="neg form-error" role="alert">${spaceErrors.__space}</small>` : null}
          <${SchemaForm} schema=${OPTIMIZATION_SCHEMA} values=${optimization} onChange=${setOptimization} idPrefix="research-opt" errors=${errors} />
        </fieldset>`
      : null}
    <button type="submit" class="btn" disabled=${busy || !strategy} data-testid="research-submit">
      ${kind === 'backtest' ? 'Run the backtest' : 'Run the optimisation'}
    </button>
    <${ErrorLine} error=${error} testid="research-form-error" />
  </form>`
}

function progressText(job) {
  const { done, total } = job.progress || { done: 0, total: 0 }
  if (!total) return job.state === 'queued' ? 'queued' : job.state === 'running' ? 'reading data' : ''
  return `${done} / ${total}`
}

function ReportLink({ job }) {
  const path = `${ROUTE[job.kind]}/${enc(job.id)}/report`
  return html`<a
    href=${path}
    target="_blank"
    rel="noopener"
    data-testid=${`job-report-${job.id}`}
    onClick=${(e) => {
      e.currentTarget.href = withToken(path)
    }}
  >report</a>`
}

// A statistic (a float the engine computed: a ratio, a score; not money) for reading:
// 6 significant digits, without the float noise of its JSON text ("3.9104261024420346" →
// "3.91043"). Money (fees, equity) is shown as the server wrote it instead.
export function statistic(value) {
  if (value === null || value === undefined || value === '') return undefined
  const n = Number(value)
  return Number.isFinite(n) ? String(Number(n.toPrecision(6))) : String(value)
}

// A ratio as a percentage with 6 significant digits ("0.0004521459999999866" → "0.0452146 %").
export function ratioPercent(value) {
  if (value === null || value === undefined || value === '') return undefined
  const n = Number(value)
  return Number.isFinite(n) ? `${Number((n * 100).toPrecision(6))} %` : String(value)
}

function Summary({ job }) {
  const [detail, setDetail] = useState(null)
  const [error, setError] = useState(null)
  useEffect(() => {
    let live = true
    api(`${ROUTE[job.kind]}/${enc(job.id)}`)
      .then((d) => live && setDetail(d))
      .catch((err) => live && setError(err))
    return () => {
      live = false
    }
  }, [job.id, job.state])
  if (error) return html`<${ErrorLine} error=${error} />`
  if (!detail) return html`<p class="note">Loading…</p>`
  const s = detail.summary
  const req = detail.request || {}
  const items = []
  if (job.kind === 'backtest') {
    items.push(['strategy', req.strategy], ['params', JSON.stringify(req.params || {})])
    if (s) {
      const st = s.statistics || {}
      items.push(
        ['period', `${s.start} .. ${s.end}`],
        ['bars', s.bars],
        ['orders / denied / fills', `${s.orders} / ${s.denied} / ${s.fills}`],
        ['fees', s.fees],
        ['final equity', s.final_equity],
        ['total return', ratioPercent(st.total_return)],
        ['sharpe', statistic(st.sharpe)],
        ['max drawdown', ratioPercent(st.max_drawdown)],
      )
    }
  } else {
    const r = req.backtest || {}
    items.push(['strategy', r.strategy], ['space', JSON.stringify(req.space || {})], ['objective', req.objective])
    if (s) {
      const best = s.best || {}
      items.push(
        ['evaluations', s.evaluations],
        ['best params', JSON.stringify(best.params || {})],
        ['best score', req.objective === 'total_return' ? ratioPercent(best.score) : statistic(best.score)],
      )
    }
  }
  return html`<table class="data research-summary" data-testid=${`job-summary-${job.id}`}>
    <caption class="muted">${job.kind === 'backtest' ? 'Backtest' : 'Optimisation'} ${job.id}</caption>
    <tbody>
      ${items
        .filter(([, v]) => v !== undefined && v !== null)
        .map(([k, v]) => html`<tr key=${k}><th scope="row">${k}</th><td class="num">${String(v)}</td></tr>`)}
    </tbody>
  </table>`
}

function JobRow({ job, mayAct, onCancel, onDelete, expanded, onToggle }) {
  const active = job.state === 'queued' || job.state === 'running'
  const { done, total } = job.progress || { done: 0, total: 0 }
  const req = job.kind === 'optimization' ? (job.request || {}).backtest || {} : job.request || {}
  return html`<tr data-testid=${`job-row-${job.id}`}>
    <td>
      <button type="button" class="research-expand" aria-expanded=${expanded ? 'true' : 'false'}
        aria-label=${`${expanded ? 'Hide' : 'Show'} the details of ${job.id}`} onClick=${onToggle}
      >${expanded ? '▾' : '▸'}</button>
      ${' '}${job.kind === 'backtest' ? 'backtest' : 'optimisation'}
    </td>
    <td><code>${job.id}</code></td>
    <td>${req.strategy || ''}</td>
    <td><span class=${`research-state research-state-${job.state}`} data-testid=${`job-state-${job.id}`}>${job.state}</span></td>
    <td>
      ${total ? html`<progress max=${total} value=${done} aria-label=${`progress of ${job.id}`}></progress> ` : null}
      <span data-testid=${`job-progress-${job.id}`}>${progressText(job)}</span>
    </td>
    <td>${fmtTime(job.created_ns)}</td>
    <td class="research-error">${job.error || ''}</td>
    <td class="research-actions">
      ${job.state === 'done' ? html`<${ReportLink} job=${job} />` : null}
      ${job.state === 'done' && job.kind === 'optimization'
        ? html` <a href=${`${ROUTE[job.kind]}/${enc(job.id)}/results`} download
            onClick=${(e) => {
              e.currentTarget.href = withToken(`${ROUTE[job.kind]}/${enc(job.id)}/results`)
            }}>results.csv</a>`
        : null}
      ${mayAct && active
        ? html` <button type="button" class="btn btn-small" data-testid=${`job-cancel-${job.id}`} onClick=${() => onCancel(job)}>cancel</button>`
        : null}
      ${mayAct
        ? html` <button type="button" class="btn btn-small btn-danger" data-testid=${`job-delete-${job.id}`} onClick=${() => onDelete(job)}>delete</button>`
        : null}
    </td>
  </tr>`
}

export function ResearchView() {
  useStore((s) => s.auth) // re-render when who is logged in changes (can() reads it)
  const mayAct = can('trader')
  const [catalog, setCatalog] = useState([])
  const [jobs, setJobs] = useState(null)
  const [error, setError] = useState(null)
  const [expanded, setExpanded] = useState({})
  const timer = useRef(null)

  const load = useCallback(async () => {
    try {
      const [b, o] = await Promise.all([
        api(ROUTE.backtest, { query: { limit: 50 } }),
        api(ROUTE.optimization, { query: { limit: 50 } }),
      ])
      const all = [...b.jobs, ...o.jobs].sort((x, y) =>
        String(y.created_ns).padStart(24, '0').localeCompare(String(x.created_ns).padStart(24, '0')),
      )
      setJobs(all)
      setError(null)
      return all
    } catch (err) {
      setError(err)
      return null
    }
  }, [])

  useEffect(() => {
    load()
    api('/api/strategies/catalog')
      .then((answer) => setCatalog(answer.strategies))
      .catch((err) => setError(err))
  }, [])

  // Poll while something is queued or running (see PROGRESS above).
  const active = (jobs || []).some((j) => j.state === 'queued' || j.state === 'running')
  useEffect(() => {
    if (!active) return undefined
    timer.current = setInterval(load, POLL_MS)
    return () => clearInterval(timer.current)
  }, [active])

  useEvent('resync', () => load())

  async function cancel(job) {
    setError(null)
    try {
      await api(`${ROUTE[job.kind]}/${enc(job.id)}/cancel`, { method: 'POST' })
    } catch (err) {
      setError(err)
    }
    load()
  }

  async function remove(job) {
    const what = job.kind === 'backtest' ? 'backtest' : 'optimisation'
    if (!(await confirmAction(`Delete ${what} ${job.id} and its files${job.state === 'running' ? ' (it is cancelled first)' : ''}?`))) return
    setError(null)
    try {
      await api(`${ROUTE[job.kind]}/${enc(job.id)}`, { method: 'DELETE' })
    } catch (err) {
      setError(err)
    }
    load()
  }

  return html`<div
    class="research-view"
    data-testid="research-view"
  >
    ${mayAct
      ? html`<${Panel} title="Run a backtest or an optimisation">
          ${catalog.length
            ? html`<${LaunchForm}
                catalog=${catalog}
                onLaunched=${(job) => {
                  setJobs((list) => [job, ...(list || []).filter((j) => j.id !== job.id)])
                  setExpanded((x) => ({ ...x, [job.id]: true }))
                  load()
                }}
              />`
            : html`<p class="note">Loading the catalogue…</p>`}
        <//>`
      : html`<p class="note" data-testid="research-viewing-only">
          Viewing only: running backtests and optimisations needs the trader role.
        </p>`}
    <${Panel} title="Runs">
      <${ErrorLine} error=${error} testid="research-error" />
      ${jobs === null
        ? html`<p class="note">Loading…</p>`
        : jobs.length === 0
          ? html`<p class="note" data-testid="research-empty">No run yet.</p>`
          : html`<table class="data research-jobs" data-testid="research-jobs">
              <thead><tr>
                <th scope="col">kind</th><th scope="col">id</th><th scope="col">strategy</th>
                <th scope="col">state</th><th scope="col">progress</th><th scope="col">created (UTC)</th>
                <th scope="col">error</th><th scope="col">actions</th>
              </tr></thead>
              <tbody>
                ${jobs.map(
                  (job) => html`
                    <${JobRow}
                      key=${job.id}
                      job=${job}
                      mayAct=${mayAct}
                      onCancel=${cancel}
                      onDelete=${remove}
                      expanded=${Boolean(expanded[job.id])}
                      onToggle=${() => setExpanded((x) => ({ ...x, [job.id]: !x[job.id] }))}
                    />
                    ${expanded[job.id]
                      ? html`<tr key=${`${job.id}-detail`}><td colspan="8"><${Summary} job=${job} /></td></tr>`
                      : null}
                  `,
                )}
              </tbody>
            </table>`}
    <//>
  </div>`
}
