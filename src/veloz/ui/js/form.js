// A form generated from a JSON schema (the strategies' `params_schema` from
// GET /api/strategies/catalog, and the research request forms): one labelled field per
// property, with its description, default and bounds as help text.
//
//   SchemaForm({ schema, values, onChange, idPrefix, errors, disabled })
//     values:   { name: value } — numbers are kept as the TYPED STRINGS (never parsed to
//               a float and back, so no digit is lost), booleans as booleans, enums and
//               strings as strings. onChange(nextValues) on every edit.
//     errors:   { name: message } shown under each field (validate() makes them).
//   validate(schema, values) → { name: message } for what is wrong before sending
//   initialValues(schema) → the defaults, as values
//   toPayload(schema, values) → the object to send: numbers as the typed strings (the
//               engine reads parameters loosely: "10" is taken for 10, "0.001" stays an
//               exact decimal), empty optional fields left out.
//
// Numeric fields are <input type="text" inputmode="decimal|numeric">, not type="number":
// the browser would otherwise normalise or drop what was typed ("1e-3", "0.0010", a
// stray letter) and block the form with its own bubbles; validate() checks the syntax and
// the bounds and says so in words instead.
import { html } from './html.js'

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/
const INTEGER = /^[+-]?\d+$/

// The object schema itself: msgspec answers {"$ref": "#/$defs/X", "$defs": {X: {...}}}.
export function resolve(schema) {
  let node = schema || {}
  const defs = node.$defs || {}
  for (let i = 0; i < 8 && node && node.$ref; i++) {
    const name = node.$ref.split('/').pop()
    node = defs[name] || {}
  }
  return node
}

// One property, reduced to what a field needs: kind ('integer' | 'number' | 'decimal' |
// 'enum' | 'boolean' | 'string'), bounds, default, description, nullable.
export function fieldSpec(name, prop, required) {
  let node = prop || {}
  let nullable = false
  const options = node.anyOf || node.oneOf
  if (options) {
    const real = options.filter((o) => o.type !== 'null')
    nullable = real.length < options.length
    // {"oneOf": [{"type": "number"}, {"type": "string"}]}: a decimal given either way.
    const types = real.map((o) => o.type)
    const merged = { ...node, ...(real[0] || {}) }
    delete merged.anyOf
    delete merged.oneOf
    if (types.includes('number') || types.includes('integer')) {
      merged.type = types.every((t) => t === 'integer') ? 'integer' : 'number'
    }
    node = merged
  }
  let kind = 'string'
  if (Array.isArray(node.enum)) kind = 'enum'
  else if (node.type === 'boolean') kind = 'boolean'
  else if (node.type === 'integer') kind = 'integer'
  else if (node.type === 'number') kind = 'number'
  else if (node.type === 'string' && node.format === 'decimal') kind = 'decimal'
  return {
    name,
    kind,
    label: node.label || name,
    description: node.description || '',
    default: node.default,
    enum: node.enum,
    minimum: node.minimum,
    maximum: node.maximum,
    exclusiveMinimum: node.exclusiveMinimum,
    exclusiveMaximum: node.exclusiveMaximum,
    step: node.multipleOf,
    minLength: node.minLength,
    maxLength: node.maxLength,
    placeholder: node.placeholder || '',
    list: node.list,
    required: Boolean(required) && node.default === undefined,
    nullable,
  }
}

export function fields(schema) {
  const root = resolve(schema)
  const required = new Set(root.required || [])
  return Object.entries(root.properties || {}).map(([name, prop]) =>
    fieldSpec(name, prop, required.has(name)),
  )
}

const numeric = (kind) => kind === 'integer' || kind === 'number' || kind === 'decimal'

function asValue(spec, value) {
  if (value === undefined || value === null) return spec.kind === 'boolean' ? false : ''
  if (spec.kind === 'boolean') return value === true || value === 'true'
  return String(value) // numbers arrive as their exact text (api.js parseJson) or as ints
}

export function initialValues(schema) {
  const out = {}
  for (const spec of fields(schema)) out[spec.name] = asValue(spec, spec.default)
  return out
}

function bounds(spec) {
  const parts = []
  if (spec.minimum !== undefined) parts.push(`≥ ${spec.minimum}`)
  if (spec.exclusiveMinimum !== undefined) parts.push(`> ${spec.exclusiveMinimum}`)
  if (spec.maximum !== undefined) parts.push(`≤ ${spec.maximum}`)
  if (spec.exclusiveMaximum !== undefined) parts.push(`< ${spec.exclusiveMaximum}`)
  return parts.join(', ')
}

// The message for one field, or null. Bounds are compared as floats: that is only for
// the message; what is sent is the typed text, and the server has the last word.
export function checkField(spec, raw) {
  const value = typeof raw === 'string' ? raw.trim() : raw
  if (spec.kind === 'boolean') return null
  if (value === '' || value === undefined || value === null) {
    return spec.required ? `${spec.label} is required` : null
  }
  if (spec.kind === 'enum') {
    return spec.enum.map(String).includes(String(value))
      ? null
      : `${spec.label} must be one of ${spec.enum.join(', ')}`
  }
  if (numeric(spec.kind)) {
    if (spec.kind === 'integer' ? !INTEGER.test(value) : !NUMBER.test(value)) {
      return `${spec.label} must be ${spec.kind === 'integer' ? 'a whole number' : 'a number'}, got ${value}`
    }
    const n = Number(value)
    if (!Number.isFinite(n)) return `${spec.label} must be a finite number`
    const lo = spec.minimum !== undefined ? Number(spec.minimum) : undefined
    const hi = spec.maximum !== undefined ? Number(spec.maximum) : undefined
    const xlo = spec.exclusiveMinimum !== undefined ? Number(spec.exclusiveMinimum) : undefined
    const xhi = spec.exclusiveMaximum !== undefined ? Number(spec.exclusiveMaximum) : undefined
    if (lo !== undefined && n < lo) return `${spec.label} must be at least ${spec.minimum}`
    if (xlo !== undefined && n <= xlo) return `${spec.label} must be greater than ${spec.exclusiveMinimum}`
    if (hi !== undefined && n > hi) return `${spec.label} must be at most ${spec.maximum}`
    if (xhi !== undefined && n >= xhi) return `${spec.label} must be less than ${spec.exclusiveMaximum}`
    return null
  }
  if (spec.minLength !== undefined && value.length < Number(spec.minLength)) {
    return spec.minLength === 1 || spec.minLength === '1'
      ? `${spec.label} is required`
      : `${spec.label} must have at least ${spec.minLength} characters`
  }
  if (spec.maxLength !== undefined && value.length > Number(spec.maxLength)) {
    return `${spec.label} must have at most ${spec.maxLength} characters`
  }
  return null
}

export function validate(schema, values) {
  const errors = {}
  for (const spec of fields(schema)) {
    const message = checkField(spec, values ? values[spec.name] : undefined)
    if (message) errors[spec.name] = message
  }
  return errors
}

export function toPayload(schema, values) {
  const out = {}
  for (const spec of fields(schema)) {
    const raw = values ? values[spec.name] : undefined
    if (spec.kind === 'boolean') {
      out[spec.name] = Boolean(raw)
      continue
    }
    const value = typeof raw === 'string' ? raw.trim() : raw
    if (value === '' || value === undefined || value === null) continue
    out[spec.name] = value
  }
  return out
}

function Field({ spec, value, error, onValue, id, disabled }) {
  const helpId = `${id}-help`
  const errId = `${id}-error`
  const help = [
    spec.description,
    spec.default !== undefined && spec.default !== null ? `default ${spec.default}` : '',
    bounds(spec),
  ]
    .filter(Boolean)
    .join(' · ')
  const described = [help ? helpId : null, error ? errId : null].filter(Boolean).join(' ')
  let input
  if (spec.kind === 'boolean') {
    input = html`<input
      type="checkbox"
      id=${id}
      name=${spec.name}
      checked=${value === true}
      disabled=${disabled}
      aria-describedby=${described || undefined}
      onChange=${(e) => onValue(e.currentTarget.checked)}
    />`
  } else if (spec.kind === 'enum') {
    input = html`<select
      id=${id}
      name=${spec.name}
      value=${value}
      disabled=${disabled}
      aria-invalid=${error ? 'true' : undefined}
      aria-describedby=${described || undefined}
      onChange=${(e) => onValue(e.currentTarget.value)}
    >
      ${!spec.required && spec.default === undefined ? html`<option value="">—</option>` : null}
      ${spec.enum.map((option) => html`<option value=${String(option)}>${String(option)}</option>`)}
    </select>`
  } else {
    input = html`<input
      type="text"
      id=${id}
      name=${spec.name}
      value=${value}
      disabled=${disabled}
      placeholder=${spec.placeholder || (spec.default !== undefined && spec.default !== null ? String(spec.default) : '')}
      inputmode=${spec.kind === 'integer' ? 'numeric' : numeric(spec.kind) ? 'decimal' : undefined}
      list=${spec.list}
      autocomplete="off"
      spellcheck=${numeric(spec.kind) ? 'false' : undefined}
      aria-required=${spec.required ? 'true' : undefined}
      aria-invalid=${error ? 'true' : undefined}
      aria-describedby=${described || undefined}
      onInput=${(e) => onValue(e.currentTarget.value)}
    />`
  }
  return html`<div class=${spec.kind === 'boolean' ? 'form-field form-check' : 'field form-field'} data-testid=${`field-${id}`}>
    ${spec.kind === 'boolean'
      ? html`${input} <label for=${id}>${spec.label}</label>`
      : html`<label for=${id}>${spec.label}${spec.required ? ' *' : ''}</label> ${input}`}
    ${help ? html`<small id=${helpId} class="muted form-help">${help}</small>` : null}
    ${error ? html`<small id=${errId} class="neg form-error" role="alert">${error}</small>` : null}
  </div>`
}

export function SchemaForm({ schema, values, onChange, idPrefix = 'f', errors = {}, disabled = false }) {
  const specs = fields(schema)
  if (!specs.length) return html`<p class="note">No parameters.</p>`
  const current = values || {}
  return html`<div class="schema-form">
    ${specs.map(
      (spec) => html`<${Field}
        key=${spec.name}
        spec=${spec}
        id=${`${idPrefix}-${spec.name}`}
        value=${asValue(spec, current[spec.name])}
        error=${errors ? errors[spec.name] : null}
        disabled=${disabled}
        onValue=${(v) => onChange({ ...current, [spec.name]: v })}
      />`,
    )}
  </div>`
}
